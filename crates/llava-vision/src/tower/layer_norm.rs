use burn::module::{Initializer, Module, Param};
use burn::tensor::{DType, Device, Tensor};

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

    /// `[..., hidden]` → `[..., hidden]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let mean = llava_ops::mean_last(x.clone());
        let centred = x - mean;
        let var = llava_ops::mean_last(centred.clone().square());
        let normed = centred * var.add_scalar(self.eps).sqrt().recip();
        let w = self.weight.val().cast(DType::F32).unsqueeze::<D>();
        let b = self.bias.val().cast(DType::F32).unsqueeze::<D>();
        (normed * w + b).cast(dtype)
    }
}
