//! The product dispatcher: `matmul`, `linear`, a group of linears over one input, and the
//! SwiGLU input of a gated MLP. On CUDA: the GEMV kernels for decode rows, cuBLAS for prompt
//! rows (one group a layer), cubek's kernels in between; elsewhere burn's ops.

use burn::tensor::{DType, Tensor};

use crate::reference;
#[cfg(feature = "cuda")]
use crate::{cuda, route};

/// `lhs · rhs` over the last two dims (batch dims equal).
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if route::kernels(&lhs)
        && let Some(out) = cuda::matmul(&lhs, &rhs)
    {
        return out;
    }
    reference::matmul(lhs, rhs)
}

/// `lhs · rhs` with the product in f32 whatever the inputs' dtype, as fused attention kernels
/// (SDPA) keep their scores. On CUDA the kernel writes f32 directly; elsewhere the product is
/// rounded to the inputs' dtype first (transformers' eager attention).
pub fn matmul_wide<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    if route::kernels(&lhs)
        && let Some(out) = cuda::matmul_wide(&lhs, &rhs)
    {
        return out;
    }
    reference::matmul_wide(lhs, rhs)
}

/// `x · weightᵀ + bias` with `weight` stored as PyTorch stores it, `[d_output, d_input]`.
///
/// In half precision the bias is added to the product's f32 sums and the result rounded once, as
/// PyTorch's `addmm` adds it in the GEMM's epilogue (transformers' biased linears: the CLIP and
/// SigLIP towers, the projector, Qwen's q/k/v); rounding the product first and the sum again
/// moved the CPU fixture's image features 0.73% from transformers' bf16 ones, against 0.56%.
/// Decode rows on CUDA (the GEMV) still round twice.
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    let weight = dense(weight, x.dtype());
    #[cfg(feature = "cuda")]
    if route::kernels(&x) {
        let routed = match &bias {
            Some(b) => cuda::linear_bias(&x, &weight, b),
            None => cuda::linear(&x, &weight),
        };
        if let Some(out) = routed {
            return out;
        }
    }
    reference::linear(x, weight, bias)
}

/// A weight-only quantized weight (burn's `QFloat`, `llava_nn::QuantMethod`) dequantized to
/// `dtype`, which every product then reads as a dense weight: the reference path, exactly
/// dequantize-then-multiply (burn's own quantized product would quantize the activations too).
/// Any other weight as it is.
fn dense(weight: Tensor<2>, dtype: DType) -> Tensor<2> {
    match weight.dtype() {
        DType::QFloat(_) => weight.dequantize().cast(dtype),
        _ => weight,
    }
}

/// `x · weightᵀ` (weight `[d_output, d_input]`) rounded to `x`'s dtype, then `+ bias` in that
/// dtype: a convolution's rounding (PyTorch's CUDA convolution adds its bias after the rounded
/// output), for patch embeddings computed as one product over flattened patches.
pub fn patch_linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    reference::patch_linear(x, weight, bias)
}

/// `[x · w_iᵀ (+ b_i)]` for `layers` (weight `[d_output, d_input]`, optional bias) that read the
/// same `x`: a layer's q/k/v or gate/up projections, each equal to [`linear`].
///
/// On CUDA: decode rows of three unbiased weights take one GEMV launch; prompt rows of at least
/// 30 GFLOP in all take one group of cuBLAS products (biases inside it, rounded once as
/// [`linear`] rounds them), where every weight or none has a bias; everything else is one
/// [`linear`] per layer.
pub fn linear_group<const D: usize, const L: usize>(
    x: &Tensor<D>,
    layers: [(Tensor<2>, Option<Tensor<1>>); L],
) -> [Tensor<D>; L] {
    let layers = layers.map(|(w, b)| (dense(w, x.dtype()), b));
    #[cfg(feature = "cuda")]
    if route::kernels(x)
        && let Some(outs) = cuda_group(x, &layers).and_then(|o| <[Tensor<D>; L]>::try_from(o).ok())
    {
        return outs;
    }
    layers.map(|(w, b)| linear(x.clone(), w, b))
}

#[cfg(feature = "cuda")]
fn cuda_group<const D: usize>(
    x: &Tensor<D>,
    layers: &[(Tensor<2>, Option<Tensor<1>>)],
) -> Option<Vec<Tensor<D>>> {
    let weights: Vec<&Tensor<2>> = layers.iter().map(|(w, _)| w).collect();
    let biases: Vec<&Tensor<1>> = layers.iter().filter_map(|(_, b)| b.as_ref()).collect();
    if let ([q, k, v], true) = (&weights[..], biases.is_empty())
        && let Some(out) = cuda::gemv_qkv_tensors(x, [q, k, v], false)
    {
        return Some(out.into());
    }
    if !(biases.is_empty() || biases.len() == weights.len()) {
        return None;
    }
    cuda::linear_group(x, &weights, &biases)
}

/// `silu(x · gateᵀ + b_g) ⊙ (x · upᵀ + b_u)`: the first half of a gated MLP, with the roundings
/// of two [`linear`]s and [`crate::silu_mul`]. On CUDA decode rows of unbiased weights take one
/// GEMV kernel; otherwise [`linear_group`] and then `silu_mul`.
pub fn swiglu<const D: usize>(
    x: Tensor<D>,
    gate: (Tensor<2>, Option<Tensor<1>>),
    up: (Tensor<2>, Option<Tensor<1>>),
) -> Tensor<D> {
    let (gate, up) = (
        (dense(gate.0, x.dtype()), gate.1),
        (dense(up.0, x.dtype()), up.1),
    );
    #[cfg(feature = "cuda")]
    if route::kernels(&x)
        && gate.1.is_none()
        && up.1.is_none()
        && let Some(out) = cuda::gemv_silu_tensors(&x, &gate.0, &up.0, false)
    {
        return out;
    }
    let [g, u] = linear_group(&x, [gate, up]);
    crate::silu_mul(g, u)
}
