//! Weight-only quantization of [`Linear`] layers on burn's quantized tensors (burn 0.22
//! `QuantScheme`, which flex and the CubeCL backends run): the weight becomes a quantized tensor
//! in the same parameter, group-wise along each output row, symmetric, with bf16 scales, and
//! every product with it dequantizes. `int8`: 8-bit values, groups of 128 inputs; `int4`:
//! 4-bit values (±7), groups of 128.

use burn::tensor::quantization::{QuantMode, QuantScheme, QuantStore, QuantValue, ScaleDtype};

use crate::Linear;

/// `--quant-method`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuantMethod {
    /// The checkpoint's dtype.
    #[default]
    None,
    /// 8-bit weights, symmetric, a bf16 scale per 128 inputs of a row.
    Int8,
    /// 4-bit weights, symmetric, a bf16 scale per 128 inputs of a row.
    Int4,
}

/// Inputs sharing one scale (smaller where the layer has fewer inputs).
pub const GROUP: usize = 128;

impl QuantMethod {
    /// The scheme for a layer of `d_input` inputs, `None` for [`QuantMethod::None`].
    pub fn scheme(self, d_input: usize) -> Option<QuantScheme> {
        let value = match self {
            Self::None => return None,
            Self::Int8 => QuantValue::Q8S,
            Self::Int4 => QuantValue::Q4S,
        };
        // burn's block sizes are bytes per dimension; the group divides the row.
        let group = (1..=GROUP.min(d_input))
            .rev()
            .find(|g| d_input.is_multiple_of(*g))
            .unwrap_or(1) as u8;
        Some(
            QuantScheme::default()
                .with_value(value)
                .with_store(QuantStore::PackedU32(0))
                .with_mode(QuantMode::Symmetric)
                .per_block([1, group], ScaleDtype::BF16),
        )
    }
}

impl Linear {
    /// Replaces the base weight by its quantized form (same parameter id, no gradient).
    /// Adapters stay as they are: a quantized base with LoRA factors is QLoRA.
    pub fn quantize(&mut self, method: QuantMethod) {
        let Some(scheme) = method.scheme(self.d_input()) else {
            return;
        };
        let weight = self.weight.clone().set_require_grad(false);
        self.weight = weight.map(|w| w.quantize_dynamic(&scheme));
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{DType, Device, Distribution, Tensor};

    use super::*;
    use crate::LoraFactors;

    fn random<const D: usize>(shape: [usize; D], std: f64, device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, std), device)
    }

    /// max |a − b| / max |b|.
    fn rel(a: Tensor<2>, b: Tensor<2>) -> f32 {
        let d = (a - b.clone()).abs().max().into_scalar::<f32>();
        d / b.abs().max().into_scalar::<f32>()
    }

    #[test]
    fn a_quantized_base_tracks_the_dense_one_takes_an_adapter_and_merges_into_it() {
        let device = Device::flex();
        let dense = random([8, 256], 0.02, &device);
        let x = random([3, 256], 1.0, &device);
        for (method, bound) in [(QuantMethod::Int8, 0.02), (QuantMethod::Int4, 0.3)] {
            let mut l = Linear {
                weight: Param::from_tensor(dense.clone()),
                bias: None,
                lora: None,
            };
            let reference = l.forward(x.clone());
            l.quantize(method);
            assert!(matches!(l.weight.val().dtype(), DType::QFloat(_)));
            let quantized = l.forward(x.clone());
            let e = rel(quantized, reference.clone());
            assert!(e < bound, "{method:?}: {e}");
            l.attach(LoraFactors::from_tensors(
                random([2, 256], 0.1, &device),
                random([8, 2], 0.1, &device),
                0.5,
                0.0,
            ));
            let adapted = l.forward(x.clone());
            assert!(
                rel(adapted.clone(), reference.clone()) > bound,
                "the adapter changes it"
            );
            l.merge();
            assert!(l.lora.is_none());
            let dtype = l.weight.val().dtype();
            assert!(matches!(dtype, DType::QFloat(_)), "{dtype:?}");
            let merged = l.forward(x.clone());
            let e = rel(merged, adapted);
            assert!(e < bound, "{method:?} merged: {e}");
        }
    }

    #[test]
    fn groups_divide_the_row() {
        let group = |d: usize| {
            QuantMethod::Int8
                .scheme(d)
                .unwrap()
                .block_size()
                .unwrap()
                .as_slice()
                .last()
                .copied()
        };
        assert_eq!(group(4096), Some(128));
        assert_eq!(group(64), Some(64));
        assert_eq!(group(192), Some(96));
        assert!(QuantMethod::None.scheme(64).is_none());
    }
}
