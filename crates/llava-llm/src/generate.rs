//! Autoregressive generation: one prefill over the (left-padded) prompts, then one-token steps
//! on the KV cache, as transformers' `generate` does (spec §8).

use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};

use crate::decode_graph::{GraphStep, Recorded, StepValues};
use crate::sampling::{Sampler, SamplingParams};
use crate::{CausalLm, DecoderInput, ForwardOptions, KvCache, LlmError, LogitsFor, Result};

/// Settings of one generation.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// New tokens per row, at most.
    pub max_new_tokens: usize,
    /// Logits processing and token choice.
    pub sampling: SamplingParams,
    /// Seed of the sampler's random stream.
    pub seed: u64,
    /// A row stops after producing one of these (the id is kept in its output).
    pub eos_token_ids: Vec<u32>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            sampling: SamplingParams::greedy(),
            seed: 0,
            eos_token_ids: Vec::new(),
        }
    }
}

/// What the prefill reads.
#[derive(Debug, Clone)]
pub struct Prefill {
    /// Token ids or embeddings, `[batch, len]` / `[batch, len, hidden]`, left padded.
    pub input: DecoderInput,
    /// `[batch][len]`: false on left padding.
    pub attention_mask: Vec<Vec<bool>>,
    /// Per row, the ids the repetition penalty counts (the prompt's ids, image placeholders
    /// included when known).
    pub history: Vec<Vec<u32>>,
}

impl Prefill {
    /// Left-pads token-id prompts to one length with `pad_id`, checking every id against the
    /// vocabulary.
    pub fn from_ids(
        prompts: &[Vec<u32>],
        pad_id: u32,
        vocab: usize,
        device: &Device,
    ) -> Result<Self> {
        let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
            return Err(LlmError::Input(
                "every prompt needs at least one token".into(),
            ));
        }
        let mut ids = Vec::with_capacity(prompts.len() * len);
        let mut mask = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
                return Err(LlmError::TokenOutOfRange {
                    id: bad as i64,
                    vocab,
                });
            }
            let pad = len - prompt.len();
            ids.extend(std::iter::repeat_n(pad_id as i64, pad));
            ids.extend(prompt.iter().map(|&id| id as i64));
            mask.push((0..len).map(|i| i >= pad).collect());
        }
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [prompts.len(), len]), device);
        Ok(Self {
            input: DecoderInput::Ids(input),
            attention_mask: mask,
            history: prompts.to_vec(),
        })
    }
}

/// Step-by-step generation over a batch. Each [`Generator::step`] returns one new token per
/// row; finished rows repeat their end-of-sequence id until every row is done.
#[derive(Debug)]
pub struct Generator<'a> {
    model: &'a CausalLm,
    options: GenerateOptions,
    sampler: Sampler,
    /// `None` only after a step failed half-way.
    stepper: Option<Stepper<'a>>,
    /// Positions in the cache.
    cached: usize,
    /// Whether the first decode step records a CUDA graph (`decode_graph`).
    record_graph: bool,
    /// `[batch][cache positions]`; `None` when no row is padded.
    mask: Option<Vec<Vec<bool>>>,
    next_position: Vec<i64>,
    seen: Vec<Vec<u32>>,
    generated: Vec<Vec<u32>>,
    finished: Vec<bool>,
    pending: Option<Tensor<2>>,
    /// Ids and positions of a step not run yet: the step that records the CUDA graph waits for
    /// the next call, so the recording (a few op-by-op runs) does not delay the token just
    /// sampled.
    deferred: Option<(Vec<i64>, Vec<i64>)>,
    prompt_len: usize,
}

