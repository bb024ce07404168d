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
        if let Some(act) = self.fused_gate_up(&x) {
            return self.down_proj.forward(act);
        }
        let [gate, up] = LoraLinear::forward_shared([&self.gate_proj, &self.up_proj], x);
        self.down_proj.forward(llava_ops::silu_mul(gate, up))
    }

    /// `silu(gate(x)) ⊙ up(x)` in one kernel for decode rows on CUDA (unless
    /// `LLAVA_OPS_OFF=gemv_silu`), where neither layer has a bias or an adapter; `None` otherwise.
    fn fused_gate_up(&self, x: &Tensor<3>) -> Option<Tensor<3>> {
        let plain = |l: &LoraLinear| l.bias.is_none() && l.lora.is_none();
        if !plain(&self.gate_proj) || !plain(&self.up_proj) {
            return None;
        }
        llava_ops::gemv_silu(
            x,
            &self.gate_proj.weight.val(),
            &self.up_proj.weight.val(),
            false,
        )
    }
}
