use burn::module::Module;
use burn::tensor::{Device, Tensor};
use llava_nn::{Linear, LinearConfig};

/// `mlp2x_gelu`, with transformers' names (`linear_1`, `linear_2`; original LLaVA's
/// `mm_projector.0` / `.2` map onto them).
#[derive(Module, Debug)]
pub struct Projector {
    /// Vision width → text width.
    pub linear_1: Linear,
    /// Text width → text width.
    pub linear_2: Linear,
}

impl Projector {
    /// A projector from `vision` to `text` widths, with biases (lazy parameters).
    pub fn new(vision: usize, text: usize, device: &Device) -> Self {
        Self {
            linear_1: LinearConfig {
                d_input: vision,
                d_output: text,
                bias: true,
            }
            .init(device),
            linear_2: LinearConfig {
                d_input: text,
                d_output: text,
                bias: true,
            }
            .init(device),
        }
    }

    /// `[..., vision]` → `[..., text]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.linear_2
            .forward(llava_ops::gelu(self.linear_1.forward(x), false))
    }

    /// Both linears with their module paths.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        vec![
            ("linear_1".to_string(), &mut self.linear_1),
            ("linear_2".to_string(), &mut self.linear_2),
        ]
    }
}
