//! Registered dataset names (decision 14: a name never fetches per epoch): the tiny dataset the
//! project ships, written out of the binary once, and ms-swift's COCO caption sets read from a
//! local mirror directory.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// A registered dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name `--dataset` takes.
    pub name: &'static str,
    /// Other names ms-swift accepts for it.
    pub aliases: &'static [&'static str],
    /// What it is.
    pub about: &'static str,
    /// Where its rows come from.
    pub source: BuiltinSource,
}

/// A dataset repository on the Hugging Face hub, read from the hf-hub cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubDataset {
    /// `owner/name`.
    pub repo: &'static str,
    /// The splits taken: data files whose path contains one of these words.
    pub splits: &'static [&'static str],
}

/// Where a registered dataset's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinSource {
    /// Shipped inside the library: `(relative path, bytes)` of every file, the rows first.
    Embedded(&'static [(&'static str, &'static [u8])]),
    /// A mirror directory `<dataset dir>/<name>/` of `.jsonl` / `.json` / `.csv` / `.parquet` files (local
    /// image paths or image bytes; ms-swift's own rows point at URLs that no longer answer,
    /// issue #2596), or else the data files of a hub dataset repository already in the hf-hub
    /// cache (its parquet shards carry the images).
    Mirror(HubDataset),
}

macro_rules! tiny_file {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!("../../../fixtures/datasets/llava-tiny/", $path)) as &[u8],
        )
    };
}

/// The shipped tiny dataset: 8 shapes of different colours and aspect ratios, one caption each.
const TINY: &[(&str, &[u8])] = &[
    tiny_file!("train.jsonl"),
    tiny_file!("images/0_red_circle_300x200.png"),
    tiny_file!("images/1_blue_square_200x300.png"),
    tiny_file!("images/2_green_triangle_336x336.png"),
    tiny_file!("images/3_yellow_circle_480x240.png"),
    tiny_file!("images/4_red_square_240x480.png"),
    tiny_file!("images/5_blue_triangle_400x300.png"),
    tiny_file!("images/6_green_circle_300x400.png"),
    tiny_file!("images/7_yellow_square_350x350.png"),
];

/// ms-swift's source of both COCO caption sets (ModelScope's id; the same id is looked up in
/// the hf-hub cache).
const COCO_REPO: &str = "modelscope/coco_2014_caption";

/// Every registered dataset.
pub const BUILTIN: &[Builtin] = &[
    Builtin {
        name: "llava-tiny",
        aliases: &[],
        about: "8 rendered shapes with captions, shipped with llava-rs (tests and demos)",
        source: BuiltinSource::Embedded(TINY),
    },
    Builtin {
        name: "coco-en-2-mini",
        aliases: &["coco-mini-en-2"],
        about: "COCO 2014 val captions, 40,504 rows (ms-swift's LLaVA best practice)",
        source: BuiltinSource::Mirror(HubDataset {
            repo: COCO_REPO,
            splits: &["validation"],
        }),
    },
    Builtin {
        name: "coco-en-2",
        aliases: &[],
        about: "COCO 2014 train + val captions, 454,617 rows",
        source: BuiltinSource::Mirror(HubDataset {
            repo: COCO_REPO,
            splits: &["train", "validation"],
        }),
    },
];

