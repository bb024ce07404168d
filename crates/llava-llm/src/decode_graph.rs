//! The decode step recorded once as a CUDA graph and replayed for every token.
//!
//! Without it a batch-1 step of a 32-layer model is about 1800 small launches, and burn's host
//! side spends longer on each (~20 µs) than the GPU does: decode was launch-bound
//! (docs/benchmarks.md). A graph replays all of them with one launch. It replays against the
//! buffers it was recorded with, so everything that changes from one step to the next (the
//! token ids, the RoPE positions, the cache slot, the attention bias) is read from device
//! tensors written in place before each replay, and the KV cache is written at the slot the
//! slot tensor holds. [`CausalLm::decode_step`] is that step; off CUDA it is tested against
//! the ordinary forward.

use std::thread::ThreadId;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::{CausalLm, KvCache, LlmError, Result};

/// The per-step inputs of [`CausalLm::decode_step`], as device tensors.
#[derive(Debug, Clone)]
pub(crate) struct StepInputs {
    /// `[batch, 1]` token ids.
    pub ids: Tensor<2, Int>,
    /// `[batch, 1]` RoPE positions.
    pub positions: Tensor<2, Int>,
    /// `[1]`: the cache slot the new keys and values go to.
    pub slot: Tensor<1, Int>,
    /// One additive bias `[batch, 1, 1, slots]` per distinct sliding window of the layers.
    pub biases: Vec<(Option<usize>, Tensor<4>)>,
}

/// The host values of one step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepValues<'v> {
    /// One id per row.
    pub ids: &'v [i64],
    /// One position per row.
    pub positions: &'v [i64],
    /// The cache slot of this step (the number of positions already cached).
    pub slot: usize,
    /// `[batch][..]`: false where a row's key slot is left padding; `None` when no row is padded.
    pub valid: Option<&'v [Vec<bool>]>,
}

impl StepInputs {
    /// Tensors holding `values`, for a cache of `slots` slots, on `device`.
    pub fn new(model: &CausalLm, values: StepValues, slots: usize, device: &Device) -> Self {
        let batch = values.ids.len();
        let int2 = |v: &[i64]| {
            Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), [batch, 1]), device)
        };
        let biases = windows(model)
            .into_iter()
            .map(|w| {
                let bias = bias_values(batch, slots, values.slot, values.valid, w);
                let data = TensorData::new(bias, [batch, 1, 1, slots]);
                (w, Tensor::<4>::from_data(data, (device, DType::F32)))
            })
            .collect();
        Self {
            ids: int2(values.ids),
            positions: int2(values.positions),
            slot: Tensor::from_data(TensorData::new(vec![values.slot as i64], [1]), device),
            biases,
        }
    }

    /// Writes `values` into the tensors' own buffers. Errors if a buffer cannot be written in
    /// place (then a recorded graph would read stale inputs).
    pub fn overwrite(&self, values: StepValues) -> Result<()> {
        let batch = values.ids.len();
        let [_, _, _, slots] = self.biases[0].1.dims();
        let int2 = |v: &[i64]| TensorData::new(v.to_vec(), [batch, 1]);
        let mut written = llava_ops::overwrite_int(&self.ids, int2(values.ids))
            && llava_ops::overwrite_int(&self.positions, int2(values.positions))
            && llava_ops::overwrite_int(&self.slot, TensorData::new(vec![values.slot as i64], [1]));
        for (w, bias) in &self.biases {
            let data = bias_values(batch, slots, values.slot, values.valid, *w);
            written &= llava_ops::overwrite(bias, TensorData::new(data, [batch, 1, 1, slots]));
        }
        if written {
            Ok(())
        } else {
            Err(LlmError::Generation(
                "the decode step's inputs could not be written in place on this device".into(),
            ))
        }
    }

    /// The bias of layers with sliding window `window`.
    pub fn bias(&self, window: Option<usize>) -> Tensor<4> {
        let found = self.biases.iter().find(|(w, _)| *w == window);
        found.map_or_else(|| self.biases[0].1.clone(), |(_, b)| b.clone())
    }
}

/// The distinct sliding windows of the model's layers.
fn windows(model: &CausalLm) -> Vec<Option<usize>> {
    let mut found = Vec::new();
    for i in 0..model.config().num_hidden_layers {
        let w = model.config().sliding_window(i);
        if !found.contains(&w) {
            found.push(w);
        }
    }
    if found.is_empty() {
        found.push(None);
    }
    found
}

/// The additive bias of one query at cache slot `slot`, `[batch][slots]` flattened, with the
/// rules of [`crate::mask::attention_bias`]: key slot `j` is seen when `j ≤ slot`, within the
/// window, and not left padding.
pub(crate) fn bias_values(
    batch: usize,
    slots: usize,
    slot: usize,
    valid: Option<&[Vec<bool>]>,
    window: Option<usize>,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch * slots);
    for row in 0..batch {
        for j in 0..slots {
            let causal = j <= slot;
            let in_window = window.is_none_or(|w| slot - j.min(slot) < w);
            let real = valid.and_then(|v| v[row].get(j).copied()).unwrap_or(true);
            out.push(if causal && in_window && real {
                0.0
            } else {
                f32::MIN
            });
        }
    }
    out
}

