//! The decoder one layer at a time, for training loops that keep only each layer's input and
//! run the layer again in the backward pass (per-layer recompute, `torch.utils.checkpoint` in
//! transformers; burn has no per-block API, `../shared/spec/training.md` §4.1). Every prompt
//! starts at position 0 with no padding on the left: training pads on the right, so the causal
//! mask alone hides the padding from the real tokens.

use burn::tensor::{Int, Tensor};

use crate::decoder_layer::Residual;
use crate::mask::attention_bias;
use crate::rope::RopeTables;
use crate::{CausalLm, DecoderLayer, LlmError, Result};

/// What every layer of one batch reads besides its input: the RoPE tables and the causal bias
/// of each layer's window.
#[derive(Debug, Clone)]
pub struct LayerTables {
    rope: RopeTables,
    /// Per layer: the bias and whether it is the plain causal mask.
    biases: Vec<(Tensor<4>, bool)>,
}

impl CausalLm {
    /// The decoder's input (`embeds` cast to the model's dtype, `[batch, seq, hidden]`) and the
    /// tables its layers read. Single-device models only.
    pub fn layer_tables(&self, embeds: Tensor<3>) -> Result<(Tensor<3>, LayerTables)> {
        let x = embeds.cast(self.model.embed_tokens.weight.val().dtype());
        let [b, s, h] = x.dims();
        if h != self.config().hidden_size || s == 0 {
            return Err(LlmError::Input(format!(
                "embeddings of shape [{b}, {s}, {h}] for a model of hidden size {}",
                self.config().hidden_size
            )));
        }
        let device = x.device();
        if self.device_map().layers.iter().any(|d| *d != device) {
            return Err(LlmError::Input(
                "layer-by-layer runs need the whole decoder on the embeddings' device".into(),
            ));
        }
        let positions = Tensor::<1, Int>::arange(0..s as i64, &device)
            .reshape([1, s])
            .expand([b, s]);
        let rope = self.rope_tables(positions, x.dtype(), &device);
        let mut made: Vec<(Option<usize>, Tensor<4>)> = Vec::new();
        let mut biases = Vec::with_capacity(self.model.layers.len());
        for i in 0..self.model.layers.len() {
            let window = self.config().sliding_window(i);
            let bias = match made.iter().find(|(w, _)| *w == window) {
                Some((_, bias)) => bias.clone(),
                None => {
                    let bias = attention_bias(b, s, 0, s, None, window, &device);
                    made.push((window, bias.clone()));
                    bias
                }
            };
            biases.push((bias, window.is_none_or(|w| w >= s)));
        }
        Ok((x, LayerTables { rope, biases }))
    }

    /// Decoder layer `i` on `x` (`[batch, seq, hidden]`, the residual added). `layer` is
    /// `self.model.layers[i]` or a copy of it (for example one whose parameters take no
    /// gradient, so that the run records no graph).
    pub fn layer_forward(
        &self,
        layer: &DecoderLayer,
        i: usize,
        x: Tensor<3>,
        tables: &LayerTables,
    ) -> Tensor<3> {
        let (bias, plain_causal) = &tables.biases[i];
        layer
            .forward_residual(
                Residual::new(x),
                &tables.rope,
                bias.clone(),
                None,
                *plain_causal,
            )
            .resolve()
    }

    /// The final norm on the last layer's output.
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.model.norm.forward(x)
    }
}
