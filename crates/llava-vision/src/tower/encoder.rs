//! The pre-LN transformer layer CLIP and SigLIP share (spec §2.1 step 4).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use llava_nn::{Linear, LinearConfig};

use super::config::{Activation, VisionConfig};
use llava_nn::LayerNorm;

/// Bidirectional multi-head attention with biased projections.
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// Query projection.
    pub q_proj: Linear,
    /// Key projection.
    pub k_proj: Linear,
    /// Value projection.
    pub v_proj: Linear,
    /// Output projection.
    pub out_proj: Linear,
    #[module(skip)]
    heads: usize,
}

impl SelfAttention {
    fn new(config: &VisionConfig, device: &Device) -> Self {
        let d = config.hidden_size;
        let linear = || {
            LinearConfig {
                d_input: d,
                d_output: d,
                bias: true,
            }
            .init(device)
        };
        Self {
            q_proj: linear(),
            k_proj: linear(),
            v_proj: linear(),
            out_proj: linear(),
            heads: config.num_attention_heads,
        }
    }

    /// `[n, t, d]` → `[n, t, d]`; scores and softmax in f32 (transformers' eager path, or a
    /// flash kernel on CUDA: [`llava_ops::full_attention`]).
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, t, d] = x.dims();
        let hd = d / self.heads;
        let split = |y: Tensor<3>| y.reshape([n, t, self.heads, hd]).swap_dims(1, 2);
        let [q, k, v] =
            Linear::forward_group([&self.q_proj, &self.k_proj, &self.v_proj], x).map(split);
        let scale = (hd as f64).powf(-0.5);
        let out = llava_ops::full_attention(q, k, v, scale);
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([n, t, d]))
    }
}

/// `fc2(act(fc1(x)))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Up projection.
    pub fc1: Linear,
    /// Down projection.
    pub fc2: Linear,
    #[module(skip)]
    activation: Activation,
}

impl Mlp {
    fn new(config: &VisionConfig, device: &Device) -> Self {
        let (d, i) = (config.hidden_size, config.intermediate_size);
        Self {
            fc1: LinearConfig {
                d_input: d,
                d_output: i,
                bias: true,
            }
            .init(device),
            fc2: LinearConfig {
                d_input: i,
                d_output: d,
                bias: true,
            }
            .init(device),
            activation: config.activation,
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.fc1.forward(x);
        let h = match self.activation {
            Activation::QuickGelu => llava_ops::quick_gelu(h),
            Activation::GeluTanh => llava_ops::gelu(h, true),
            Activation::Gelu => llava_ops::gelu(h, false),
        };
        self.fc2.forward(h)
    }
}

/// `h + attn(ln1(h))`, then `h + mlp(ln2(h))`.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Attention.
    pub self_attn: SelfAttention,
    /// Norm before attention.
    pub layer_norm1: LayerNorm,
    /// MLP.
    pub mlp: Mlp,
    /// Norm before the MLP.
    pub layer_norm2: LayerNorm,
}

impl EncoderLayer {
    pub(crate) fn new(config: &VisionConfig, device: &Device) -> Self {
        let norm = || LayerNorm::new(config.hidden_size, config.layer_norm_eps, device);
        Self {
            self_attn: SelfAttention::new(config, device),
            layer_norm1: norm(),
            mlp: Mlp::new(config, device),
            layer_norm2: norm(),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x));
        h.clone() + self.mlp.forward(self.layer_norm2.forward(h))
    }
}

/// The layer stack.
#[derive(Module, Debug)]
pub struct Encoder {
    /// Layers 0..n.
    pub layers: Vec<EncoderLayer>,
}
