//! The composed LLaVA-NeXT model: vision tower → projector → packing → features written at
//! the image positions of the prompt's embeddings → decoder (spec §3, §4).

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::{Initializer, Module, Param};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use llava_checkpoint::{CheckpointError, CheckpointFiles, KeyMap, LoadReport, load_module};
use llava_llm::{
    CausalLm, DecoderInput, DeviceMap, ForwardOptions, GenerateOptions, Generator, LoadOptions,
    LogitsFor, Prefill, decoder_key_map,
};
use llava_nn::{Linear, PeftAdapter};
use llava_vision::{ProcessedImage, Processor, ProcessorConfig, RgbImage, VisionTower};

use crate::{Projector, pack_images};

use crate::config::{Layout, LlavaConfig};
use crate::keys::{ignorable, llava_key_map};
use crate::{LlavaError, Result};

/// Original LLaVA's image placeholder in token ids: one per image, replaced by all its rows.
pub const IMAGE_SENTINEL: i64 = -200;

/// Image feature rows as one table `[Σ tokens, text hidden]`, and each image's
/// `(first row, rows)` in it.
pub type FeatureRows = (Tensor<2>, Vec<(usize, usize)>);

/// LLaVA-NeXT / OneVision with transformers' module names.
#[derive(Module, Debug)]
pub struct LlavaNext {
    /// CLIP or SigLIP.
    pub vision_tower: VisionTower,
    /// `mlp2x_gelu`.
    pub multi_modal_projector: Projector,
    /// Appended after every row of tile features, `[text hidden]`.
    pub image_newline: Param<Tensor<1>>,
    /// The decoder.
    pub language_model: CausalLm,
    #[module(skip)]
    config: LlavaConfig,
}

/// One prompt: token ids with image placeholders, and its images in order of appearance.
///
/// Placeholders are either llava-hf's `image_token_index` repeated once per feature row (the
/// count must equal the images' rows, in order) or original LLaVA's [`IMAGE_SENTINEL`], one per
/// image. The sentinel works with every checkpoint; the repeated token only where the config
/// names one (llava-hf). One prompt uses one kind.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    /// Token ids.
    pub ids: Vec<i64>,
    /// Preprocessed images.
    pub images: Vec<ProcessedImage>,
}

/// Which side of a batch's shorter rows the padding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Before the tokens (generation: every row ends at the last position).
    Left,
    /// After the tokens (training: positions start at 0 in every row).
    Right,
}

/// Padded embeddings ready for the decoder.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    /// `[batch, len, hidden]`, zeros on the padding.
    pub embeds: Tensor<3>,
    /// `[batch][len]`: false on the padding.
    pub attention_mask: Vec<Vec<bool>>,
    /// Per row, the ids the repetition penalty counts.
    pub history: Vec<Vec<u32>>,
    /// Per row, the feature rows of each image.
    pub image_tokens: Vec<Vec<usize>>,
}

/// Where one position of a prepared row comes from in the gather table.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The `k`-th text token of the batch.
    Text(usize),
    /// Row `r` of the images' feature table.
    Image(usize),
}

impl LlavaNext {
    /// A model with lazy parameters for `config`.
    pub fn new(config: &LlavaConfig, device: &Device) -> Self {
        Self::new_mapped(
            config,
            &DeviceMap::single(device, config.text.num_hidden_layers),
        )
    }

    /// A model split over devices: the vision tower, projector and `image_newline` with the
    /// embeddings on `map.embed`, each decoder layer on its device.
    pub fn new_mapped(config: &LlavaConfig, map: &DeviceMap) -> Self {
        let device = &map.embed;
        Self {
            vision_tower: VisionTower::new(&config.vision, device),
            multi_modal_projector: Projector::new(
                config.vision.hidden_size,
                config.text.hidden_size,
                device,
            ),
            image_newline: Initializer::Zeros.init([config.text.hidden_size], device),
            language_model: CausalLm::new_mapped(&config.text, map),
            config: config.clone(),
        }
    }

