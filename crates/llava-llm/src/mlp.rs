use burn::module::Module;
use burn::tensor::{Device, Tensor};
use llava_lora::{LoraLinear, LoraLinearConfig};

use crate::TextConfig;

/// The SwiGLU MLP: `down(silu(gate(x)) ⊙ up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[intermediate, hidden]`.
    pub gate_proj: LoraLinear,
    /// `[intermediate, hidden]`.
    pub up_proj: LoraLinear,
    /// `[hidden, intermediate]`.
    pub down_proj: LoraLinear,
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
            gate_proj: LoraLinearConfig::new(h, i).with_bias(bias).init(device),
            up_proj: LoraLinearConfig::new(h, i).with_bias(bias).init(device),
            down_proj: LoraLinearConfig::new(i, h).with_bias(bias).init(device),
        }
    }

    /// `[batch, seq, hidden]` → `[batch, seq, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let act = LoraLinear::forward_swiglu(&self.gate_proj, &self.up_proj, x);
        self.down_proj.forward(act)
    }
}
