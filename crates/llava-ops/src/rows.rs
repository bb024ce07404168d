//! Row ops (norms, softmax, reductions, argmax) and elementwise ops (activations, RoPE, the
//! SwiGLU gate): one kernel each on CUDA, burn's ops ([`crate::reference`]) elsewhere.

use burn::tensor::{Int, Tensor};

use crate::reference;
#[cfg(feature = "cuda")]
use crate::{cuda, route};

/// Runs the CUDA kernel `$kernel` where the route takes `$x`, else returns `$fallback`.
macro_rules! dispatch {
    ($x:expr, $kernel:expr, $fallback:expr) => {{
        #[cfg(feature = "cuda")]
        if route::kernels($x)
            && let Some(out) = $kernel
        {
            return out;
        }
        $fallback
    }};
}

/// GELU (`tanh` approximation or exact) computed in f32 and rounded once to `x`'s dtype, as
/// PyTorch's half-precision kernels compute it (burn's GELU on CUDA is five tensor ops, each
/// rounded). One kernel on CUDA.
pub fn gelu<const D: usize>(x: Tensor<D>, tanh: bool) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::activation(
            &x,
            if tanh {
                cuda::Activation::GeluTanh
            } else {
                cuda::Activation::Gelu
            }
        ),
        reference::gelu(x, tanh)
    )
}

/// transformers' QuickGELU, `x·σ(1.702·x)`, with its three half-precision roundings: `1.702·x`
/// (the scalar kept in f32, as PyTorch keeps a Python float), its sigmoid, the product. One
/// kernel on CUDA (burn's ops take about ten launches over the MLP's width).
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::activation(&x, cuda::Activation::QuickGelu),
        reference::quick_gelu(x)
    )
}

/// Softmax over the last dim. On CUDA: the max subtracted, exp, divided by the sum, with both
/// reductions routed; elsewhere burn's `softmax`.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    dispatch!(&x, cuda::softmax_last(&x), reference::softmax_last(x))
}

/// LayerNorm over the last dim as PyTorch computes it in half precision: mean and variance in
/// f32, `(x − mean)/√(var + eps)·weight + bias` in f32, cast back to `x`'s dtype.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::layer_norm(&x, &weight, &bias, eps),
        reference::layer_norm(x, weight, bias, eps)
    )
}

/// `(x + delta, rms_norm(x + delta))`: the residual add (rounded to the dtype, as burn's add
/// rounds it) and the next norm. One kernel on CUDA (one pass less over the hidden states).
pub fn add_rms_norm<const D: usize>(
    x: Tensor<D>,
    delta: Tensor<D>,
    weight: Tensor<1>,
    eps: f64,
) -> (Tensor<D>, Tensor<D>) {
    dispatch!(
        &x,
        cuda::add_rms_norm(&x, &delta, &weight, eps),
        reference::add_rms_norm(x, delta, weight, eps)
    )
}

/// RMSNorm over the last dim as transformers computes it: the mean square in f32, the
/// normalised value cast back to `x`'s dtype, then multiplied by `weight` (cast to that dtype).
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::rms_norm(&x, &weight, eps),
        reference::rms_norm(x, weight, eps)
    )
}

/// Rotate-half RoPE on `x` `[b, s, heads, d]` with `cos` and `sin_signed` `[b, s, d]` (the
/// sine with its first half negated): `x·cos + swap_halves(x)·sin_signed`, the three ops of
/// transformers' formula each rounded to `x`'s dtype.
pub fn rope_bshd(x: Tensor<4>, cos: Tensor<3>, sin_signed: Tensor<3>) -> Tensor<4> {
    dispatch!(
        &x,
        cuda::rope_bshd(&x, &cos, &sin_signed),
        reference::rope_bshd(x, cos, sin_signed)
    )
}

/// The SwiGLU gate `silu(gate) ⊙ up`, each rounded to the inputs' dtype as transformers rounds
/// them.
pub fn silu_mul<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    dispatch!(
        &gate,
        cuda::silu_mul(&gate, &up),
        reference::silu_mul(gate, up)
    )
}

/// Maximum over the last dim, kept as a dim of size 1.
pub fn max_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::reduce_last(&x, cuda::RowOp::Max),
        reference::max_last(x)
    )
}

/// Sum over the last dim, kept as a dim of size 1.
pub fn sum_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::reduce_last(&x, cuda::RowOp::Sum),
        reference::sum_last(x)
    )
}

/// Mean over the last dim, kept as a dim of size 1.
pub fn mean_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    dispatch!(
        &x,
        cuda::reduce_last(&x, cuda::RowOp::Mean),
        reference::mean_last(x)
    )
}

/// The index of each row's maximum (the first on ties), `[rows, 1]`.
pub fn argmax_last(x: Tensor<2>) -> Tensor<2, Int> {
    dispatch!(&x, cuda::argmax_last(&x), reference::argmax_last(x))
}
