use burn::module::Module;
use burn::tensor::{Device, Tensor};
use llava_lora::{LoraLinear, LoraLinearConfig};

use crate::TextConfig;
use crate::kv_cache::KvCache;
use crate::rope::RopeTables;

/// Multi-head self-attention with grouped key/value heads and rotate-half RoPE
/// (transformers' `LlamaAttention`, `MistralAttention`, `Qwen2Attention`).
#[derive(Module, Debug)]
pub struct Attention {
    /// `[heads·head_dim, hidden]` (+ bias for Qwen).
    pub q_proj: LoraLinear,
    /// `[kv_heads·head_dim, hidden]` (+ bias for Qwen).
    pub k_proj: LoraLinear,
    /// `[kv_heads·head_dim, hidden]` (+ bias for Qwen).
    pub v_proj: LoraLinear,
    /// `[hidden, heads·head_dim]`.
    pub o_proj: LoraLinear,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    kv_heads: usize,
    #[module(skip)]
    head_dim: usize,
}

impl Attention {
    /// Lazy parameters shaped by `config`.
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        let (h, d) = (config.hidden_size, config.head_dim());
        let (heads, kv_heads) = (config.num_attention_heads, config.num_kv_heads());
        let qkv_bias = config.qkv_bias();
        Self {
            q_proj: LoraLinearConfig::new(h, heads * d)
                .with_bias(qkv_bias)
                .init(device),
            k_proj: LoraLinearConfig::new(h, kv_heads * d)
                .with_bias(qkv_bias)
                .init(device),
            v_proj: LoraLinearConfig::new(h, kv_heads * d)
                .with_bias(qkv_bias)
                .init(device),
            o_proj: LoraLinearConfig::new(heads * d, h)
                .with_bias(config.o_bias())
                .init(device),
            heads,
            kv_heads,
            head_dim: d,
        }
    }

    /// The query, key and value projections of `x`: in one GEMV launch for decode rows on
    /// CUDA (unless `LLAVA_OPS_OFF=gemv_qkv`) where none has a bias or an adapter, else as one
    /// group of products ([`LoraLinear::forward_shared`]).
    fn projections(&self, x: Tensor<3>) -> [Tensor<3>; 3] {
        let layers = [&self.q_proj, &self.k_proj, &self.v_proj];
        if layers.iter().all(|l| l.bias.is_none() && l.lora.is_none()) {
            let weights = layers.map(|l| l.weight.val());
            if let Some(out) =
                llava_ops::gemv_qkv(&x, [&weights[0], &weights[1], &weights[2]], false)
            {
                return out;
            }
        }
        LoraLinear::forward_shared(layers, x)
    }

    /// `x`: `[batch, seq, hidden]`; `bias`: the additive mask `[batch, 1, seq, past + seq]`,
    /// `plain_causal` when it is the causal mask and nothing else (no padding, no window
    /// reaching in), which a flash kernel applies itself. With a cache, the new keys/values are
    /// written at its current length and attention runs over every cached position. Returns
    /// `[batch, seq, hidden]`.
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        bias: Tensor<4>,
        cache: Option<(&mut KvCache, usize)>,
        plain_causal: bool,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        // Heads split off as `[b, s, heads, d]` (a view of the projection), rotated there, then
        // moved in front of the sequence.
        let heads = |t: Tensor<3>, heads: usize| t.reshape([b, s, heads, self.head_dim]);
        let [q, k, v] = self.projections(x);
        let q = rope.apply_bshd(heads(q, self.heads)).swap_dims(1, 2);
        let k = rope.apply_bshd(heads(k, self.kv_heads)).swap_dims(1, 2);
        let v = heads(v, self.kv_heads).swap_dims(1, 2);
        let past = cache.as_ref().map_or(0, |(cache, _)| cache.len());
        let (k, v) = match cache {
            Some((cache, layer)) => cache.append(layer, k, v),
            None => (k, v),
        };
        // A prompt under the plain causal mask takes the flash kernel on CUDA where it fits.
        let flash = (plain_causal && s > CAUSAL_MIN_QUERIES && llava_ops::flash_prefill_in_model())
            .then(|| {
                let scale = 1.0 / (self.head_dim as f64).sqrt();
                llava_ops::flash_prefill(&q, &k, &v, past, scale)
            })
            .flatten();
        let out = flash.unwrap_or_else(|| causal_attention(q, k, v, bias, past));
        let out = out
            .swap_dims(1, 2)
            .reshape([b, s, self.heads * self.head_dim]);
        self.o_proj.forward(out)
    }
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
/// Mistral's 32 heads), so queries are taken in chunks whose scores fit [`SCORE_BYTES`].
///
/// Shapes: q `[b, heads, s, d]`, k/v `[b, kv_heads, t, d]`, bias `[b, 1, s, t]` (f32);
/// returns `[b, heads, s, d]`.
pub fn grouped_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    chunked_attention(q, k, v, bias, score_bytes(), None)
}