impl<'a> Generator<'a> {
    /// Runs the prefill. Errors if the prompt and `max_new_tokens` exceed the model's context.
    pub fn new(model: &'a CausalLm, prefill: Prefill, options: GenerateOptions) -> Result<Self> {
        let sampler = Sampler::new(options.sampling.clone(), options.seed)?;
        let batch = prefill.attention_mask.len();
        let len = prefill.attention_mask.first().map(Vec::len).unwrap_or(0);
        let dims_ok = match &prefill.input {
            DecoderInput::Ids(ids) => ids.dims() == [batch, len],
            DecoderInput::Embeds(e) => e.dims()[..2] == [batch, len],
        };
        let ragged = prefill.attention_mask.iter().any(|row| row.len() != len);
        if batch == 0 || len == 0 || ragged || !dims_ok || prefill.history.len() != batch {
            return Err(LlmError::Input(
                "prefill input, attention mask and history disagree in shape".into(),
            ));
        }
        let total = len.checked_add(options.max_new_tokens).ok_or_else(|| {
            LlmError::Generation(format!(
                "max_new_tokens {} is too large",
                options.max_new_tokens
            ))
        })?;
        if let Some(context) = model.config().max_position_embeddings
            && total > context
        {
            return Err(LlmError::ContextTooLong {
                prompt: len,
                new: options.max_new_tokens,
                context,
            });
        }
        let device = model.device();
        let dtype = model.model.embed_tokens.weight.val().dtype();
        let mut cache = model.new_cache(batch, len + options.max_new_tokens, dtype);

        // transformers: position = cumsum(mask) − 1, padded slots set to 1.
        let mut positions = Vec::with_capacity(batch * len);
        let mut next_position = Vec::with_capacity(batch);
        for row in &prefill.attention_mask {
            let mut count = 0i64;
            for &real in row {
                count += real as i64;
                positions.push(if real { count - 1 } else { 1 });
            }
            next_position.push(count);
        }
        let padded = prefill.attention_mask.iter().flatten().any(|&m| !m);
        let mask = padded.then(|| prefill.attention_mask.clone());
        let logits = model.forward(
            prefill.input,
            Some(&mut cache),
            ForwardOptions {
                positions: Some(Tensor::from_data(
                    TensorData::new(positions, [batch, len]),
                    &device,
                )),
                key_valid: mask.as_ref().map(|m| mask_tensor(m, &device)),
                logits: LogitsFor::Last,
            },
        )?;
        // Every device must replay; a split model records one graph a device only when asked.
        let devices = model.device_map().devices();
        let record_graph = devices.iter().all(llava_ops::graph_replay_available)
            && (devices.len() == 1 || crate::decode_graph::split_replay_opted_in())
            && model.decode_segments().is_some();
        Ok(Self {
            model,
            sampler,
            stepper: Some(Stepper::Eager(cache)),
            cached: len,
            record_graph,
            mask,
            next_position,
            seen: prefill.history,
            generated: vec![Vec::new(); batch],
            finished: vec![false; batch],
            pending: (options.max_new_tokens > 0).then(|| squeeze_last(logits)),
            deferred: None,
            prompt_len: len,
            options,
        })
    }