/// The registered dataset `name` (or alias).
pub fn find(name: &str) -> Result<&'static Builtin> {
    BUILTIN
        .iter()
        .find(|b| b.name == name || b.aliases.contains(&name))
        .ok_or_else(|| DataError::UnknownName {
            name: name.to_string(),
            known: BUILTIN
                .iter()
                .map(|b| b.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl Builtin {
    /// The dataset files of this dataset. Embedded files are written once under `cache_dir`
    /// (a temporary directory, then a rename, so a crash never leaves half a copy); mirrors
    /// are looked up in each of `dataset_dirs`, then in the hf-hub cache `hub_cache`.
    pub fn files(
        &self,
        cache_dir: &Path,
        dataset_dirs: &[PathBuf],
        hub_cache: Option<&Path>,
    ) -> Result<Vec<PathBuf>> {
        match self.source {
            BuiltinSource::Embedded(files) => {
                let dir = materialise(self.name, files, cache_dir)?;
                Ok(vec![dir.join(files[0].0)])
            }
            BuiltinSource::Mirror(hub) => {
                let mut looked = Vec::new();
                for root in dataset_dirs {
                    let dir = root.join(self.name);
                    looked.push(dir.display().to_string());
                    if dir.is_dir() {
                        let files = data_files(&dir)?;
                        if !files.is_empty() {
                            return Ok(files);
                        }
                    }
                }
                if let Some(cache) = hub_cache {
                    let repo = cache.join(format!("datasets--{}", hub.repo.replace('/', "--")));
                    looked.push(format!("{} (hf-hub cache of {})", repo.display(), hub.repo));
                    let files = hub_files(&repo, hub.splits);
                    if !files.is_empty() {
                        return Ok(files);
                    }
                }
                Err(DataError::Unavailable {
                    name: self.name.to_string(),
                    message: format!(
                        "no rows found (looked in: {}); pass --dataset-dir <dir> holding {}/ with .jsonl/.json/.csv/.parquet files, or put the hub dataset {} in the hf-hub cache",
                        looked.join(", "),
                        self.name,
                        hub.repo
                    ),
                })
            }
        }
    }
}

/// The data files of the splits `splits` in the newest snapshot of a cached hub repository.
fn hub_files(repo: &Path, splits: &[&str]) -> Vec<PathBuf> {
    let revision = std::fs::read_to_string(repo.join("refs").join("main")).ok();
    let snapshots = repo.join("snapshots");
    let snapshot = match revision {
        Some(r) if snapshots.join(r.trim()).is_dir() => snapshots.join(r.trim()),
        _ => match std::fs::read_dir(&snapshots) {
            Ok(d) => match d
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.is_dir())
            {
                Some(p) => p,
                None => return Vec::new(),
            },
            Err(_) => return Vec::new(),
        },
    };
    let mut out = Vec::new();
    let mut stack = vec![snapshot.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_data_file(&p) {
                let rel = p
                    .strip_prefix(&snapshot)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .to_string();
                if splits.iter().any(|s| rel.contains(s)) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn is_data_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "jsonl" | "json" | "csv" | "parquet"))
}

/// The dataset files directly in `dir`, sorted.
fn data_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::File {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_data_file(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Writes `files` to `<cache_dir>/<name>-<content hash>/` unless already there.
fn materialise(name: &str, files: &[(&str, &[u8])], cache_dir: &Path) -> Result<PathBuf> {
    let mut hash = crate::images::Fnv64::new();
    for (path, bytes) in files {
        hash.write(path.as_bytes());
        hash.write(bytes);
    }
    let dir = cache_dir.join(format!("{name}-{:016x}", hash.finish()));
    if dir.is_dir() {
        return Ok(dir);
    }
    let io = |path: &Path, e: std::io::Error| DataError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(cache_dir).map_err(|e| io(cache_dir, e))?;
    let tmp = cache_dir.join(format!(
        ".{name}-{}-{}.tmp",
        std::process::id(),
        hash.finish()
    ));
    for (path, bytes) in files {
        let target = tmp.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&target, bytes).map_err(|e| io(&target, e))?;
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process won the race: its copy is the same bytes.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(io(&dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = find("coco-fr").unwrap_err().to_string();
        assert!(
            e.contains("coco-fr") && e.contains("llava-tiny, coco-en-2-mini, coco-en-2"),
            "{e}"
        );
        assert_eq!(find("coco-mini-en-2").unwrap().name, "coco-en-2-mini");
    }

    #[test]
    fn the_tiny_dataset_is_written_once_and_a_missing_mirror_says_where_it_looked() {
        let cache = tempfile::tempdir().unwrap();
        let tiny = find("llava-tiny").unwrap();
        let files = tiny.files(cache.path(), &[], None).unwrap();
        assert_eq!(files.len(), 1);
        let rows = crate::read::read_file(&files[0]).unwrap();
        assert_eq!(rows.len(), 8);
        assert!(
            files[0]
                .parent()
                .unwrap()
                .join(&rows[0].images[0])
                .is_file()
        );
        assert_eq!(tiny.files(cache.path(), &[], None).unwrap(), files);
        let e = find("coco-en-2-mini")
            .unwrap()
            .files(
                cache.path(),
                &[cache.path().to_path_buf()],
                Some(cache.path()),
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--dataset-dir")
                && e.contains("coco-en-2-mini")
                && e.contains("modelscope/coco_2014_caption"),
            "{e}"
        );
    }

    /// A hub dataset in the hf-hub cache layout: the snapshot `refs/main` names, only the
    /// registered splits' files.
    #[test]
    fn a_cached_hub_dataset_gives_its_split_files() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("datasets--modelscope--coco_2014_caption");
        let snap = repo.join("snapshots/abc123/coco_2014_caption");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123").unwrap();
        for f in [
            "train-00000-of-00002.parquet",
            "train-00001-of-00002.parquet",
            "validation-00000-of-00001.parquet",
            "README.md",
        ] {
            std::fs::write(snap.join(f), b"").unwrap();
        }
        let hub = Some(cache.path());
        let mini = find("coco-en-2-mini")
            .unwrap()
            .files(cache.path(), &[], hub)
            .unwrap();
        assert_eq!(mini.len(), 1);
        assert!(mini[0].ends_with("validation-00000-of-00001.parquet"));
        let all = find("coco-en-2")
            .unwrap()
            .files(cache.path(), &[], hub)
            .unwrap();
        assert_eq!(all.len(), 3);
    }
}
