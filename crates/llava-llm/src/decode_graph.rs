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

/// A recorded decode step: one CUDA graph per device the model's layers are split over (one for
/// a model on one device). It keeps alive everything the recordings read or write: the input
/// tensors, the KV cache (written in place, which needs the only reference to its buffers), the
/// RoPE frequencies and the outputs the replays overwrite; `'a` keeps the weights alive.
pub(crate) struct GraphStep<'a> {
    segments: Vec<Segment>,
    _cache: KvCache,
    _model: std::marker::PhantomData<&'a CausalLm>,
    thread: ThreadId,
}

/// The recorded layers of one device.
struct Segment {
    recording: llava_ops::Recording,
    /// The step's values on this device.
    inputs: StepInputs,
    /// `[batch, 1, hidden]`: the previous segment's output, copied in before each replay (not
    /// for the first segment, which starts from the token ids).
    hidden_in: Option<Tensor<3>>,
    /// The hidden states for the next segment, or the last segment's `[batch, 1, vocab]` f32
    /// logits.
    output: Tensor<3>,
    _inv: Tensor<3>,
}

impl std::fmt::Debug for GraphStep<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphStep")
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

/// What [`GraphStep::record`] gives back.
#[allow(clippy::large_enum_variant)] // one per generation, moved a few times
pub(crate) enum Recorded<'a> {
    /// The recorded step and this step's `[batch, vocab]` f32 logits (its first replay).
    Graph(Box<GraphStep<'a>>, Tensor<2>),
    /// No recording (off CUDA, `LLAVA_GRAPH=0`, a split the step cannot follow, or the driver
    /// would not start one): the cache comes back, appending at its length again, for this
    /// step to run op by op.
    Eager(KvCache),
}

/// Whether a model split over several devices records its decode steps, one graph a device
/// (`LLAVA_GRAPH_SPLIT=1`; off until it has run on GPUs).
pub(crate) fn split_replay_opted_in() -> bool {
    llava_ops::options::current().graph_split
}

