use std::ops::Range;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::module::linear;
use burn::tensor::{Bool, Device, Int, Tensor};
use llava_nn::{Linear, LinearConfig};

use crate::decode_graph::StepInputs;
use crate::decoder_layer::Residual;
use crate::device_map::DeviceMap;
use crate::kv_cache::KvCache;
use crate::mask::attention_bias;
use crate::{DecoderLayer, LlmError, Result, RmsNorm, RotaryEmbedding, TextConfig};

/// The decoder stack (transformers' `LlamaModel` and siblings): embeddings, layers, final norm.
#[derive(Module, Debug)]
pub struct DecoderModel {
    /// `[vocab, hidden]`.
    pub embed_tokens: Embedding,
    /// The decoder blocks.
    pub layers: Vec<DecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
}

/// A decoder with its language-model head (transformers' `*ForCausalLM`). Parameter paths are
/// transformers' (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`).
#[derive(Module, Debug)]
pub struct CausalLm {
    /// The decoder stack.
    pub model: DecoderModel,
    /// `[vocab, hidden]`; `None` when the embeddings are tied.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    config: TextConfig,
    #[module(skip)]
    rope: RotaryEmbedding,
    #[module(skip)]
    devices: DeviceMap,
}

/// What the decoder reads: token ids, or embeddings in which LLaVA has spliced image features.
#[derive(Debug, Clone)]
pub enum DecoderInput {
    /// `[batch, seq]`. Ids must be below `vocab_size` (callers that take ids from users check
    /// this, e.g. [`crate::Prefill::from_ids`]).
    Ids(Tensor<2, Int>),
    /// `[batch, seq, hidden]`, cast to the model's dtype if needed.
    Embeds(Tensor<3>),
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogitsFor {
    /// Every position (training, parity checks).
    #[default]
    All,
    /// Only the last position (generation).
    Last,
}

/// Optional inputs of [`CausalLm::forward`].
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// RoPE positions, `[batch, seq]`; default `cache.len() + 0..seq` for every row.
    pub positions: Option<Tensor<2, Int>>,
    /// Which key slots hold real tokens, `[batch, cache.len() + seq]` (false for left padding);
    /// default all.
    pub key_valid: Option<Tensor<2, Bool>>,
    /// Which positions get logits.
    pub logits: LogitsFor,
}

impl CausalLm {
    /// A model with lazy parameters shaped by `config` (nothing is allocated until loaded or
    /// first used).
    pub fn new(config: &TextConfig, device: &Device) -> Self {
        Self::new_mapped(config, &DeviceMap::single(device, config.num_hidden_layers))
    }

    /// A model whose parts live on the devices of `map` (which must name one device per
    /// layer); parameters are created, and later loaded, directly there.
    pub fn new_mapped(config: &TextConfig, map: &DeviceMap) -> Self {
        let (v, h) = (config.vocab_size, config.hidden_size);
        assert_eq!(
            map.layers.len(),
            config.num_hidden_layers,
            "the device map must name one device per layer"
        );
        let model = DecoderModel {
            embed_tokens: EmbeddingConfig::new(v, h).init(&map.embed),
            layers: map
                .layers
                .iter()
                .map(|device| DecoderLayer::new(config, device))
                .collect(),
            norm: RmsNorm::new(h, config.rms_norm_eps, &map.head),
        };
        let lm_head =
            (!config.tie_word_embeddings).then(|| LinearConfig::new(h, v).init(&map.head));
        Self {
            model,
            lm_head,
            rope: RotaryEmbedding::new(config.head_dim(), config.rope_theta()),
            config: config.clone(),
            devices: map.clone(),
        }
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// The device of the embeddings (where inputs go).
    pub fn device(&self) -> Device {
        self.devices.embed.clone()
    }

    /// Where every part lives.
    pub fn device_map(&self) -> &DeviceMap {
        &self.devices
    }

    /// An empty KV cache for `batch` sequences of up to `capacity` positions, each layer's
    /// buffers on that layer's device.
    pub fn new_cache(&self, batch: usize, capacity: usize, dtype: burn::tensor::DType) -> KvCache {
        KvCache::new_mapped(&self.config, batch, capacity, dtype, &self.devices.layers)
    }

    /// Token embeddings, `[batch, seq]` → `[batch, seq, hidden]`.
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        self.model.embed_tokens.forward(ids)
    }

    /// Runs the decoder and returns logits `[batch, seq or 1, vocab]` in the activation dtype.
    ///
    /// With a cache, the new keys and values are appended after its current length and
    /// attention covers every cached position; the cache must have been made for this batch.
    pub fn forward(
        &self,
        input: DecoderInput,
        cache: Option<&mut KvCache>,
        options: ForwardOptions,
    ) -> Result<Tensor<3>> {
        let logits_for = options.logits;
        let hidden = self.hidden_states(input, cache, options)?;
        let hidden = match logits_for {
            LogitsFor::All => hidden,
            LogitsFor::Last => {
                let s = hidden.dims()[1];
                hidden.narrow(1, s - 1, 1)
            }
        };
        Ok(self.logits(hidden))
    }

