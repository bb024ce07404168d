//! Test plumbing shared by the workspace's tests: where the committed fixtures are, a reader for
//! their `reference.safetensors` files, and the one relative-error measure every parity test
//! states its tolerance in. A dev-dependency only; it panics on broken fixtures, as tests do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The workspace's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// `fixtures/<relative>`.
pub fn fixture(relative: &str) -> PathBuf {
    fixtures().join(relative)
}

/// max |ours − reference| / max |reference|: the relative error every tolerance is written in.
/// Panics on a length mismatch or a non-finite value in `ours`.
pub fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "length mismatch");
    assert!(ours.iter().all(|v| v.is_finite()), "non-finite output");
    let diff = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = reference.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    diff / scale.max(f32::MIN_POSITIVE)
}

/// `‖ours − reference‖₂ / ‖reference‖₂` over all elements (0 when both are zero): the
/// relative error of a tensor as a whole, for trained weights, where Adam's normalisation can
/// turn rounding in a near-zero gradient into a visible difference in a single element.
pub fn relative_error_l2(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "lengths differ");
    let num: f64 = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    let den: f64 = reference.iter().map(|b| f64::from(*b).powi(2)).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// The tensors of a fixture's `reference.safetensors` (or any safetensors file), by key.
pub struct Reference {
    tensors: HashMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>,
}

impl Reference {
    /// Reads `path`.
    pub fn read(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec(), v.dtype())))
            .collect();
        Self { tensors }
    }

    /// Whether `key` is there.
    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// An f32 tensor's shape and values.
    pub fn f32(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, bytes, dtype) = self.get(key);
        assert_eq!(*dtype, safetensors::Dtype::F32, "{key}");
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (shape.clone(), values)
    }

    /// An f64 tensor's values.
    pub fn f64(&self, key: &str) -> Vec<f64> {
        let (_, bytes, dtype) = self.get(key);
        assert_eq!(*dtype, safetensors::Dtype::F64, "{key}");
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.tensors.keys().cloned().collect();
        k.sort();
        k
    }

    /// An i64 tensor's values.
    pub fn i64(&self, key: &str) -> Vec<i64> {
        let (_, bytes, dtype) = self.get(key);
        assert_eq!(*dtype, safetensors::Dtype::I64, "{key}");
        bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }

    /// An i64 tensor's values as token ids.
    pub fn ids(&self, key: &str) -> Vec<u32> {
        self.i64(key).into_iter().map(|i| i as u32).collect()
    }

    fn get(&self, key: &str) -> &(Vec<usize>, Vec<u8>, safetensors::Dtype) {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("no tensor {key} in the reference file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_the_worst_difference_over_the_largest_reference_value() {
        assert_eq!(relative_error(&[1.0, 2.5, -4.0], &[1.0, 2.0, -4.0]), 0.125);
        assert_eq!(relative_error(&[0.0], &[0.0]), 0.0);
        assert!((relative_error_l2(&[3.0, 4.5], &[3.0, 4.0]) - 0.1).abs() < 1e-12);
        assert_eq!(relative_error_l2(&[0.0], &[0.0]), 0.0);
    }

    #[test]
    fn the_fixture_directory_is_found() {
        assert!(fixture("decoders/llama3/reference.safetensors").is_file());
        let r = Reference::read(&fixture("decoders/llama3/reference.safetensors"));
        assert!(!r.ids("input_ids").is_empty());
    }
}