impl<'a> GraphStep<'a> {
    /// Records the step for `values`, device by device (for each, a warm-up run, which is the
    /// step's real work, then the recording) and returns this step's logits. A recording the
    /// driver refused after it began is an error: cubecl then marks the recorded run's writes
    /// (into the cache among others) as failed; so is one that would not start after an
    /// earlier device's was recorded, since that device's layers have already run.
    pub fn record(
        model: &'a CausalLm,
        mut cache: KvCache,
        values: StepValues,
    ) -> Result<Recorded<'a>> {
        let Some(runs) = model.decode_segments() else {
            return Ok(Recorded::Eager(cache));
        };
        let batch = values.ids.len();
        let hidden = model.config().hidden_size;
        let dtype = model.model.embed_tokens.weight.val().dtype();
        // The hand-over buffers first: one that cannot be written in place leaves the whole
        // step op by op before anything ran.
        let mut hidden_in = Vec::new();
        for (i, (device, _)) in runs.iter().enumerate() {
            let buffer = (i > 0).then(|| Tensor::<3>::zeros([batch, 1, hidden], (device, dtype)));
            if let Some(b) = &buffer
                && !llava_ops::overwrite(b, b.to_data())
            {
                return Ok(Recorded::Eager(cache));
            }
            hidden_in.push(buffer);
        }
        let mut segments = Vec::with_capacity(runs.len());
        let mut previous: Option<Tensor<3>> = None;
        let count = runs.len();
        for (i, ((device, layers), hidden_in)) in runs.into_iter().zip(hidden_in).enumerate() {
            let inputs = StepInputs::new(model, values, cache.slots(), &device);
            let inv = model.rope_inv_freq(&device);
            if let (Some(buffer), Some(prev)) = (&hidden_in, &previous) {
                // The buffer was made in the embedding dtype, which every layer keeps.
                let handed =
                    prev.dtype() == buffer.dtype() && llava_ops::overwrite(buffer, prev.to_data());
                if !handed {
                    return Err(LlmError::Generation(
                        "the hidden states could not be handed to the next device".into(),
                    ));
                }
            }
            cache.write_layers_at(layers.clone(), inputs.slot.clone());
            let last = i + 1 == count;
            let recorded = llava_ops::record(&device, || {
                let x = hidden_in.clone();
                model.decode_segment(x, &inputs, &mut cache, &inv, layers.clone(), last)
            });
            match recorded {
                Ok((recording, output, warm_up)) => {
                    let segment = Segment {
                        recording,
                        inputs,
                        hidden_in,
                        output,
                        _inv: inv,
                    };
                    previous = Some(warm_up);
                    segments.push(segment);
                }
                Err(llava_ops::RecordError::NotStarted(why)) if segments.is_empty() => {
                    tracing::debug!("decode steps run op by op: {why}");
                    cache.write_at_len();
                    return Ok(Recorded::Eager(cache));
                }
                Err(
                    llava_ops::RecordError::NotStarted(why) | llava_ops::RecordError::Refused(why),
                ) => {
                    return Err(LlmError::Generation(format!(
                        "{why} (LLAVA_GRAPH=0 runs decode steps op by op)"
                    )));
                }
            }
        }
        let logits = previous.map(|l| {
            let [b, _, v] = l.dims();
            l.reshape([b, v])
        });
        let step = Box::new(Self {
            segments,
            _cache: cache,
            _model: std::marker::PhantomData,
            thread: std::thread::current().id(),
        });
        match logits {
            Some(logits) => Ok(Recorded::Graph(step, logits)),
            None => Err(LlmError::Generation("a decode step over no layers".into())),
        }
    }

    /// Whether the calling thread is the one that recorded: writes and replays are ordered
    /// only on the stream they were issued on, which is the calling thread's.
    pub fn on_this_thread(&self) -> bool {
        std::thread::current().id() == self.thread
    }

    /// Writes `values` and replays the step, device by device: `[batch, vocab]` f32 logits.
    pub fn run(&mut self, values: StepValues) -> Result<Tensor<2>> {
        if !self.on_this_thread() {
            return Err(LlmError::Generation(
                "a recorded decode step replayed from another thread".into(),
            ));
        }
        let mut previous: Option<Tensor<3>> = None;
        for segment in &mut self.segments {
            segment.inputs.overwrite(values)?;
            if let (Some(buffer), Some(prev)) = (&segment.hidden_in, &previous) {
                // Waits for the previous device's replay; the hidden states are a few KB.
                if !llava_ops::overwrite(buffer, prev.to_data()) {
                    return Err(LlmError::Generation(
                        "the hidden states could not be handed to the next device".into(),
                    ));
                }
            }
            // SAFETY: this struct owns every tensor the recordings read or write except the
            // model's weights, which `'a` keeps alive; the inputs were written, and the output
            // is read, from the recording thread (checked above).
            unsafe { segment.recording.replay() }
                .map_err(|e| LlmError::Generation(e.to_string()))?;
            previous = Some(segment.output.clone());
        }
        let logits =
            previous.ok_or_else(|| LlmError::Generation("a decode step over no layers".into()))?;
        let [b, _, v] = logits.dims();
        Ok(logits.reshape([b, v]))
    }

    /// The cache back for op-by-op steps, holding `len` positions (the recordings are destroyed
    /// first, once their replays are done).
    pub fn into_cache(self, len: usize) -> KvCache {
        let Self {
            segments, _cache, ..
        } = self;
        drop(segments);
        let mut cache = _cache;
        cache.write_at_len();
        cache.clear();
        cache.advance(len);
        cache
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

    /// Two caches of 6 positions, each holding the same 4-token prompt.
    fn two_prefilled_caches(model: &CausalLm) -> [KvCache; 2] {
        let prompt = ints(vec![3, 5, 7, 9], [1, 4]);
        [(), ()].map(|_| {
            let mut cache = model.new_cache(1, 6, DType::F32);
            model
                .forward(
                    DecoderInput::Ids(prompt.clone()),
                    Some(&mut cache),
                    ForwardOptions::default(),
                )
                .unwrap();
            cache
        })
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

    /// A split model's decode step runs one segment a device; segments over layer ranges,
    /// each handed the previous one's hidden states, equal the forward step.
    #[test]
    fn segments_over_layer_ranges_compose_to_the_forward_step() {
        let model = tiny();
        let [mut eager, mut stepped] = two_prefilled_caches(&model);
        let device = Device::flex();
        let inv = model.rope_inv_freq(&device);
        for t in 0..2i64 {
            let (ids, positions) = (vec![11 + t], vec![4 + t]);
            let reference = model
                .forward(
                    DecoderInput::Ids(ints(ids.clone(), [1, 1])),
                    Some(&mut eager),
                    ForwardOptions::default(),
                )
                .unwrap()
                .reshape([1, 40]);
            let values = StepValues {
                ids: &ids,
                positions: &positions,
                slot: 4 + t as usize,
                valid: None,
            };
            // Two "devices": layer 0 from the ids, layer 1 from its hidden states to the head.
            let first = StepInputs::new(&model, values, stepped.slots(), &device);
            let second = StepInputs::new(&model, values, stepped.slots(), &device);
            stepped.write_layers_at(0..1, first.slot.clone());
            stepped.write_layers_at(1..2, second.slot.clone());
            let hidden = model.decode_segment(None, &first, &mut stepped, &inv, 0..1, false);
            assert_eq!(hidden.dims(), [1, 1, 16]);
            let logits =
                model.decode_segment(Some(hidden), &second, &mut stepped, &inv, 1..2, true);
            let diff = (logits.reshape([1, 40]) - reference)
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(diff < 1e-5, "step {t}: max difference {diff}");
        }
    }

    #[test]
    fn layers_group_into_runs_of_one_device() {
        use crate::model::runs_of;
        assert_eq!(runs_of(&[0, 0, 1, 1, 1]), vec![(0, 0..2), (1, 2..5)]);
        assert_eq!(runs_of(&[0, 1, 0]), vec![(0, 0..1), (1, 1..2), (0, 2..3)]);
        assert_eq!(runs_of::<u8>(&[]), vec![]);
        // A device that comes back after another cannot hold one graph for its layers.
        assert!(crate::model::each_once(&runs_of(&[0, 0, 1, 1])));
        assert!(!crate::model::each_once(&runs_of(&[0, 1, 0])));
        // One device: one run, the single-device graph.
        let model = tiny();
        let runs = model.decode_segments().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1, 0..2);
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
        let [mut plain, offered] = two_prefilled_caches(&model);
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