    /// The final-norm hidden states, `[batch, seq, hidden]`.
    pub fn hidden_states(
        &self,
        input: DecoderInput,
        mut cache: Option<&mut KvCache>,
        options: ForwardOptions,
    ) -> Result<Tensor<3>> {
        let x = match input {
            DecoderInput::Ids(ids) => self.embed(ids),
            // Spliced image features arrive in the projector's dtype (spec §5.3: cast to the
            // embedding dtype before the decoder).
            DecoderInput::Embeds(e) => e.cast(self.model.embed_tokens.weight.val().dtype()),
        };
        let [b, s, h] = x.dims();
        if h != self.config.hidden_size || s == 0 {
            return Err(LlmError::Input(format!(
                "embeddings of shape [{b}, {s}, {h}] for a model of hidden size {}",
                self.config.hidden_size
            )));
        }
        let device = x.device();
        let past = match cache.as_deref() {
            Some(c) if c.batch() != b => {
                return Err(LlmError::Input(format!(
                    "a batch of {b} sequences against a KV cache made for {}",
                    c.batch()
                )));
            }
            Some(c) => {
                c.reserve(s)?;
                c.len()
            }
            None => 0,
        };
        let positions = match options.positions {
            Some(p) if p.dims() != [b, s] => {
                return Err(LlmError::Input(format!(
                    "positions of shape {:?} for a batch of shape [{b}, {s}]",
                    p.dims()
                )));
            }
            Some(p) => p,
            None => Tensor::<1, Int>::arange(past as i64..(past + s) as i64, &device)
                .reshape([1, s])
                .expand([b, s]),
        };
        if let Some(valid) = &options.key_valid
            && valid.dims() != [b, past + s]
        {
            return Err(LlmError::Input(format!(
                "key mask of shape {:?}, expected [{b}, {}]",
                valid.dims(),
                past + s
            )));
        }
        // With a cache, attention reads its whole buffer (see `KvCache::append`).
        let slots = cache.as_deref().map_or(past + s, KvCache::slots);
        let mut rope = self.rope_tables(positions, x.dtype(), &device);
        let mut key_valid = options.key_valid;
        let mut biases: Vec<(Option<usize>, Tensor<4>)> = Vec::new();
        let mut x = Residual::new(x);
        let mut here = device;
        for (i, layer) in self.model.layers.iter().enumerate() {
            let target = &self.devices.layers[i];
            if *target != here {
                // A layer boundary between devices: activations and per-call tables follow.
                x = Residual::new(x.resolve().to_device(target));
                rope = rope.moved_to(target);
                key_valid = key_valid.map(|k| k.to_device(target));
                biases.clear();
                here = target.clone();
            }
            let window = self.config.sliding_window(i);
            let bias = match biases.iter().find(|(w, _)| *w == window) {
                Some((_, bias)) => bias.clone(),
                None => {
                    let bias = attention_bias(b, s, past, slots, key_valid.as_ref(), window, &here);
                    biases.push((window, bias.clone()));
                    bias
                }
            };
            let layer_cache = cache.as_deref_mut().map(|c| (c, i));
            let plain_causal = key_valid.is_none() && window.is_none_or(|w| w >= past + s);
            x = layer.forward_residual(x, &rope, bias, layer_cache, plain_causal);
        }
        if let Some(c) = cache {
            c.advance(s);
        }
        if here != self.devices.head {
            x = Residual::new(x.resolve().to_device(&self.devices.head));
        }
        Ok(x.normed(&self.model.norm).1)
    }

    /// The RoPE tables of `positions` (`[batch, seq]`).
    pub(crate) fn rope_tables(
        &self,
        positions: Tensor<2, Int>,
        dtype: burn::tensor::DType,
        device: &Device,
    ) -> crate::rope::RopeTables {
        self.rope.tables(positions, dtype, device)
    }

    /// The RoPE frequencies on `device` (see [`RotaryEmbedding::tables_from`]).
    pub(crate) fn rope_inv_freq(&self, device: &Device) -> Tensor<3> {
        self.rope.inv_freq_tensor(device)
    }

    /// One decode step that reads every per-step value from device tensors and issues device
    /// ops only (no host copies, no host-dependent offsets), so it can be recorded as a CUDA
    /// graph and replayed (`decode_graph`). The cache must write at `inputs.slot`
    /// ([`KvCache::write_at`]); its length is not advanced. Returns `[batch, vocab]` f32 logits,
    /// equal to [`CausalLm::forward`] on the same token. Single-device models only.
    #[cfg(test)]
    pub(crate) fn decode_step(
        &self,
        inputs: &StepInputs,
        cache: &mut KvCache,
        inv_freq: &Tensor<3>,
    ) -> Tensor<2> {
        let layers = 0..self.model.layers.len();
        let logits = self.decode_segment(None, inputs, cache, inv_freq, layers, true);
        let [b, _, v] = logits.dims();
        logits.reshape([b, v])
    }