    /// The next token of every row, or `None` once every row has finished or
    /// `max_new_tokens` is reached.
    pub fn step(&mut self) -> Result<Option<Vec<u32>>> {
        if self.stepper.is_none() {
            return Err(failed_earlier());
        }
        if let Some((ids, positions)) = self.deferred.take() {
            self.pending = Some(self.decode(ids, positions, true)?);
        }
        let Some(logits) = self.pending.take() else {
            return Ok(None);
        };
        let mut tokens = self.sampler.next_tokens(logits, &self.seen)?;
        for (row, token) in tokens.iter_mut().enumerate() {
            if self.finished[row] {
                // transformers pads finished rows; repeating the row's EOS keeps them inert.
                *token = *self.generated[row].last().unwrap_or(token);
                continue;
            }
            self.generated[row].push(*token);
            self.seen[row].push(*token);
            if self.options.eos_token_ids.contains(token) {
                self.finished[row] = true;
            }
        }
        let steps = self.generated.iter().map(Vec::len).max().unwrap_or(0);
        if self.finished.iter().all(|&f| f) || steps >= self.options.max_new_tokens {
            return Ok(Some(tokens));
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let positions = self.next_position.clone();
        for p in &mut self.next_position {
            *p += 1;
        }
        if let Some(mask) = &mut self.mask {
            for row in mask.iter_mut() {
                row.push(true);
            }
        }
        // Recording pays off only if at least one replay follows this step.
        let replays_after = self.options.max_new_tokens.saturating_sub(steps + 1);
        let records = self.record_graph
            && replays_after > 0
            && matches!(self.stepper, Some(Stepper::Eager(_)));
        if records {
            self.deferred = Some((ids, positions));
        } else {
            // Queued now, so the device works while the caller handles this token.
            self.pending = Some(self.decode(ids, positions, false)?);
        }
        Ok(Some(tokens))
    }

    /// One decode step for `ids` at `positions` (one per row): `[batch, vocab]` f32 logits.
    /// With `record`, an op-by-op stepper records the step as a CUDA graph on the way. A failed
    /// step leaves no stepper, and every later step reports it.
    fn decode(&mut self, ids: Vec<i64>, positions: Vec<i64>, record: bool) -> Result<Tensor<2>> {
        let stepper = self.stepper.take().ok_or_else(failed_earlier)?;
        let values = StepValues {
            ids: &ids,
            positions: &positions,
            slot: self.cached,
            valid: self.mask.as_deref(),
        };
        let (stepper, logits) = match stepper {
            Stepper::Graph(mut graph) if graph.on_this_thread() => {
                let logits = graph.run(values)?;
                (Stepper::Graph(graph), logits)
            }
            // Moved to another thread: its stream is not the recording's, so op by op from here.
            Stepper::Graph(graph) => {
                self.eager((*graph).into_cache(self.cached), &ids, &positions)?
            }
            Stepper::Eager(cache) if record => {
                match GraphStep::record(self.model, cache, values)? {
                    Recorded::Graph(graph, logits) => (Stepper::Graph(graph), logits),
                    Recorded::Eager(cache) => {
                        // Not again: later steps are queued op by op as soon as they are known.
                        self.record_graph = false;
                        self.eager(cache, &ids, &positions)?
                    }
                }
            }
            Stepper::Eager(cache) => self.eager(cache, &ids, &positions)?,
        };
        self.stepper = Some(stepper);
        self.cached += 1;
        Ok(logits)
    }

    /// One op-by-op decode step on `cache`.
    fn eager(
        &self,
        mut cache: KvCache,
        ids: &[i64],
        positions: &[i64],
    ) -> Result<(Stepper<'a>, Tensor<2>)> {
        let device = self.model.device();
        let batch = ids.len();
        let logits = self.model.forward(
            DecoderInput::Ids(Tensor::from_data(
                TensorData::new(ids.to_vec(), [batch, 1]),
                &device,
            )),
            Some(&mut cache),
            ForwardOptions {
                positions: Some(Tensor::from_data(
                    TensorData::new(positions.to_vec(), [batch, 1]),
                    &device,
                )),
                key_valid: self.mask.as_ref().map(|m| mask_tensor(m, &device)),
                logits: LogitsFor::Last,
            },
        )?;
        Ok((Stepper::Eager(cache), squeeze_last(logits)))
    }

    /// Whether decode steps replay a recorded CUDA graph (false on the CPU, over several
    /// devices unless `LLAVA_GRAPH_SPLIT=1`, with `LLAVA_GRAPH=0`, and before the first decode
    /// step).
    pub fn graph_replay(&self) -> bool {
        matches!(self.stepper, Some(Stepper::Graph(_)))
    }

    /// Positions of the (left-padded) prompt the prefill read.
    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    /// The new tokens of every row so far (each ends at its end-of-sequence id, if reached).
    pub fn generated(&self) -> &[Vec<u32>] {
        &self.generated
    }

    /// Runs to the end and returns the new tokens of every row.
    pub fn finish(mut self) -> Result<Vec<Vec<u32>>> {
        while self.step()?.is_some() {}
        Ok(self.generated)
    }
}

/// How decode steps run.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per generation, moved a few times
enum Stepper<'a> {
    /// Op by op through [`CausalLm::forward`].
    Eager(KvCache),
    /// A recorded step replayed (it owns the cache).
    Graph(Box<GraphStep<'a>>),
}

fn failed_earlier() -> LlmError {
    LlmError::Generation("an earlier step of this generation failed".into())
}

fn squeeze_last(logits: Tensor<3>) -> Tensor<2> {
    let [b, _, v] = logits.dims();
    logits.reshape([b, v]).cast(DType::F32)
}

fn mask_tensor(mask: &[Vec<bool>], device: &Device) -> Tensor<2, Bool> {
    let (b, len) = (mask.len(), mask[0].len());
    let flat: Vec<bool> = mask.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [b, len]), device)
}

/// Generates for a batch of token-id prompts (left-padded together) and returns each row's
/// new tokens.
pub fn generate(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    options: GenerateOptions,
) -> Result<Vec<Vec<u32>>> {
    let pad = options.eos_token_ids.first().copied().unwrap_or(0);
    let prefill = Prefill::from_ids(prompts, pad, model.config().vocab_size, &model.device())?;
    Generator::new(model, prefill, options)?.finish()
}
