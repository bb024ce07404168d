//! Images of rows: local paths relative to the dataset file, or `http(s)` URLs fetched once into
//! a cache directory (decision 14; ms-swift fetched every URL on every use). Before training,
//! every distinct image is opened and decoded once (decision 7), and each row with a bad one is
//! reported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use llava_vision::{
    DecodeOptions, FetchOptions, RgbImage, Size, VisionError, decode_image, fetch_url, open_image,
};
use rayon::prelude::*;

use crate::error::Problem;
use crate::row::Row;

/// One image of a row, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageRef {
    /// A local file (relative paths already joined to the dataset file's directory).
    Path(PathBuf),
    /// An `http://` or `https://` address.
    Url(String),
}

impl ImageRef {
    /// `text` as written in a row of the file `dataset_file`.
    pub fn resolve(text: &str, dataset_file: &Path) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            return Self::Url(text.to_string());
        }
        let path = Path::new(text);
        if path.is_absolute() {
            Self::Path(path.to_path_buf())
        } else {
            let base = dataset_file.parent().unwrap_or(Path::new(""));
            Self::Path(base.join(path))
        }
    }

    /// The image's row images, resolved.
    pub fn of_row(row: &Row) -> Vec<Self> {
        row.images
            .iter()
            .map(|t| Self::resolve(t, &row.origin.file))
            .collect()
    }
}

/// Where fetched images are kept, and how images are fetched and decoded.
#[derive(Debug, Clone)]
pub struct ImageCache {
    /// Fetched URLs live in `<dir>/urls/`.
    pub dir: PathBuf,
    /// Limits on fetching.
    pub fetch: FetchOptions,
    /// How images are decoded (the checkpoint's convention).
    pub decode: DecodeOptions,
}

impl ImageCache {
    /// The local file of `image`: itself, or the cached copy of a URL (fetched now if missing;
    /// the copy is written under a temporary name, then renamed).
    pub fn local_path(&self, image: &ImageRef) -> Result<PathBuf, VisionError> {
        match image {
            ImageRef::Path(p) => Ok(p.clone()),
            ImageRef::Url(url) => {
                let mut hash = Fnv64::new();
                hash.write(url.as_bytes());
                let dir = self.dir.join("urls");
                let path = dir.join(format!("{:016x}", hash.finish()));
                if path.is_file() {
                    return Ok(path);
                }
                let bytes = fetch_url(url, &self.fetch)?;
                let io = |e: std::io::Error| VisionError::Io {
                    name: path.display().to_string(),
                    source: e,
                };
                std::fs::create_dir_all(&dir).map_err(io)?;
                let tmp = dir.join(format!(
                    ".{:016x}.{}.tmp",
                    hash.finish(),
                    std::process::id()
                ));
                std::fs::write(&tmp, &bytes).map_err(io)?;
                std::fs::rename(&tmp, &path).map_err(io)?;
                Ok(path)
            }
        }
    }

    /// Decoded pixels of `image` (a URL from the cache; errors name the URL).
    pub fn load(&self, image: &ImageRef) -> Result<RgbImage, VisionError> {
        let path = self.local_path(image)?;
        match image {
            ImageRef::Path(_) => open_image(&path, &self.decode),
            ImageRef::Url(url) => {
                let bytes = std::fs::read(&path).map_err(|source| VisionError::Io {
                    name: format!("{url} (cached as {})", path.display()),
                    source,
                })?;
                decode_image(&bytes, url, &self.decode)
            }
        }
    }

    /// Opens and decodes every distinct image of `rows` once (in parallel) and returns each
    /// row's image sizes, or `None` for a row with a bad image, plus one problem per bad image
    /// of each row.
    pub fn check_rows(&self, rows: &[Row]) -> (Vec<Option<Vec<Size>>>, Vec<Problem>) {
        let refs: Vec<Vec<ImageRef>> = rows.iter().map(ImageRef::of_row).collect();
        let distinct: Vec<&ImageRef> = refs
            .iter()
            .flatten()
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        let checked: HashMap<&ImageRef, Result<Size, String>> = distinct
            .par_iter()
            .map(|r| {
                let outcome = self
                    .load(r)
                    .map(|i| Size::new(i.width, i.height))
                    .map_err(|e| e.to_string());
                (*r, outcome)
            })
            .collect();
        let mut sizes = Vec::with_capacity(rows.len());
        let mut problems = Vec::new();
        for (row, refs) in rows.iter().zip(&refs) {
            let mut ok = Vec::with_capacity(refs.len());
            let mut bad = false;
            for (i, r) in refs.iter().enumerate() {
                match &checked[r] {
                    Ok(size) => ok.push(*size),
                    Err(message) => {
                        bad = true;
                        problems.push(Problem {
                            origin: row.origin.clone(),
                            field: Some("images".into()),
                            message: format!("image {i}: {message}"),
                        });
                    }
                }
            }
            sizes.push((!bad).then_some(ok));
        }
        (sizes, problems)
    }
}

/// FNV-1a, 64 bits: names for cached copies (not a security boundary).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// The offset basis.
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}
