//! The attention dispatcher: the model calls one function per kind of attention and gets a
//! tensor back; which kernel runs (the flash prompt kernel, flash-decoding, or the chunked
//! reference built from the crate's products and probabilities op) is chosen here.

use burn::tensor::{DType, Tensor};

use crate::reference;
#[cfg(feature = "cuda")]
use crate::{Kernel, cuda, route};

/// Causal self-attention of a decoder: `q` `[b, heads, s, d]`, `k`/`v` `[b, kv_heads, t, d]`
/// (grouped heads read in place; `t` key slots, of which the first `past` are cached positions
/// and the next `s` the queries' own), `bias` the additive mask `[b, 1, s, t]` f32.
/// `plain_causal` says the mask is the causal one and nothing else (no padding, no sliding
/// window reaching in), which a flash kernel applies itself. Returns `[b, heads, s, d]`.
///
/// On CUDA: a prompt under the plain causal mask takes the flash prompt kernel, one query per
/// sequence takes flash-decoding; everything else (and every tensor on the CPU or under
/// autodiff) takes [`reference::causal_attention`].
pub fn causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
    past: usize,
    plain_causal: bool,
) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if plain_causal
        && q.dims()[2] > reference::CAUSAL_MIN_QUERIES
        && route::kernel(&q, Kernel::FlashPrefill)
    {
        let scale = 1.0 / (q.dims()[3] as f64).sqrt();
        if let Some(out) = cuda::flash_prefill(&q, &k, &v, past, scale) {
            return out;
        }
    }
    let _ = plain_causal;
    reference::causal_attention(q, k, v, bias, past)
}

/// Attention with no mask (every query sees every key: the vision towers): `q`, `k`, `v`
/// `[n, heads, t, d]`, scores scaled by `scale`. Returns `[n, heads, t, d]`. On CUDA the flash
/// kernel where it fits; elsewhere [`reference::full_attention`].
pub fn full_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if route::kernel(&q, Kernel::FlashVision)
        && let Some(out) = cuda::flash_attention_full(&q, &k, &v, scale)
    {
        return out;
    }
    reference::full_attention(q, k, v, scale)
}

/// One chunk of [`reference::causal_attention`]: a single query per sequence takes
/// flash-decoding on CUDA, everything else the materialised scores.
pub(crate) fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if q.dims()[2] == 1 && route::kernel(&q, Kernel::DecodeAttention) {
        let scale = 1.0 / (q.dims()[3] as f64).sqrt();
        if let Some(out) = cuda::decode_attention(&q, &k, &v, &bias, scale) {
            return out;
        }
    }
    reference::attend_materialised(q, k, v, bias)
}

