//! Finding a checkpoint's weight files and checking their headers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{CheckpointError, Result};

/// The single-file weights name transformers writes.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The shard index name transformers writes for sharded checkpoints.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The weight files of one checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointFiles {
    /// Where they were found (a directory, or the file itself).
    pub origin: PathBuf,
    /// The safetensors files, in a stable order.
    pub shards: Vec<PathBuf>,
}

#[derive(serde::Deserialize)]
struct HeaderEntry {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl CheckpointFiles {
    /// Finds the weights in `dir` as transformers does: the shard index first, then
    /// `model.safetensors`.
    pub fn discover(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            return Self::from_index(&index);
        }
        let single = dir.join(SINGLE_FILE);
        if single.is_file() {
            return Ok(Self {
                origin: dir.to_path_buf(),
                shards: vec![single],
            });
        }
        Err(CheckpointError::NoWeights {
            dir: dir.to_path_buf(),
        })
    }

    /// One safetensors file on its own.
    pub fn single(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            origin: path.clone(),
            shards: vec![path],
        }
    }

    /// The shards listed by a `model.safetensors.index.json`.
    pub fn from_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| CheckpointError::io(index, e))?;
        let parsed: ShardIndex =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Json {
                path: index.to_path_buf(),
                message: e.to_string(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let names: BTreeSet<&String> = parsed.weight_map.values().collect();
        let mut shards = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(CheckpointError::MissingShard {
                    index: index.to_path_buf(),
                    shard: name.clone(),
                });
            }
            shards.push(path);
        }
        Ok(Self {
            origin: dir.to_path_buf(),
            shards,
        })
    }

    /// Total size on disk, for progress reporting.
    pub fn total_bytes(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// A checked safetensors header: tensor names with their shapes and dtypes.
#[derive(Debug, Clone)]
pub struct Header {
    /// Tensor name → (dtype, shape).
    pub tensors: BTreeMap<String, (safetensors::Dtype, Vec<usize>)>,
    /// Free-form metadata (`{"format": "pt"}` for transformers/PEFT files).
    pub metadata: BTreeMap<String, String>,
}

/// Reads and validates the header of a safetensors file without reading its tensor data, and
/// checks that the file is long enough for the data the header describes.
pub fn check_header(path: &Path) -> Result<Header> {
    let bad = |message: String| CheckpointError::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let mut file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| CheckpointError::io(path, e))?
        .len();
    if file_len < 8 {
        return Err(bad(format!(
            "the file is {file_len} bytes long, shorter than the 8-byte header length"
        )));
    }
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|e| CheckpointError::io(path, e))?;
    let header_len = u64::from_le_bytes(len_bytes);
    // The safetensors format caps headers at 100 MB; a larger length is corruption.
    if header_len > 100_000_000 {
        return Err(bad(format!(
            "corrupt: a header length of {header_len} bytes"
        )));
    }
    if header_len > file_len - 8 {
        return Err(bad(format!(
            "truncated: the header claims {header_len} bytes but the file holds {file_len}"
        )));
    }
    let mut buffer = vec![0u8; header_len as usize];
    file.read_exact(&mut buffer)
        .map_err(|e| CheckpointError::io(path, e))?;
    let entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&buffer).map_err(|e| bad(format!("corrupt header: {e}")))?;
    let mut data_end = 0usize;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            metadata = serde_json::from_value(value)
                .map_err(|e| bad(format!("corrupt __metadata__: {e}")))?;
            continue;
        }
        let info: HeaderEntry = serde_json::from_value(value)
            .map_err(|e| bad(format!("corrupt header entry for tensor {name}: {e}")))?;
        let (start, end) = info.data_offsets;
        let expected = info
            .shape
            .iter()
            .try_fold(info.dtype.bitsize(), |acc, &d| acc.checked_mul(d))
            .map(|bits| bits / 8);
        if end < start || Some(end - start) != expected {
            return Err(bad(format!(
                "tensor {name}: offsets {start}..{end} do not fit a {:?} tensor of shape {:?}",
                info.dtype, info.shape
            )));
        }
        data_end = data_end.max(end);
        tensors.insert(name, (info.dtype, info.shape));
    }
    let needed = (8 + header_len).saturating_add(data_end as u64);
    if file_len < needed {
        return Err(bad(format!(
            "truncated: the header describes {needed} bytes but the file holds only {file_len}"
        )));
    }
    Ok(Header { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_tiny(path: &Path) {
        let data: Vec<u8> = (0..16u8).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data)
            .unwrap();
        safetensors::serialize_to_file([("w", view)], None, path).unwrap();
    }

    #[test]
    fn header_of_a_good_file_lists_its_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_tiny(&path);
        let header = check_header(&path).unwrap();
        assert_eq!(header.tensors["w"].1, vec![2, 2]);
        let files = CheckpointFiles::discover(dir.path()).unwrap();
        assert_eq!(files.shards, vec![path]);
    }

    #[test]
    fn truncated_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write_tiny(&path);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = check_header(&path).unwrap_err().to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("truncated"),
            "{err}"
        );
        std::fs::write(&path, &bytes[..5]).unwrap();
        let err = check_header(&path).unwrap_err().to_string();
        assert!(err.contains("shorter than the 8-byte header"), "{err}");
        std::fs::write(&path, &bytes[..20]).unwrap();
        let err = check_header(&path).unwrap_err().to_string();
        assert!(err.contains("truncated: the header claims"), "{err}");
    }

    #[test]
    fn index_with_a_missing_shard_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(&dir.path().join("model-00001-of-00002.safetensors"));
        std::fs::write(
            dir.path().join(INDEX_FILE),
            r#"{"metadata": {}, "weight_map": {"w": "model-00001-of-00002.safetensors",
                "v": "model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let err = CheckpointFiles::discover(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
    }

    #[test]
    fn empty_directory_says_what_it_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let err = CheckpointFiles::discover(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.safetensors.index.json"), "{err}");
    }
}
