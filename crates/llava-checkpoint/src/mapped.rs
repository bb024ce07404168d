//! A shard read through a memory map. Every tensor's bytes are a view of the mapped file
//! (`AllocationProperty::File`), so nothing is copied on the host before the tensor is built:
//! burn-store's safetensors reader copies each tensor out of its map first, and the page faults
//! of those fresh copies were most of our load time (docs/benchmarks.md, "Load time").

use std::fs::File;
use std::path::Path;

use burn::store::{bridge, burn_pack::Tensor as PackTensor};
use burn::tensor::{AllocationProperty, Bytes, DType, TensorData};

use crate::{CheckpointError, Result};

/// Every tensor of the safetensors file at `path`, its data a view of the file's memory map.
/// The header must have been checked (`check_header`); what is wrong with it here is still an
/// error naming the file.
pub(crate) fn mapped_tensors(path: &Path) -> Result<Vec<PackTensor>> {
    let bad = |message: String| CheckpointError::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    // SAFETY: a read-only map whose bytes must not change while it lives. Checkpoints are
    // replaced by rename (this crate's writers, transformers' and PEFT's), not rewritten in
    // place, and a replaced file keeps the mapped inode.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))?;
    let whole = bytes::Bytes::from_owner(map);
    let parsed = safetensors::SafeTensors::deserialize(&whole)
        .map_err(|e| bad(format!("corrupt safetensors file: {e}")))?;
    let base = whole.as_ptr() as usize;
    let mut tensors = Vec::new();
    for (name, view) in parsed.tensors() {
        let Some(dtype) = burn_dtype(view.dtype()) else {
            // No module parameter has such a dtype: a parameter wanting it is reported missing.
            tracing::warn!(
                "{}: tensor {name} of dtype {:?} skipped",
                path.display(),
                view.dtype()
            );
            continue;
        };
        let start = view.data().as_ptr() as usize - base;
        let slice = whole.slice(start..start + view.data().len());
        // The CPU backend reads elements in place, so a view must be aligned to its element;
        // writers align tensors, but the format does not promise it.
        let bytes = if start.is_multiple_of(dtype.size()) {
            Bytes::from_shared(slice, AllocationProperty::File)
        } else {
            Bytes::from_bytes_vec(slice.to_vec())
        };
        let data = TensorData::try_from_bytes(bytes, view.shape().to_vec(), dtype)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        tensors.push(bridge::from_data(data, name, None));
    }
    Ok(tensors)
}

fn burn_dtype(dtype: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match dtype {
        S::F64 => DType::F64,
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::I64 => DType::I64,
        S::I32 => DType::I32,
        S::I16 => DType::I16,
        S::I8 => DType::I8,
        S::U64 => DType::U64,
        S::U32 => DType::U32,
        S::U16 => DType::U16,
        S::U8 => DType::U8,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::store::bridge;

    /// A file whose f32 tensor starts at an odd offset (legal safetensors, written by hand):
    /// both tensors read back with their values.
    #[test]
    fn tensors_read_back_aligned_or_not() {
        let header = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}"#;
        let mut header = header.as_bytes().to_vec();
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend(&header);
        file.push(7);
        file.extend(1.5f32.to_le_bytes());
        file.extend((-2.0f32).to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.safetensors");
        std::fs::write(&path, file).unwrap();

        let mut tensors = mapped_tensors(&path).unwrap();
        tensors.sort_by(|x, y| x.name.cmp(&y.name));
        let a = bridge::into_data(tensors.remove(0)).unwrap();
        let b = bridge::into_data(tensors.remove(0)).unwrap();
        assert_eq!(a.try_to_vec::<u8>().unwrap(), vec![7]);
        assert_eq!(b.try_to_vec::<f32>().unwrap(), vec![1.5, -2.0]);
    }
}
