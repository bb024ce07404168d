use burn::module::Module;
use burn::tensor::{Device, Tensor};
use llava_nn::{Linear, LinearConfig};

use crate::TextConfig;

/// The SwiGLU MLP: `down(silu(gate(x)) ⊙ up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[intermediate, hidden]`.
    pub gate_proj: Linear,
    /// `[intermediate, hidden]`.
    pub up_proj: Linear,
    /// `[hidden, intermediate]`.
    pub down_proj: Linear,
}

impl Mlp {
    /// Lazy parameters shaped by `config`.
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        let (h, i, bias) = (
            config.hidden_size,
            config.intermediate_size,
            config.mlp_bias,
        );
        Self {
            gate_proj: LinearConfig::new(h, i).with_bias(bias).init(device),
            up_proj: LinearConfig::new(h, i).with_bias(bias).init(device),
            down_proj: LinearConfig::new(i, h).with_bias(bias).init(device),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let act = Linear::forward_swiglu(&self.gate_proj, &self.up_proj, x);
        self.down_proj.forward(act)
    }
}
