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
