use burn::module::Module;
use burn::tensor::{Device, Tensor};
use llava_nn::{Linear, LinearConfig};

use crate::TextConfig;
use crate::kv_cache::KvCache;
use crate::rope::RopeTables;

/// Multi-head self-attention with grouped key/value heads and rotate-half RoPE
/// (transformers' `LlamaAttention`, `MistralAttention`, `Qwen2Attention`).
#[derive(Module, Debug)]
pub struct Attention {
    /// `[heads·head_dim, hidden]` (+ bias for Qwen).
    pub q_proj: Linear,
    /// `[kv_heads·head_dim, hidden]` (+ bias for Qwen).
    pub k_proj: Linear,
    /// `[kv_heads·head_dim, hidden]` (+ bias for Qwen).
    pub v_proj: Linear,
    /// `[hidden, heads·head_dim]`.
    pub o_proj: Linear,
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
            q_proj: LinearConfig::new(h, heads * d)
                .with_bias(qkv_bias)
                .init(device),
            k_proj: LinearConfig::new(h, kv_heads * d)
                .with_bias(qkv_bias)
                .init(device),
            v_proj: LinearConfig::new(h, kv_heads * d)
                .with_bias(qkv_bias)
                .init(device),
            o_proj: LinearConfig::new(heads * d, h)
                .with_bias(config.o_bias())
                .init(device),
            heads,
            kv_heads,
            head_dim: d,
        }
    }

    /// The query, key and value projections of `x`, as one group ([`Linear::forward_group`]).
    fn projections(&self, x: Tensor<3>) -> [Tensor<3>; 3] {
        Linear::forward_group([&self.q_proj, &self.k_proj, &self.v_proj], x)
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
        let out = llava_ops::causal_attention(q, k, v, bias, past, plain_causal);
        let out = out
            .swap_dims(1, 2)
            .reshape([b, s, self.heads * self.head_dim]);
        self.o_proj.forward(out)
    }
}