    /// The layers `layers` of a decode step, all on one device, with the step's values read
    /// from `inputs` (on that device) as in [`CausalLm::decode_step`]: from the token ids when
    /// `x` is `None` (the first segment: the embedding), else from the hidden states `x`
    /// (`[batch, 1, hidden]`). Returns the hidden states, or with `last` the final norm and
    /// head's `[batch, 1, vocab]` logits in f32. A model split over devices runs one segment a
    /// device ([`CausalLm::decode_segments`]), each recordable as its own CUDA graph.
    pub(crate) fn decode_segment(
        &self,
        x: Option<Tensor<3>>,
        inputs: &StepInputs,
        cache: &mut KvCache,
        inv_freq: &Tensor<3>,
        layers: Range<usize>,
        last: bool,
    ) -> Tensor<3> {
        let x = x.unwrap_or_else(|| self.embed(inputs.ids.clone()));
        let rope = self
            .rope
            .tables_from(inputs.positions.clone(), inv_freq, x.dtype());
        let mut x = Residual::new(x);
        for i in layers {
            let bias = inputs.bias(self.config.sliding_window(i));
            x = self.model.layers[i].forward_residual(
                x,
                &rope,
                bias,
                Some((&mut *cache, i)),
                false,
            );
        }
        if last {
            self.logits(x.normed(&self.model.norm).1)
                .cast(burn::tensor::DType::F32)
        } else {
            x.resolve()
        }
    }

    /// The runs of consecutive decoder layers on one device, in order, when a decode step can
    /// run as one [`CausalLm::decode_segment`] per run: the embedding on the first run's device,
    /// the norm and head on the last's (a head tied to embeddings on another device cannot), and
    /// each device in one run only (one recorded graph a device).
    pub(crate) fn decode_segments(&self) -> Option<Vec<(Device, Range<usize>)>> {
        let runs = runs_of(&self.devices.layers);
        let (first, last) = (runs.first()?, runs.last()?);
        let tied_apart = self.lm_head.is_none() && self.devices.embed != last.0;
        let ends = self.devices.embed == first.0 && self.devices.head == last.0 && !tied_apart;
        (ends && each_once(&runs)).then_some(runs)
    }

    /// `[batch, seq, hidden]` → `[batch, seq, vocab]` through `lm_head` (or the tied
    /// embedding matrix).
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => linear(
                hidden.to_device(&self.devices.embed),
                self.model.embed_tokens.weight.val().transpose(),
                None,
            ),
        }
    }

    /// Every LoRA-capable linear layer with its module path, e.g.
    /// `model.layers.0.self_attn.q_proj` and `lm_head` (absent when tied).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (i, layer) in self.model.layers.iter_mut().enumerate() {
            let attn = &mut layer.self_attn;
            let mlp = &mut layer.mlp;
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.self_attn.q_proj"), &mut attn.q_proj));
            out.push((format!("{p}.self_attn.k_proj"), &mut attn.k_proj));
            out.push((format!("{p}.self_attn.v_proj"), &mut attn.v_proj));
            out.push((format!("{p}.self_attn.o_proj"), &mut attn.o_proj));
            out.push((format!("{p}.mlp.gate_proj"), &mut mlp.gate_proj));
            out.push((format!("{p}.mlp.up_proj"), &mut mlp.up_proj));
            out.push((format!("{p}.mlp.down_proj"), &mut mlp.down_proj));
        }
        if let Some(head) = &mut self.lm_head {
            out.push(("lm_head".to_string(), head));
        }
        out
    }

    /// Quantizes the weights of every decoder layer's projections (`lm_head` and the embeddings
    /// keep their dtype, as bitsandbytes and AWQ leave them).
    pub fn quantize(&mut self, method: llava_nn::QuantMethod) {
        for (path, layer) in self.linears_mut() {
            if path != "lm_head" {
                layer.quantize(method);
            }
        }
    }

    /// Folds every attached LoRA adapter into its base weight.
    pub fn merge_lora(&mut self) {
        for (_, layer) in self.linears_mut() {
            layer.merge();
        }
    }
}

/// Whether no item heads two of `runs`.
pub(crate) fn each_once<T: PartialEq>(runs: &[(T, Range<usize>)]) -> bool {
    runs.iter()
        .enumerate()
        .all(|(i, (d, _))| runs[..i].iter().all(|(e, _)| e != d))
}

/// The runs of equal consecutive items, with their index ranges.
pub(crate) fn runs_of<T: PartialEq + Clone>(items: &[T]) -> Vec<(T, Range<usize>)> {
    let mut runs: Vec<(T, Range<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match runs.last_mut() {
            Some((run, range)) if run == item => range.end = i + 1,
            _ => runs.push((item.clone(), i..i + 1)),
        }
    }
    runs
}