    /// Reads `config.json` and the weights of a checkpoint directory in either layout.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let config = LlavaConfig::from_dir(dir)?;
        let files = CheckpointFiles::discover(dir)?;
        Self::load(&config, &files, device, options)
    }

    /// Loads `files` into a model for `config`. Missing or mis-shaped tensors are errors naming
    /// them; so are tensors no part of the model takes. A checkpoint without vision-tower
    /// weights takes the tower from `mm_vision_tower` when that is a local directory; one that
    /// carries them (LLaVA-1.6 fine-tuned its CLIP) always uses its own.
    pub fn load(
        config: &LlavaConfig,
        files: &CheckpointFiles,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self> {
        let mut model = match &options.device_map {
            Some(map) => {
                if map.layers.len() != config.text.num_hidden_layers {
                    return Err(LlavaError::Input(format!(
                        "the device map places {} layers but the model has {}",
                        map.layers.len(),
                        config.text.num_hidden_layers
                    )));
                }
                Self::new_mapped(config, map)
            }
            None => Self::new(config, device),
        };
        let keys = checkpoint_keys(files)?;
        let map = llava_key_map();
        let opts = |key_map: KeyMap| llava_checkpoint::LoadOptions {
            key_map,
            dtype: Some(options.dtype),
            progress: options.progress,
        };
        let strip = |prefix: &str| {
            map.clone().then(
                &KeyMap::new([(format!("^{}", regex_escape(prefix)), String::new())])
                    .expect("valid"),
            )
        };
        let has_tower = keys.iter().any(|k| map.map(k).starts_with("vision_tower."));
        let mut parts: Vec<(KeyMap, LoadReport)> = Vec::new();
        if has_tower {
            let m = strip("vision_tower.");
            let report = load_module(&mut model.vision_tower, files, &opts(m.clone()))?;
            parts.push((m, report));
        } else {
            let first = model.device();
            model.vision_tower = load_stock_tower(config, &first, &opts(KeyMap::identity()))?;
        }
        let m = strip("multi_modal_projector.");
        let report = load_module(&mut model.multi_modal_projector, files, &opts(m.clone()))?;
        parts.push((m, report));
        let mut newline = NewlineHolder {
            image_newline: model.image_newline.clone(),
        };
        let report = load_module(&mut newline, files, &opts(map.clone()))?;
        model.image_newline = newline.image_newline;
        parts.push((map.clone(), report));
        let m = decoder_key_map();
        let report = load_module(&mut model.language_model, files, &opts(m.clone()))?;
        parts.push((m, report));

        let unused_sets: Vec<BTreeSet<&String>> = parts
            .iter()
            .map(|(_, r)| r.unused.iter().collect())
            .collect();
        let tied = config.text.tie_word_embeddings;
        let unused: Vec<String> = keys
            .iter()
            .filter(|k| {
                parts
                    .iter()
                    .zip(&unused_sets)
                    .all(|((m, _), set)| set.contains(&m.map(k)))
            })
            .filter(|k| !ignorable(&map.map(k)))
            .filter(|k| !(tied && map.map(k) == "language_model.lm_head.weight"))
            .filter(|k| has_tower || !map.map(k).starts_with("vision_tower."))
            .cloned()
            .collect();
        if !unused.is_empty() {
            return Err(LlavaError::UnusedTensors {
                dir: files.origin.clone(),
                names: unused,
            });
        }
        tracing::info!(origin = %files.origin.display(), tensors = keys.len(), "LLaVA model loaded");
        model.release_pool_memory();
        Ok(model)
    }

    /// Gives the pool's unused memory (what loading left behind) back to the driver, on every
    /// device of the model.
    pub fn release_pool_memory(&self) {
        for device in self.language_model.device_map().devices() {
            device.memory_cleanup();
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LlavaConfig {
        &self.config
    }

    /// Image preprocessing for this checkpoint (geometry in its convention).
    pub fn processor(&self) -> &ProcessorConfig {
        &self.config.processor
    }

    /// Preprocesses a decoded image for this checkpoint, as the only image of its prompt.
    pub fn process_image(&self, image: &RgbImage) -> Result<ProcessedImage> {
        let mut processed = self
            .image_processor()
            .process(std::slice::from_ref(image))?;
        Ok(processed.remove(0))
    }

    /// Preprocesses the images of one prompt ([`LlavaConfig::image_processor`]'s rule).
    pub fn process_images(&self, images: &[RgbImage]) -> Result<Vec<ProcessedImage>> {
        Ok(self.image_processor().process(images)?)
    }

    /// This checkpoint's image preprocessing, which needs no model.
    pub fn image_processor(&self) -> Processor {
        self.config.image_processor()
    }

    /// The device holding the parameters.
    pub fn device(&self) -> Device {
        self.language_model.device()
    }

    /// Each image's feature rows `[tokens, text hidden]`: all tiles of all images go through the
    /// tower and projector together, then each image is packed by its own layout.
    pub fn image_features(&self, images: &[&ProcessedImage]) -> Result<Vec<Tensor<2>>> {
        let Some((table, spans)) = self.image_feature_rows(images)? else {
            return Ok(Vec::new());
        };
        let d = table.dims()[1];
        Ok(spans
            .into_iter()
            .map(|(start, n)| table.clone().slice([start..start + n, 0..d]))
            .collect())
    }

    /// The images' feature rows as one table `[Σ tokens, text hidden]` and each image's
    /// `(first row, rows)` in it (`None` for no image). All tiles go through the tower and
    /// projector together; the images of one layout are packed together ([`pack_images`]), so
    /// a batch costs a few launches per layout rather than per image.
    pub fn image_feature_rows(&self, images: &[&ProcessedImage]) -> Result<Option<FeatureRows>> {
        if images.is_empty() {
            return Ok(None);
        }
        let device = self.device();
        let side = self.config.vision.image_size;
        let plane = 3 * side * side;
        let mut values = Vec::new();
        let mut firsts = Vec::with_capacity(images.len());
        for (i, image) in images.iter().enumerate() {
            let patches = image.patches();
            if image.pixel_values.len() != patches * plane {
                return Err(LlavaError::Input(format!(
                    "image {i}: {} pixel values for {patches} patches of {side}×{side} (preprocessed for another tower?)",
                    image.pixel_values.len()
                )));
            }
            firsts.push(values.len() / plane);
            values.extend_from_slice(&image.pixel_values);
        }
        let total = values.len() / plane;
        let pixels =
            Tensor::<4>::from_data(TensorData::new(values, [total, 3, side, side]), &device);
        let (tower, projector, select) = (
            &self.vision_tower,
            &self.multi_modal_projector,
            self.config.select,
        );
        let projected = projector.forward(tower.forward(pixels, select));
        let [_, tokens, d] = projected.dims();
        let grid = self.config.vision.grid();
        if tokens != grid * grid {
            return Err(LlavaError::Input(format!(
                "the tower gives {tokens} tokens per tile where packing needs {grid}×{grid}"
            )));
        }
        // Images that pack alike (same patches, grid, crop and downscale), in first-seen order.
        let mut groups: Vec<(&ProcessedImage, Vec<usize>)> = Vec::new();
        for (i, image) in images.iter().enumerate() {
            let alike = |g: &&mut (&ProcessedImage, Vec<usize>)| {
                let (a, b) = (&g.0.layout, &image.layout);
                g.0.patches() == image.patches()
                    && (a.grid, a.unpadded, a.features, a.downscaled)
                        == (b.grid, b.unpadded, b.features, b.downscaled)
            };
            match groups.iter_mut().find(alike) {
                Some(g) => g.1.push(i),
                None => groups.push((image, vec![i])),
            }
        }
        let newline = self.image_newline.val();
        let mut spans = vec![(0, 0); images.len()];
        let mut tables = Vec::with_capacity(groups.len());
        let mut start = 0;
        for (first, members) in &groups {
            let patches = first.patches();
            let own = if groups.len() == 1 && members.len() * patches == total {
                projected.clone()
            } else {
                let rows: Vec<i64> = members
                    .iter()
                    .flat_map(|&m| (firsts[m]..firsts[m] + patches).map(|r| r as i64))
                    .collect();
                let index = Tensor::<1, Int>::from_data(
                    TensorData::new(rows, [members.len() * patches]),
                    &device,
                );
                projected.clone().select(0, index)
            };
            let n = members.len();
            let packed = pack_images(
                own.reshape([n, patches, tokens, d]),
                &first.layout,
                newline.clone(),
            );
            let per_image = packed.dims()[1];
            let expected = first.layout.tokens as usize;
            if per_image != expected {
                return Err(LlavaError::Input(format!(
                    "packed {per_image} feature rows where the layout counts {expected} (layout {:?})",
                    first.layout
                )));
            }
            for (k, &m) in members.iter().enumerate() {
                spans[m] = (start + k * per_image, per_image);
            }
            start += n * per_image;
            tables.push(packed.reshape([n * per_image, d]));
        }
        Ok(Some((Tensor::cat(tables, 0), spans)))
    }

    /// Embeds every prompt, writes its images' features at their placeholders, and left-pads
    /// the batch (as generation needs).
    pub fn prepare(&self, prompts: &[Prompt]) -> Result<PreparedBatch> {
        self.prepare_padded(prompts, Padding::Left)
    }

    /// [`Self::prepare`] with the padding on either side. Training pads on the right, so every
    /// row's positions start at 0 and the plain causal mask is exact without a key mask.
    ///
    /// The batch is one gather from one table (every text token embedded in one call, then
    /// the images' feature rows, then a zero row for the padding), whatever the number of
    /// rows and images, so a batch costs the same few launches forward and backward.
    pub fn prepare_padded(&self, prompts: &[Prompt], padding: Padding) -> Result<PreparedBatch> {
        if prompts.is_empty() {
            return Err(LlavaError::Input("no prompt".into()));
        }
        let images: Vec<&ProcessedImage> = prompts.iter().flat_map(|p| p.images.iter()).collect();
        let features = self.image_feature_rows(&images)?;
        let spans: &[(usize, usize)] = features.as_ref().map_or(&[], |f| &f.1);
        let mut text_ids: Vec<i64> = Vec::new();
        let mut plans = Vec::with_capacity(prompts.len());
        let mut history = Vec::with_capacity(prompts.len());
        let mut image_tokens = Vec::with_capacity(prompts.len());
        let mut next = 0;
        for (p, prompt) in prompts.iter().enumerate() {
            let own = &spans[next..next + prompt.images.len()];
            next += prompt.images.len();
            image_tokens.push(own.iter().map(|&(_, n)| n).collect());
            let (plan, hist) = self.plan(p, prompt, own, &mut text_ids)?;
            plans.push(plan);
            history.push(hist);
        }
        let len = plans.iter().map(Vec::len).max().unwrap_or(0);
        let d = self.config.text.hidden_size;
        let device = self.device();
        let dtype = self.language_model.model.embed_tokens.weight.val().dtype();
        let text = text_ids.len();
        let mut parts = Vec::with_capacity(3);
        if text > 0 {
            let ids = Tensor::<2, Int>::from_data(TensorData::new(text_ids, [1, text]), &device);
            parts.push(self.language_model.embed(ids).reshape([text, d]));
        }
        let image_rows = features.as_ref().map_or(0, |f| f.0.dims()[0]);
        if let Some((table, _)) = features {
            parts.push(table.cast(dtype));
        }
        parts.push(Tensor::<2>::zeros([1, d], &device).cast(dtype));
        let table = Tensor::cat(parts, 0);
        let zero = (text + image_rows) as i64;
        let at = |source: &Source| match *source {
            Source::Text(k) => k as i64,
            Source::Image(r) => (text + r) as i64,
        };
        let mut index = Vec::with_capacity(plans.len() * len);
        let mut mask = Vec::with_capacity(plans.len());
        for plan in &plans {
            let pad = len - plan.len();
            match padding {
                Padding::Left => {
                    index.extend(std::iter::repeat_n(zero, pad));
                    index.extend(plan.iter().map(at));
                    mask.push((0..len).map(|i| i >= pad).collect());
                }
                Padding::Right => {
                    index.extend(plan.iter().map(at));
                    index.extend(std::iter::repeat_n(zero, pad));
                    mask.push((0..len).map(|i| i < plan.len()).collect());
                }
            }
        }
        let rows = plans.len();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [rows * len]), &device);
        Ok(PreparedBatch {
            embeds: table.select(0, index).reshape([rows, len, d]),
            attention_mask: mask,
            history,
            image_tokens,
        })
    }

    /// Where each position of prompt `p` comes from (its text ids appended to `text_ids`, its
    /// images' rows `own` in the feature table) and its penalty history.
    fn plan(
        &self,
        p: usize,
        prompt: &Prompt,
        own: &[(usize, usize)],
        text_ids: &mut Vec<i64>,
    ) -> Result<(Vec<Source>, Vec<u32>)> {
        let vocab = self.config.text.vocab_size as i64;
        let image_id = self.config.image_token_index.map(i64::from);
        let is_run = |t: i64| Some(t) == image_id;
        let sentinels = prompt.ids.iter().filter(|&&t| t == IMAGE_SENTINEL).count();
        let run_tokens = prompt.ids.iter().filter(|&&t| is_run(t)).count();
        let rows: usize = own.iter().map(|&(_, n)| n).sum();
        if sentinels > 0 && run_tokens > 0 {
            return Err(LlavaError::Input(format!(
                "prompt {p} mixes {IMAGE_SENTINEL} sentinels and image_token_index placeholders"
            )));
        }
        if sentinels > 0 && sentinels != own.len() {
            return Err(LlavaError::Input(format!(
                "prompt {p} has {sentinels} image placeholder(s) ({IMAGE_SENTINEL}) but {} image(s)",
                own.len()
            )));
        }
        if sentinels == 0 && run_tokens != rows {
            return Err(LlavaError::Input(format!(
                "prompt {p} has {run_tokens} image tokens but its {} image(s) give {rows} feature rows",
                own.len()
            )));
        }
        if let Some(&bad) = prompt
            .ids
            .iter()
            .find(|&&t| t != IMAGE_SENTINEL && !(0..vocab).contains(&t))
        {
            return Err(LlavaError::Input(format!(
                "prompt {p}: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        if prompt.ids.is_empty() {
            return Err(LlavaError::Input(format!("prompt {p} is empty")));
        }
        // The prompt's image rows in order, for runs of placeholders that span images.
        let mut image_rows = own.iter().flat_map(|&(start, n)| start..start + n);
        let mut plan = Vec::with_capacity(prompt.ids.len() + rows);
        let mut history = Vec::with_capacity(prompt.ids.len() + rows);
        let mut next_image = 0;
        for &t in &prompt.ids {
            if t == IMAGE_SENTINEL {
                let (start, n) = own[next_image];
                next_image += 1;
                plan.extend((start..start + n).map(Source::Image));
                if let Some(id) = image_id {
                    history.extend(std::iter::repeat_n(id as u32, n));
                }
            } else if is_run(t) {
                let r = image_rows.next().ok_or_else(|| {
                    LlavaError::Input(format!("prompt {p}: more image tokens than rows"))
                })?;
                plan.push(Source::Image(r));
                history.push(t as u32);
            } else {
                plan.push(Source::Text(text_ids.len()));
                text_ids.push(t);
                history.push(t as u32);
            }
        }
        Ok((plan, history))
    }

    /// Logits `[batch, len, vocab]` for every position of the left-padded batch.
    pub fn forward(&self, prompts: &[Prompt]) -> Result<(Tensor<3>, PreparedBatch)> {
        let batch = self.prepare(prompts)?;
        let (positions, valid) = positions_and_mask(&batch.attention_mask, &self.device());
        // No padding: the plain causal mask, as the generator's prefill passes it, so the
        // same attention kernel runs (the flash kernel on CUDA) and these logits are the
        // served ones.
        let padded = batch.attention_mask.iter().flatten().any(|&m| !m);
        let logits = self.language_model.forward(
            DecoderInput::Embeds(batch.embeds.clone()),
            None,
            ForwardOptions {
                positions: Some(positions),
                key_valid: padded.then_some(valid),
                logits: LogitsFor::All,
            },
        )?;
        Ok((logits, batch))
    }

    /// Generates for a batch of prompts (left-padded together); each row's new tokens.
    pub fn generate(&self, prompts: &[Prompt], options: GenerateOptions) -> Result<Vec<Vec<u32>>> {
        Ok(self.generator(prompts, options)?.finish()?)
    }

    /// Runs the prefill of a batch of prompts and returns the generator, to be stepped one
    /// token at a time (streaming).
    pub fn generator(&self, prompts: &[Prompt], options: GenerateOptions) -> Result<Generator<'_>> {
        let batch = self.prepare(prompts)?;
        let prefill = Prefill {
            input: DecoderInput::Embeds(batch.embeds),
            attention_mask: batch.attention_mask,
            history: batch.history,
        };
        Ok(Generator::new(&self.language_model, prefill, options)?)
    }

    /// Every LoRA-capable linear layer of the tower, the projector and the decoder, with its
    /// module path (`vision_tower.vision_model.encoder.layers.0.self_attn.q_proj`,
    /// `multi_modal_projector.linear_1`, `language_model.model.layers.0.mlp.up_proj`,
    /// `language_model.lm_head`).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (p, l) in self.vision_tower.linears_mut() {
            out.push((format!("vision_tower.{p}"), l));
        }
        out.push((
            "multi_modal_projector.linear_1".to_string(),
            &mut self.multi_modal_projector.linear_1,
        ));
        out.push((
            "multi_modal_projector.linear_2".to_string(),
            &mut self.multi_modal_projector.linear_2,
        ));
        for (p, l) in self.language_model.linears_mut() {
            out.push((format!("language_model.{p}"), l));
        }
        out
    }

    /// Attaches a PEFT adapter written for this model in either layout (module names of the
    /// llava-hf files, of transformers ≥ 4.52 in memory, or of original LLaVA). Returns the
    /// number of layers adapted; nothing changes when a module does not fit.
    pub fn attach_adapter(&mut self, adapter: &PeftAdapter) -> Result<usize> {
        Ok(adapter.attach(self.linears_mut(), &llava_key_map())?)
    }

    /// Quantizes the language model's projections (the tower, the projector and `lm_head`
    /// stay in their dtype; see [`llava_nn::QuantMethod`]).
    pub fn quantize(&mut self, method: llava_nn::QuantMethod) {
        self.language_model.quantize(method);
    }

    /// Folds every attached adapter into its base weight.
    pub fn merge_lora(&mut self) {
        for (_, layer) in self.linears_mut() {
            layer.merge();
        }
    }

    /// Whether this model was loaded from the original LLaVA layout.
    pub fn layout(&self) -> Layout {
        self.config.layout
    }
}