/// [`grouped_attention`] under a causal `bias` (query `i` sees no key past `past + i`, as every
/// mask of [`crate::mask`] does): a prompt's chunks of queries read only the keys they can see,
/// about half the scores of a prefill. Decode steps (few queries) keep the whole buffer, whose
/// fixed length a replayed graph needs.
pub(crate) fn causal_attention(
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

/// Queries from which a causal prompt's chunks read only the keys they can see.
const CAUSAL_MIN_QUERIES: usize = 16;

/// Keys a causal chunk reads are rounded up to a multiple of this (the kernels' tiles; the
/// decode products are slow on odd lengths, docs/benchmarks.md).
const KEY_BLOCK: usize = 256;

/// The most f32 attention scores one chunk of queries may hold, in bytes.
pub const SCORE_BYTES: usize = 256 << 20;

/// [`SCORE_BYTES`], or `LLAVA_ATTN_SCORE_MIB` MiB for A/B runs: fewer, larger chunks mean fewer
/// products (each a host round trip on cuBLAS) but more masked keys read and more memory.
fn score_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        std::env::var("LLAVA_ATTN_SCORE_MIB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&mib| mib > 0)
            .map_or(SCORE_BYTES, |mib| mib << 20)
    })
}

/// [`grouped_attention`] with the queries taken in chunks of at most `score_bytes` of scores;
/// with `causal` (`past`, key block), each chunk reads only the keys its last query can see,
/// rounded up to the block.
fn chunked_attention(
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
        attend(
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

/// One chunk of queries against every key (a single query: the decode kernel on CUDA, where
/// opted in).
fn attend(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    let [b, heads, s, d] = q.dims();
    let scale = 1.0 / (d as f64).sqrt();
    if s == 1
        && llava_ops::decode_attention_in_model()
        && let Some(out) = llava_ops::decode_attention(&q, &k, &v, &bias, scale)
    {
        return out;
    }
    let kv_heads = k.dims()[1];
    let group = heads / kv_heads;
    let dtype = q.dtype();
    let q = q.reshape([b, kv_heads, group * s, d]);
    let scores = llava_ops::matmul_wide(q, k.swap_dims(2, 3));
    let probs = llava_ops::attention_probs(scores, bias, scale, dtype);
    llava_ops::matmul(probs, v).reshape([b, heads, s, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, module::attention, ops::AttentionModuleOptions};

    /// Against burn's reference attention with K/V heads repeated as transformers' `repeat_kv`.
    #[test]
    fn query_chunks_give_the_unchunked_result() {
        let device = Device::flex();
        let (b, heads, kv, s, d) = (1, 4, 2, 7, 8);
        let normal = Distribution::Normal(0.0, 1.0);
        let q = Tensor::<4>::random([b, heads, s, d], normal, &device);
        let k = Tensor::<4>::random([b, kv, s, d], normal, &device);
        let v = Tensor::<4>::random([b, kv, s, d], normal, &device);
        let bias = crate::mask::attention_bias(b, s, 0, s, None, None, &device);
        let whole = grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone());
        // 2 query rows per chunk: chunks of 2, 2, 2 and 1.
        let chunked = chunked_attention(q, k, v, bias, 2 * b * heads * s * 4, None);
        assert_eq!(chunked.dims(), [b, heads, s, d]);
        let diff = (whole - chunked).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "max difference {diff}");
    }

    /// Chunks reading only the keys they can see, after 3 cached positions in a buffer of 12
    /// slots: chunks of 2 queries read 6, 8, 10 and 10 keys (blocks of 2).
    #[test]
    fn causal_chunks_read_only_visible_keys_and_give_the_whole_result() {
        let device = Device::flex();
        let (b, heads, kv, s, d, past, slots) = (1, 4, 2, 7, 8, 3, 12);
        let normal = Distribution::Normal(0.0, 1.0);
        let q = Tensor::<4>::random([b, heads, s, d], normal, &device);
        let k = Tensor::<4>::random([b, kv, slots, d], normal, &device);
        let v = Tensor::<4>::random([b, kv, slots, d], normal, &device);
        let bias = crate::mask::attention_bias(b, s, past, slots, None, None, &device);
        let whole = grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone());
        let rows = 2 * b * heads * slots * 4;
        let causal = chunked_attention(q, k, v, bias, rows, Some((past, 2)));
        assert_eq!(causal.dims(), [b, heads, s, d]);
        let diff = (whole - causal).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "max difference {diff}");
    }

    #[test]
    fn grouped_equals_repeated_kv_causal_attention() {
        let device = Device::flex();
        let (b, heads, kv, s, d) = (2, 6, 2, 5, 8);
        let q = Tensor::<4>::random([b, heads, s, d], Distribution::Normal(0.0, 1.0), &device);
        let k = Tensor::<4>::random([b, kv, s, d], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<4>::random([b, kv, s, d], Distribution::Normal(0.0, 1.0), &device);
        let bias = crate::mask::attention_bias(b, s, 0, s, None, None, &device);
        let ours = grouped_attention(q.clone(), k.clone(), v.clone(), bias);
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
        let diff = (ours - reference).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "max diff {diff}");
    }
}
