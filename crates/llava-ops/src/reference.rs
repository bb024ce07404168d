//! The reference path: each op as burn tensor ops, with the roundings transformers' (PyTorch's)
//! kernels make. It runs on the CPU, under autodiff (training), and on CUDA where a kernel does
//! not take the operands or is turned off. A formula built from other ops calls the crate's
//! dispatched ops for them, so on CUDA a formula whose own kernel is off still uses the
//! others'; elsewhere every piece is burn's.

use burn::tensor::{DType, Int, Tensor};

use crate::chunked;

/// See [`crate::matmul`].
pub fn matmul<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    lhs.matmul(rhs)
}

/// See [`crate::matmul_wide`]: the product rounded to the inputs' dtype, then widened
/// (transformers' eager attention scores).
pub fn matmul_wide<const D: usize>(lhs: Tensor<D>, rhs: Tensor<D>) -> Tensor<D> {
    lhs.matmul(rhs).cast(DType::F32)
}

/// See [`crate::linear`]: in half precision a bias is added to f32 sums and rounded once.
pub fn linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    let dtype = x.dtype();
    if let Some(split) = chunked::split_of(&x) {
        return match bias {
            Some(b) if matches!(dtype, DType::BF16 | DType::F16) => {
                let wide = weight.cast(DType::F32).transpose();
                chunked::linear(x.cast(DType::F32), wide, Some(b.cast(DType::F32)), split)
                    .cast(dtype)
            }
            bias => chunked::linear(x, weight.transpose(), bias, split),
        };
    }
    match bias {
        Some(b) if matches!(dtype, DType::BF16 | DType::F16) => {
            let wide = |t: Tensor<2>| t.cast(DType::F32);
            burn::tensor::module::linear(
                x.cast(DType::F32),
                wide(weight).transpose(),
                Some(b.cast(DType::F32)),
            )
            .cast(dtype)
        }
        bias => burn::tensor::module::linear(x, weight.transpose(), bias),
    }
}

/// See [`crate::gelu`].
pub fn gelu<const D: usize>(x: Tensor<D>, tanh: bool) -> Tensor<D> {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let y = if tanh {
        burn::tensor::activation::gelu_approximate(x)
    } else {
        burn::tensor::activation::gelu(x)
    };
    y.cast(dtype)
}

/// See [`crate::quick_gelu`].
pub fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    let round = |t: Tensor<D>| t.cast(dtype).cast(DType::F32);
    let wide = x.cast(DType::F32);
    let scaled = round(wide.clone() * 1.702);
    let sigmoid = round(burn::tensor::activation::sigmoid(scaled));
    (wide * sigmoid).cast(dtype)
}

/// See [`crate::softmax_last`].
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::softmax(x, D - 1)
}

/// See [`crate::attention_probs`].
pub fn attention_probs(scores: Tensor<4>, bias: Tensor<4>, scale: f64, dtype: DType) -> Tensor<4> {
    let [b, kv, rows, t] = scores.dims();
    let s = bias.dims()[2];
    let x =
        scores.mul_scalar(scale).reshape([b, kv, rows / s, s, t]) + bias.reshape([b, 1, 1, s, t]);
    crate::softmax_last(x).cast(dtype).reshape([b, kv, rows, t])
}

/// See [`crate::layer_norm`].
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let mean = crate::mean_last(x.clone());
    let centred = x - mean;
    let var = crate::mean_last(centred.clone().square());
    let normed = centred * var.add_scalar(eps).sqrt().recip();
    let (w, b) = (weight.cast(DType::F32), bias.cast(DType::F32));
    if let Some(split) = chunked::split_of(&normed) {
        let dims = normed.dims();
        let y =
            chunked::chunked(normed, split) * chunked::spread(w, split) + chunked::spread(b, split);
        return chunked::unchunked(y, dims).cast(dtype);
    }
    (normed * w.unsqueeze::<D>() + b.unsqueeze::<D>()).cast(dtype)
}

/// See [`crate::rms_norm`].
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: Tensor<1>, eps: f64) -> Tensor<D> {
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let mean_square = crate::mean_last(x.clone().square());
    let normed = x * mean_square.add_scalar(eps).sqrt().recip();
    let normed = normed.cast(dtype);
    let weight = weight.cast(dtype);
    if let Some(split) = chunked::split_of(&normed) {
        let dims = normed.dims();
        let y = chunked::chunked(normed, split) * chunked::spread(weight, split);
        return chunked::unchunked(y, dims);
    }
    normed * weight.unsqueeze::<D>()
}

/// See [`crate::patch_linear`].
pub fn patch_linear<const D: usize>(
    x: Tensor<D>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
) -> Tensor<D> {
    match chunked::split_of(&x) {
        Some(split) => chunked::linear(x, weight.transpose(), bias, split),
        None => burn::tensor::module::linear(x, weight.transpose(), bias),
    }
}

/// See [`crate::add_rms_norm`].
pub fn add_rms_norm<const D: usize>(
    x: Tensor<D>,
    delta: Tensor<D>,
    weight: Tensor<1>,
    eps: f64,
) -> (Tensor<D>, Tensor<D>) {
    let sum = x + delta;
    let normed = crate::rms_norm(sum.clone(), weight, eps);
    (sum, normed)
}

/// See [`crate::rope_bshd`].
pub fn rope_bshd(x: Tensor<4>, cos: Tensor<3>, sin_signed: Tensor<3>) -> Tensor<4> {
    let d = x.dims()[3];
    let swapped = Tensor::cat(
        vec![
            x.clone().narrow(3, d / 2, d / 2),
            x.clone().narrow(3, 0, d / 2),
        ],
        3,
    );
    x * cos.unsqueeze_dim::<4>(2) + swapped * sin_signed.unsqueeze_dim::<4>(2)
}

