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

    /// `h = x + attn(norm₁(x))`, then `h` and `mlp(norm₂(h))` handed on unadded, for the next
    /// norm to add in its own kernel; `plain_causal` as in [`Attention::forward`](crate::Attention).
    pub(crate) fn forward_residual(
        &self,
        x: Residual,
        rope: &RopeTables,
        bias: Tensor<4>,
        cache: Option<(&mut KvCache, usize)>,
        plain_causal: bool,
    ) -> Residual {
        let (x, normed) = x.normed(&self.input_layernorm);
        let attn = self
            .self_attn
            .forward(normed, rope, bias, cache, plain_causal);
        let (h, normed) = self.post_attention_layernorm.forward_added(x, attn);
        Residual {
            x: h,
            pending: Some(self.mlp.forward(normed)),
        }
    }
}

/// The residual stream between decoder layers: the hidden states `x`, and the last MLP's
/// output while it is not yet added. The next norm adds it in its own kernel (one pass less
/// over the hidden states a layer on CUDA; the same roundings as the add, then the norm).
pub(crate) struct Residual {
    x: Tensor<3>,
    pending: Option<Tensor<3>>,
}

impl Residual {
    /// Hidden states with nothing pending.
    pub(crate) fn new(x: Tensor<3>) -> Self {
        Self { x, pending: None }
    }

    /// The hidden states with anything pending added.
    pub(crate) fn resolve(self) -> Tensor<3> {
        match self.pending {
            Some(delta) => self.x + delta,
            None => self.x,
        }
    }

    /// `(states, norm(states))`, the pending output added first.
    pub(crate) fn normed(self, norm: &RmsNorm) -> (Tensor<3>, Tensor<3>) {
        match self.pending {
            Some(delta) => norm.forward_added(self.x, delta),
            None => {
                let normed = norm.forward(self.x.clone());
                (self.x, normed)
            }
        }
    }
}