/// Attention probabilities: the softmax over the last dim of `scores·scale + bias`, cast to
/// `dtype`. `scores` `[b, kv_heads, group·s, t]` f32 holds the `group` query heads of each
/// key/value head stacked over the `s` queries; `bias` `[b, 1, s, t]` f32 is shared by all
/// heads. One kernel on CUDA (one pass over the scores instead of eight); elsewhere burn's ops
/// in the same order.
pub fn attention_probs(scores: Tensor<4>, bias: Tensor<4>, scale: f64, dtype: DType) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if route::kernels(&scores)
        && let Some(out) = cuda::attention_probs(&scores, &bias, scale, dtype)
    {
        return out;
    }
    reference::attention_probs(scores, bias, scale, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{
        Bool, Device, Distribution, Int, module::attention, ops::AttentionModuleOptions,
    };

    /// The additive causal mask `[b, 1, s, slots]`: query `i` (at position `past + i`) sees
    /// keys `0..=past + i`.
    fn causal_bias(b: usize, s: usize, past: usize, slots: usize, device: &Device) -> Tensor<4> {
        let rows = Tensor::<1, Int>::arange(past as i64..(past + s) as i64, device)
            .reshape([s, 1])
            .expand([s, slots]);
        let cols = Tensor::<1, Int>::arange(0..slots as i64, device)
            .reshape([1, slots])
            .expand([s, slots]);
        let dead: Tensor<2, Bool> = cols.greater(rows);
        Tensor::<2>::zeros([s, slots], (device, DType::F32))
            .mask_fill(dead, f32::NEG_INFINITY)
            .reshape([1, 1, s, slots])
            .expand([b, 1, s, slots])
    }

    fn normal(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Against burn's reference attention with K/V heads repeated as transformers' `repeat_kv`.
    #[test]
    fn query_chunks_give_the_unchunked_result() {
        let device = Device::flex();
        let (b, heads, kv, s, d) = (1, 4, 2, 7, 8);
        let (q, k, v) = (
            normal([b, heads, s, d], &device),
            normal([b, kv, s, d], &device),
            normal([b, kv, s, d], &device),
        );
        let bias = causal_bias(b, s, 0, s, &device);
        let whole = reference::grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone());
        // 2 query rows per chunk: chunks of 2, 2, 2 and 1.
        let chunked = reference::chunked_attention(q, k, v, bias, 2 * b * heads * s * 4, None);
        assert_eq!(chunked.dims(), [b, heads, s, d]);
        let diff = max_diff(whole, chunked);
        assert!(diff < 1e-6, "max difference {diff}");
    }

    /// Chunks reading only the keys they can see, after 3 cached positions in a buffer of 12
    /// slots: chunks of 2 queries read 6, 8, 10 and 10 keys (blocks of 2).
    #[test]
    fn causal_chunks_read_only_visible_keys_and_give_the_whole_result() {
        let device = Device::flex();
        let (b, heads, kv, s, d, past, slots) = (1, 4, 2, 7, 8, 3, 12);
        let (q, k, v) = (
            normal([b, heads, s, d], &device),
            normal([b, kv, slots, d], &device),
            normal([b, kv, slots, d], &device),
        );
        let bias = causal_bias(b, s, past, slots, &device);
        let whole = reference::grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone());
        let rows = 2 * b * heads * slots * 4;
        let causal = reference::chunked_attention(q, k, v, bias, rows, Some((past, 2)));
        assert_eq!(causal.dims(), [b, heads, s, d]);
        let diff = max_diff(whole, causal);
        assert!(diff < 1e-6, "max difference {diff}");
    }

    #[test]
    fn grouped_equals_repeated_kv_causal_attention() {
        let device = Device::flex();
        let (b, heads, kv, s, d) = (2, 6, 2, 5, 8);
        let (q, k, v) = (
            normal([b, heads, s, d], &device),
            normal([b, kv, s, d], &device),
            normal([b, kv, s, d], &device),
        );
        let bias = causal_bias(b, s, 0, s, &device);
        let ours = causal_attention(q.clone(), k.clone(), v.clone(), bias, 0, true);
        let repeat = |t: Tensor<4>| {
            t.reshape([b, kv, 1, s, d])
                .expand([b, kv, heads / kv, s, d])
                .reshape([b, heads, s, d])
        };
        let opts = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let reference = attention(q, repeat(k), repeat(v), None, None, opts);
        let diff = max_diff(ours, reference);
        assert!(diff < 1e-5, "max diff {diff}");
    }

    #[test]
    fn full_attention_equals_unmasked_attention() {
        let device = Device::flex();
        let (n, heads, t, d) = (2, 3, 5, 8);
        let (q, k, v) = (
            normal([n, heads, t, d], &device),
            normal([n, heads, t, d], &device),
            normal([n, heads, t, d], &device),
        );
        let ours = full_attention(q.clone(), k.clone(), v.clone(), (d as f64).powf(-0.5));
        let reference = attention(q, k, v, None, None, AttentionModuleOptions::default());
        let diff = max_diff(ours, reference);
        assert!(diff < 1e-5, "max diff {diff}");
    }

    /// Under autodiff the dispatcher takes the reference path, and gradients flow through it.
    #[test]
    fn autodiff_takes_the_reference_path_with_gradients() {
        let device = Device::flex().autodiff();
        let (b, heads, kv, s, d) = (1, 2, 1, 20, 4);
        let q = normal([b, heads, s, d], &device).require_grad();
        let k = normal([b, kv, s, d], &device);
        let v = normal([b, kv, s, d], &device);
        let bias = causal_bias(b, s, 0, s, &device);
        let out = causal_attention(q.clone(), k, v, bias, 0, true);
        let grads = out.sum().backward();
        let g = q.grad(&grads).expect("q has a gradient");
        assert_eq!(g.dims(), [b, heads, s, d]);
    }
}
