use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};

/// LayerNorm with HF parameter names (`weight`, `bias`; burn-nn calls them gamma/beta) and
/// f32 statistics, as PyTorch computes half-precision layer norms.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[hidden]`.
    pub weight: Param<Tensor<1>>,
    /// `[hidden]`.
    pub bias: Param<Tensor<1>>,
    /// Added to the variance.
    #[module(skip)]
    pub eps: f64,
}

impl LayerNorm {
    /// A norm of width `size` (lazy ones / zeros).
    pub fn new(size: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Initializer::Ones.init([size], device),
            bias: Initializer::Zeros.init([size], device),
            eps,
        }
    }

    /// `[..., hidden]` → `[..., hidden]` (one kernel on CUDA, see [`llava_ops::layer_norm`]).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        llava_ops::layer_norm(x, self.weight.val(), self.bias.val(), self.eps)
    }
}