/// A recorded decode step. It keeps alive everything the recording reads or writes: the input
/// tensors, the KV cache (written in place, which needs the only reference to its buffers), the
/// RoPE frequencies and the output the replays overwrite; `'a` keeps the weights alive.
pub(crate) struct GraphStep<'a> {
    recording: llava_ops::Recording,
    output: Tensor<2>,
    inputs: StepInputs,
    _cache: KvCache,
    _inv: Tensor<3>,
    _model: std::marker::PhantomData<&'a CausalLm>,
    thread: ThreadId,
}

impl std::fmt::Debug for GraphStep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphStep").finish_non_exhaustive()
    }
}

/// What [`GraphStep::record`] gives back.
#[allow(clippy::large_enum_variant)] // one per generation, moved a few times
pub(crate) enum Recorded<'a> {
    /// The recorded step and this step's `[batch, vocab]` f32 logits (its first replay).
    Graph(Box<GraphStep<'a>>, Tensor<2>),
    /// No recording (off CUDA, `LLAVA_GRAPH=0`, or the driver would not start one): the cache
    /// comes back, appending at its length again, for this step to run op by op.
    Eager(KvCache),
}

impl<'a> GraphStep<'a> {
    /// Records the step for `values` (a warm-up run, then the recording) and replays it once.
    /// A recording the driver refused after it began is an error: cubecl then marks the
    /// recorded run's writes (into the cache among others) as failed.
    pub fn record(
        model: &'a CausalLm,
        mut cache: KvCache,
        values: StepValues,
    ) -> Result<Recorded<'a>> {
        let device = model.device();
        let inputs = StepInputs::new(model, values, cache.slots(), &device);
        let inv = model.rope_inv_freq(&device);
        cache.write_at(inputs.slot.clone());
        match llava_ops::record(&device, || model.decode_step(&inputs, &mut cache, &inv)) {
            Ok((recording, output, warm_up)) => {
                let mut step = Box::new(Self {
                    recording,
                    output,
                    inputs,
                    _cache: cache,
                    _inv: inv,
                    _model: std::marker::PhantomData,
                    thread: std::thread::current().id(),
                });
                let logits = match warm_up {
                    Some(logits) => logits,
                    None => step.replay()?,
                };
                Ok(Recorded::Graph(step, logits))
            }
            Err(llava_ops::RecordError::NotStarted(why)) => {
                tracing::debug!("decode steps run op by op: {why}");
                cache.write_at_len();
                Ok(Recorded::Eager(cache))
            }
            Err(llava_ops::RecordError::Refused(why)) => Err(LlmError::Generation(format!(
                "{why} (LLAVA_GRAPH=0 runs decode steps op by op)"
            ))),
        }
    }

    /// Whether the calling thread is the one that recorded: writes and replays are ordered
    /// only on the stream they were issued on, which is the calling thread's.
    pub fn on_this_thread(&self) -> bool {
        std::thread::current().id() == self.thread
    }

    /// Writes `values` and replays the step: `[batch, vocab]` f32 logits.
    pub fn run(&mut self, values: StepValues) -> Result<Tensor<2>> {
        self.inputs.overwrite(values)?;
        self.replay()
    }

    /// The cache back for op-by-op steps, holding `len` positions (the recording is destroyed
    /// first, once its replays are done).
    pub fn into_cache(self: Box<Self>, len: usize) -> KvCache {
        let Self {
            recording, _cache, ..
        } = *self;
        drop(recording);
        let mut cache = _cache;
        cache.write_at_len();
        cache.clear();
        cache.advance(len);
        cache
    }

    fn replay(&mut self) -> Result<Tensor<2>> {
        if !self.on_this_thread() {
            return Err(LlmError::Generation(
                "a recorded decode step replayed from another thread".into(),
            ));
        }
        // SAFETY: this struct owns every tensor the recording reads or writes except the
        // model's weights, which `'a` keeps alive; the inputs were written, and the output is
        // read, from the recording thread (checked above).
        unsafe { self.recording.replay() }.map_err(LlmError::Generation)?;
        Ok(self.output.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecoderInput, ForwardOptions, LogitsFor, TextConfig};
    use burn::tensor::Bool;

    /// Two layers with a sliding window of 4, so the window bites within a few steps.
    fn tiny() -> CausalLm {
        let config = TextConfig::from_json(
            r#"{"model_type": "mistral", "vocab_size": 40, "hidden_size": 16,
                "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "sliding_window": 4, "max_position_embeddings": 64}"#,
            "tiny.json",
        )
        .unwrap();
        CausalLm::new(&config, &Device::flex())
    }

    fn ints(values: Vec<i64>, shape: [usize; 2]) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    fn mask(rows: &[Vec<bool>]) -> Tensor<2, Bool> {
        let flat: Vec<bool> = rows.iter().flatten().copied().collect();
        Tensor::from_data(
            TensorData::new(flat, [rows.len(), rows[0].len()]),
            &Device::flex(),
        )
    }

    /// A left-padded batch of two: the prefill, then three steps through `forward` and through
    /// `decode_step`, whose logits must agree.
    #[test]
    fn the_device_input_step_equals_the_forward_step() {
        let model = tiny();
        let mut valid = vec![vec![false, true, true, true], vec![true; 4]];
        let prefill = |cache: &mut KvCache| {
            let options = ForwardOptions {
                positions: Some(ints(vec![1, 0, 1, 2, 0, 1, 2, 3], [2, 4])),
                key_valid: Some(mask(&valid)),
                logits: LogitsFor::Last,
            };
            let ids = ints(vec![0, 3, 5, 7, 2, 4, 6, 8], [2, 4]);
            model
                .forward(DecoderInput::Ids(ids), Some(cache), options)
                .unwrap();
        };
        let (mut eager, mut stepped) = (
            model.new_cache(2, 7, DType::F32),
            model.new_cache(2, 7, DType::F32),
        );
        prefill(&mut eager);
        prefill(&mut stepped);
        let inv = model.rope_inv_freq(&Device::flex());
        for t in 0..3i64 {
            let (ids, positions) = (vec![10 + t, 20 + t], vec![3 + t, 4 + t]);
            for row in &mut valid {
                row.push(true);
            }
            let options = ForwardOptions {
                positions: Some(ints(positions.clone(), [2, 1])),
                key_valid: Some(mask(&valid)),
                logits: LogitsFor::Last,
            };
            let reference = model
                .forward(
                    DecoderInput::Ids(ints(ids.clone(), [2, 1])),
                    Some(&mut eager),
                    options,
                )
                .unwrap()
                .reshape([2, 40]);
            let values = StepValues {
                ids: &ids,
                positions: &positions,
                slot: 4 + t as usize,
                valid: Some(&valid),
            };
            let inputs = StepInputs::new(&model, values, stepped.slots(), &Device::flex());
            stepped.write_at(inputs.slot.clone());
            let ours = model.decode_step(&inputs, &mut stepped, &inv);
            assert_eq!(ours.dims(), [2, 40]);
            let diff = (ours - reference).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-5, "step {t}: max difference {diff}");
        }
    }

    /// Off CUDA nothing can be written in place, so a recorded step would read stale inputs:
    /// refreshing them is an error, and the generator never records there.
    #[test]
    fn inputs_cannot_be_refreshed_in_place_off_cuda() {
        let model = tiny();
        let values = StepValues {
            ids: &[1],
            positions: &[0],
            slot: 0,
            valid: None,
        };
        let inputs = StepInputs::new(&model, values, 256, &Device::flex());
        assert!(!llava_ops::graph_replay_available(&Device::flex()));
        let err = inputs.overwrite(values).unwrap_err();
        assert!(err.to_string().contains("written in place"), "{err}");
    }

    /// Where no recording can start, the cache comes back untouched in length and appending at
    /// its length again, and the op-by-op step on it equals one on a cache that never met
    /// `record`.
    #[test]
    fn no_recording_off_cuda_hands_the_cache_back_for_op_by_op_steps() {
        let model = tiny();
        let prompt = ints(vec![3, 5, 7, 9], [1, 4]);
        let (mut plain, mut offered) = (
            model.new_cache(1, 6, DType::F32),
            model.new_cache(1, 6, DType::F32),
        );
        for cache in [&mut plain, &mut offered] {
            model
                .forward(
                    DecoderInput::Ids(prompt.clone()),
                    Some(cache),
                    ForwardOptions::default(),
                )
                .unwrap();
        }
        let values = StepValues {
            ids: &[11],
            positions: &[4],
            slot: 4,
            valid: None,
        };
        let Recorded::Eager(mut back) = GraphStep::record(&model, offered, values).unwrap() else {
            panic!("a recording off CUDA");
        };
        assert_eq!(back.len(), 4);
        // Two steps: a slot tensor left in place would write the second one over the first.
        for (t, id) in [11i64, 12].into_iter().enumerate() {
            let step = |cache: &mut KvCache| {
                let ids = ints(vec![id], [1, 1]);
                model
                    .forward(
                        DecoderInput::Ids(ids),
                        Some(cache),
                        ForwardOptions::default(),
                    )
                    .unwrap()
            };
            let diff = (step(&mut back) - step(&mut plain))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(diff < 1e-6, "step {t}: max difference {diff}");
        }
        assert_eq!(back.len(), 6);
    }

    #[test]
    fn the_bias_follows_causality_window_and_padding() {
        let valid = vec![vec![false, true, true]];
        let allowed: Vec<u8> = bias_values(1, 8, 5, Some(&valid), Some(3))
            .into_iter()
            .map(|b| (b == 0.0) as u8)
            .collect();
        // Slot 5 with a window of 3 sees slots 3, 4, 5; slot 0 is padding anyway.
        assert_eq!(allowed, vec![0, 0, 0, 1, 1, 1, 0, 0]);
        let allowed: Vec<u8> = bias_values(1, 4, 1, Some(&valid), None)
            .into_iter()
            .map(|b| (b == 0.0) as u8)
            .collect();
        assert_eq!(allowed, vec![0, 1, 0, 0]);
    }
}