/// Wrapper so `image_newline` loads through the same path as the other parameters.
#[derive(Module, Debug)]
struct NewlineHolder {
    image_newline: Param<Tensor<1>>,
}

/// Positions `cumsum(mask) − 1` (0 on padding) and the key mask, as transformers' generate.
fn positions_and_mask(mask: &[Vec<bool>], device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let b = mask.len();
    let len = mask.first().map(Vec::len).unwrap_or(0);
    let mut pos = Vec::with_capacity(b * len);
    for row in mask {
        let mut next = 0i64;
        for &valid in row {
            pos.push(if valid { next } else { 0 });
            next += i64::from(valid);
        }
    }
    let flat: Vec<bool> = mask.iter().flatten().copied().collect();
    (
        Tensor::from_data(TensorData::new(pos, [b, len]), device),
        Tensor::from_data(TensorData::new(flat, [b, len]), device),
    )
}

/// Every tensor name of every shard.
fn checkpoint_keys(files: &CheckpointFiles) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for shard in &files.shards {
        let header = llava_checkpoint::files::check_header(shard)?;
        keys.extend(header.tensors.into_keys());
    }
    Ok(keys)
}

/// The tower from `mm_vision_tower` when the checkpoint has none (original layout only).
fn load_stock_tower(
    config: &LlavaConfig,
    device: &Device,
    options: &llava_checkpoint::LoadOptions,
) -> Result<VisionTower> {
    let source = config.vision_tower_source.as_deref().ok_or_else(|| {
        LlavaError::Checkpoint(CheckpointError::MissingTensors {
            dir: config.origin.clone(),
            names: vec!["vision_tower.vision_model.* (the checkpoint has no vision tower)".into()],
        })
    })?;
    let base = config.origin.parent().unwrap_or(Path::new("."));
    let dir = base.join(source);
    if !dir.is_dir() {
        return Err(LlavaError::Input(format!(
            "{}: the checkpoint carries no vision tower and mm_vision_tower {source:?} is not a local \
             directory; download the tower (e.g. with huggingface-cli) and point mm_vision_tower at it",
            config.origin.display()
        )));
    }
    let files = CheckpointFiles::discover(&dir)?;
    let mut tower = VisionTower::new(&config.vision, device);
    load_module(&mut tower, &files, options)?;
    Ok(tower)
}

fn regex_escape(text: &str) -> String {
    text.replace('.', r"\.")
}