/// See [`crate::silu_mul`].
pub fn silu_mul<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    burn::tensor::activation::silu(gate) * up
}

/// See [`crate::max_last`].
pub fn max_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.max_dim(D - 1)
}

/// See [`crate::sum_last`].
pub fn sum_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.sum_dim(D - 1)
}

/// See [`crate::mean_last`].
pub fn mean_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.mean_dim(D - 1)
}

/// See [`crate::argmax_last`].
pub fn argmax_last(x: Tensor<2>) -> Tensor<2, Int> {
    x.argmax(1)
}

/// `softmax(q·kᵀ/√d + bias)·v` with query head `j` reading key/value head
/// `j / (heads / kv_heads)`, as transformers' `repeat_kv` arranges them, but without copying
/// K/V: the query heads of one group are stacked along the sequence axis instead.
///
/// Precision: softmax in f32 and probabilities cast back, as transformers does. The scores are
/// f32 as the kernel writes them on CUDA (as SDPA keeps them); elsewhere they are rounded to the
/// activation dtype first (transformers' eager attention, the CPU fixtures' reference).
///
/// The f32 scores of a long prompt are large (a 3k-position llava prompt: 1.2 GB per layer for
/// Mistral's 32 heads), so queries are taken in chunks whose scores fit
/// `KernelOptions::attention_score_mib`.
///
/// Shapes: q `[b, heads, s, d]`, k/v `[b, kv_heads, t, d]`, bias `[b, 1, s, t]` (f32);
/// returns `[b, heads, s, d]`.
pub fn grouped_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    chunked_attention(q, k, v, bias, score_bytes(), None)
}

/// [`grouped_attention`] under a causal `bias` (query `i` sees no key past `past + i`): a
/// prompt's chunks of queries read only the keys they can see, about half the scores of a
/// prefill. Decode steps (few queries) keep the whole buffer, whose fixed length a replayed
/// graph needs.
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
    past: usize,
) -> Tensor<4> {
    let s = q.dims()[2];
    let causal = (s > CAUSAL_MIN_QUERIES).then_some((past, KEY_BLOCK));
    chunked_attention(q, k, v, bias, score_bytes(), causal)
}

/// Attention with no mask (every query sees every key: the vision towers), scores and softmax
/// in f32 (transformers' eager path). q `[n, heads, t, d]`, k/v `[n, heads, t, d]`.
pub fn full_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    let [n, _, t, _] = q.dims();
    let dtype = q.dtype();
    let scores = crate::matmul_wide(q, k.swap_dims(2, 3));
    // A zero bias broadcast to every row, so the scale, softmax and cast are the decoder's one
    // probabilities kernel on CUDA (burn's ops: several passes over the scores).
    let zero = Tensor::<4>::zeros([1, 1, 1, 1], (&scores.device(), DType::F32));
    let probs = crate::attention_probs(scores, zero.expand([n, 1, t, t]), scale, dtype);
    crate::matmul(probs, v)
}

/// Queries from which a causal prompt's chunks read only the keys they can see (and from which
/// the flash prompt kernel is worth its launch).
pub const CAUSAL_MIN_QUERIES: usize = 16;

/// Keys a causal chunk reads are rounded up to a multiple of this (the kernels' tiles; the
/// decode products are slow on odd lengths, docs/benchmarks.md).
const KEY_BLOCK: usize = 256;

fn score_bytes() -> usize {
    crate::options::current().attention_score_mib << 20
}

/// [`grouped_attention`] with the queries taken in chunks of at most `score_bytes` of scores;
/// with `causal` (`past`, key block), each chunk reads only the keys its last query can see,
/// rounded up to the block.
pub(crate) fn chunked_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
    score_bytes: usize,
    causal: Option<(usize, usize)>,
) -> Tensor<4> {
    let [b, heads, s, _] = q.dims();
    let t = k.dims()[2];
    let rows = (score_bytes / (b * heads * t * 4)).max(1);
    let chunk = |start: usize, len: usize| {
        let keys = causal.map_or(t, |(past, block)| {
            (past + start + len).next_multiple_of(block).min(t)
        });
        let narrow = |x: &Tensor<4>| x.clone().narrow(2, 0, keys);
        crate::attention::attend(
            q.clone().narrow(2, start, len),
            narrow(&k),
            narrow(&v),
            bias.clone().narrow(2, start, len).narrow(3, 0, keys),
        )
    };
    if rows >= s {
        return chunk(0, s);
    }
    let chunks = (0..s)
        .step_by(rows)
        .map(|start| chunk(start, rows.min(s - start)))
        .collect();
    Tensor::cat(chunks, 2)
}

/// One chunk of queries against every key: scores, probabilities, `p·V`.
pub(crate) fn attend_materialised(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
) -> Tensor<4> {
    let [b, heads, s, d] = q.dims();
    let scale = 1.0 / (d as f64).sqrt();
    let kv_heads = k.dims()[1];
    let group = heads / kv_heads;
    let dtype = q.dtype();
    let q = q.reshape([b, kv_heads, group * s, d]);
    let scores = crate::matmul_wide(q, k.swap_dims(2, 3));
    let probs = crate::attention_probs(scores, bias, scale, dtype);
    crate::matmul(probs, v).reshape([b, heads, s, d])
}
