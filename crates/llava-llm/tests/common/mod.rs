//! Shared helpers for the fixture-based tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use llava_checkpoint::Progress;
use llava_llm::{CausalLm, LoadOptions};
use safetensors::SafeTensors;

#[allow(unused_imports)]
pub use llava_testutil::{Reference, relative_error};

/// The committed fixture directory of a decoder family.
pub fn fixture(name: &str) -> PathBuf {
    llava_testutil::fixture("decoders").join(name)
}

/// A decoder fixture's reference outputs.
pub fn reference(name: &str) -> Reference {
    Reference::read(&fixture(name).join("reference.safetensors"))
}

/// The vocabulary columns the reference logits keep.
pub fn columns(reference: &Reference) -> Vec<usize> {
    reference
        .i64("vocab_columns")
        .into_iter()
        .map(|i| i as usize)
        .collect()
}

pub fn device() -> Device {
    Device::flex()
}

pub fn load(dir: &Path) -> CausalLm {
    let options = LoadOptions {
        progress: Progress::Hidden,
        ..Default::default()
    };
    CausalLm::from_pretrained(dir, &device(), &options).unwrap()
}

pub fn ids_tensor(ids: &[u32], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(v, [1, ids.len()]), device)
}

/// `[rows, vocab]` logits restricted to `columns`, row-major.
pub fn select_columns(logits: &[f32], vocab: usize, columns: &[usize]) -> Vec<f32> {
    logits
        .chunks_exact(vocab)
        .flat_map(|row| columns.iter().map(move |&c| row[c]))
        .collect()
}

/// Copies a fixture directory (config, tokenizer, adapter) to a temporary one, without the
/// weights, which the caller writes.
pub fn copy_without_weights(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name();
        if entry.path().is_file() && file != "model.safetensors" {
            std::fs::copy(entry.path(), dir.path().join(&file)).unwrap();
        }
    }
    dir
}

/// One tensor of a safetensors file: name, dtype, shape, bytes.
pub type Entry = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// The tensors of a safetensors file, sorted by name.
pub fn read_tensors(path: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes tensors to a safetensors file.
pub fn write_tensors(path: &Path, tensors: &[Entry]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}
