use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::kv_cache::KvCache;
use crate::rope::RopeTables;
use crate::{Attention, Mlp, RmsNorm, TextConfig};

/// One pre-norm decoder block: `h = x + attn(norm₁(x))`, `out = h + mlp(norm₂(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// The MLP.
    pub mlp: Mlp,
}

impl DecoderLayer {
    /// Lazy parameters shaped by `config`.
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        let (h, eps) = (config.hidden_size, config.rms_norm_eps);
        Self {
            input_layernorm: RmsNorm::new(h, eps, device),
            self_attn: Attention::new(config, device),
            post_attention_layernorm: RmsNorm::new(h, eps, device),
            mlp: Mlp::new(config, device),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`; `plain_causal` as in
    /// [`Attention::forward`](crate::Attention).
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        bias: Tensor<4>,
        cache: Option<(&mut KvCache, usize)>,
        plain_causal: bool,
    ) -> Tensor<3> {
        let normed = self.input_layernorm.forward(x.clone());
        let attn = self
            .self_attn
            .forward(normed, rope, bias, cache, plain_causal);
        let (h, normed) = self.post_attention_layernorm.forward_added(x, attn);
        h + self.mlp.forward(normed)
    }
}
