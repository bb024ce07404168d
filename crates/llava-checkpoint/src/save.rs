//! Writing files so that a process killed mid-write loses nothing: each file is written under a
//! temporary name in its directory, synced, then renamed over the target (a rename within one
//! file system is atomic), so a reader sees the old file or the new one, never a part.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;

use crate::CheckpointError;

/// Writes `bytes` to `path` atomically (temporary name, sync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let err = |source| CheckpointError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(err)
}

fn storage_dtype(dtype: burn::tensor::DType) -> Option<safetensors::Dtype> {
    use burn::tensor::DType;
    Some(match dtype {
        DType::F32 => safetensors::Dtype::F32,
        DType::F16 => safetensors::Dtype::F16,
        DType::BF16 => safetensors::Dtype::BF16,
        DType::F64 => safetensors::Dtype::F64,
        DType::I64 => safetensors::Dtype::I64,
        DType::I32 => safetensors::Dtype::I32,
        _ => return None,
    })
}

/// Writes `tensors` (name, data) as one safetensors file at `path`, atomically, with
/// `metadata` in its header (PEFT and transformers write `{"format": "pt"}`).
pub fn save_safetensors(
    path: &Path,
    tensors: &[(String, TensorData)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<(), CheckpointError> {
    let bad = |message: String| CheckpointError::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let mut views = Vec::with_capacity(tensors.len());
    for (name, data) in tensors {
        let dtype = storage_dtype(data.dtype()).ok_or_else(|| {
            bad(format!(
                "tensor {name}: dtype {:?} cannot be stored",
                data.dtype()
            ))
        })?;
        let shape: Vec<usize> = data.shape().iter().copied().collect();
        let view = safetensors::tensor::TensorView::new(dtype, shape, data.as_bytes())
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    let bytes = safetensors::serialize(views, metadata).map_err(|e| bad(e.to_string()))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_tensors_read_back_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let a = TensorData::new(vec![1.0f32, -2.0, 3.5, 0.25], [2, 2]);
        let b = TensorData::new(vec![7i64, 8, 9], [3]);
        save_safetensors(&path, &[("a".into(), a), ("b".into(), b)], None).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let a = st.tensor("a").unwrap();
        assert_eq!(a.shape(), [2, 2]);
        assert_eq!(a.dtype(), safetensors::Dtype::F32);
        assert_eq!(&a.data()[4..8], &(-2.0f32).to_le_bytes());
        assert_eq!(st.tensor("b").unwrap().data()[8..16], 8i64.to_le_bytes());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the file itself");
    }

    #[test]
    fn a_failed_write_leaves_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.json");
        write_atomic(&path, b"old").unwrap();
        // A directory in the way of the rename: the write fails and the file stays.
        let blocked = dir.path().join("sub");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read(blocked.join("x")).unwrap(), b"x");
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }
}
