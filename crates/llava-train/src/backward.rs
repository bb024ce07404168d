//! One micro-batch's loss and gradients, the decoder run one layer at a time.
//!
//! With `recompute` (ms-swift's `--gradient_checkpointing true`, its default) the forward pass
//! records no graph in the decoder: it keeps each layer's input only. The backward pass goes
//! from the loss down: the final norm and `lm_head` chunk by chunk (so the f32 logits of a long
//! answer are never whole), then each layer run again from its saved input with a graph, its
//! output's gradient pulled back through it (`(y · g).sum().backward()`), and last the
//! embeddings (the projector and, where they train, the tower and the token embeddings). The
//! memory is one layer's activations plus one hidden state a layer, for one forward pass more,
//! as `torch.utils.checkpoint` costs (`../shared/spec/training.md` §4.1).
//!
//! Without it, every layer keeps its graph and one backward pass runs from the loss. Both ways
//! draw the same dropout: each layer reseeds the device before it runs, in either pass.

use std::collections::HashMap;

use burn::module::{Module, ParamId};
use burn::tensor::{Gradients, Tensor};
use llava_model::{LlavaNext, Padding};

use crate::batch::{Batch, layer_seed};
use crate::error::{Result, TrainError};
use crate::loss::{LossStats, TrainedPositions, chunk_rows, lm_loss};
use crate::params::gradients;

/// How [`forward_backward`] runs.
#[derive(Debug, Clone, Copy)]
pub struct BackwardOptions {
    /// Keep only each decoder layer's input and run the layer again in the backward pass.
    pub recompute: bool,
    /// Trained positions a loss chunk (with `recompute`); `None`: as many as
    /// [`crate::loss::LOGITS_CHUNK_BYTES`] of logits hold.
    pub loss_chunk_rows: Option<usize>,
    /// The dropout seed of this micro-batch (see [`Batch::states`]).
    pub seed: u64,
}

/// Gradients by parameter, flattened (inner-backend tensors), summed over backward passes.
pub type GradSums = HashMap<ParamId, Tensor<1>>;

/// Adds the gradients of `ids` found in `grads` to `sums`.
fn accumulate(sums: &mut GradSums, model: &LlavaNext, grads: &Gradients, ids: &[ParamId]) {
    for (id, g) in gradients(model, grads, ids) {
        let total = match sums.remove(&id) {
            Some(acc) => acc + g,
            None => g,
        };
        sums.insert(id, total);
    }
}

/// Runs `batch` through `model`, takes the loss (divided by `divisor`, the step's trained
/// tokens), and adds the gradients of `ids` to `sums`. Returns the loss numbers (undivided).
pub fn forward_backward(
    model: &LlavaNext,
    batch: &Batch,
    divisor: f64,
    options: BackwardOptions,
    ids: &[ParamId],
    sums: &mut GradSums,
) -> Result<LossStats> {
    let lm = &model.language_model;
    if !options.recompute {
        let states = batch.states(model, Some(options.seed))?;
        let parts = lm_loss(lm, states, &batch.labels)?;
        accumulate(sums, model, &parts.sum.div_scalar(divisor).backward(), ids);
        return Ok(parts.stats);
    }
    let device = model.device();
    device.seed(options.seed);
    let prepared = model.prepare_padded(&batch.prompts, Padding::Right)?;
    let (x0, tables) = lm.layer_tables(prepared.embeds)?;
    let [b, len, _] = x0.dims();
    let positions = TrainedPositions::of(&batch.labels, b, len)?;
    let layers = &lm.model.layers;

    // Forward: no graph in the decoder (copies of the layers whose parameters take no
    // gradient, on a detached input), each layer's input kept.
    let mut inputs = Vec::with_capacity(layers.len());
    let mut x = x0.clone().detach();
    for (i, layer) in layers.iter().enumerate() {
        device.seed(layer_seed(options.seed, i));
        inputs.push(x.clone());
        x = lm.layer_forward(&layer.clone().no_grad(), i, x, &tables);
    }

    // The head, chunk by chunk: the gradient of the last layer's output summed.
    let rows = options
        .loss_chunk_rows
        .unwrap_or_else(|| chunk_rows(lm.config().vocab_size));
    let mut values = Vec::new();
    let mut upstream: Option<Tensor<3>> = None;
    for range in positions.chunks(rows) {
        let leaf = x.clone().require_grad();
        let (sum, v) = positions.chunk_loss(lm, leaf.clone(), range)?;
        values.push(v);
        let grads = sum.div_scalar(divisor).backward();
        accumulate(sums, model, &grads, ids);
        let g = leaf
            .grad(&grads)
            .ok_or_else(|| missing("the last layer's output"))?;
        upstream = Some(match upstream {
            Some(acc) => acc + g,
            None => g,
        });
    }
    let mut upstream = upstream.ok_or_else(|| missing("the loss"))?;

    // The layers, last first, each run again with a graph.
    for (i, layer) in layers.iter().enumerate().rev() {
        device.seed(layer_seed(options.seed, i));
        let leaf = inputs[i].clone().require_grad();
        let y = lm.layer_forward(layer, i, leaf.clone(), &tables);
        let grads = (y * Tensor::from_inner(upstream)).sum().backward();
        accumulate(sums, model, &grads, ids);
        upstream = leaf
            .grad(&grads)
            .ok_or_else(|| missing(&format!("layer {i}'s input")))?;
    }

    // The embeddings, where anything below the decoder trains.
    if x0.is_tracked() {
        let grads = (x0 * Tensor::from_inner(upstream)).sum().backward();
        accumulate(sums, model, &grads, ids);
    }
    Ok(positions.stats(&values))
}

fn missing(what: &str) -> TrainError {
    TrainError::Internal(format!("the backward pass gave no gradient for {what}"))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{DType, Device, Distribution};
    use llava_model::{ModelKwargs, Prompt, get_model_tokenizer};
    use llava_template::IGNORE_INDEX;
    use llava_testutil::{fixture, relative_error};

    use super::*;
    use crate::args::SftArgs;
    use crate::params::{trainables, write_back};
    use crate::trainer::{attach_lora, unfreeze_full};

    /// The device's generator is shared by the process: tests that draw dropout take turns.
    static DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The clip-mistral fixture (2 layers, vocabulary 576) with LoRA on every q/v projection
    /// of the LLM (dropout 0.1), or fully trainable.
    fn model(full: bool) -> LlavaNext {
        let (m, _) = get_model_tokenizer(
            "llava1_6-mistral-7b-instruct-hf",
            Some(DType::F32),
            ModelKwargs {
                model_id_or_path: Some(fixture("llava/clip-mistral/hf").display().to_string()),
                device: Device::flex().autodiff(),
                ..ModelKwargs::default()
            },
        )
        .unwrap();
        let mut llava = m.llava;
        if full {
            return unfreeze_full(llava, true);
        }
        let targets: Vec<String> = llava
            .linears_mut()
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| {
                p.starts_with("language_model") && (p.ends_with("q_proj") || p.ends_with("v_proj"))
            })
            .collect();
        assert_eq!(targets.len(), 4, "{targets:?}");
        let args = SftArgs {
            lora_dropout_p: 0.1,
            ..SftArgs::default()
        };
        let model = attach_lora(llava, &args, &targets);
        // B starts at zero (PEFT's init), which would leave A without a gradient to compare.
        let updates = trainables(&model)
            .into_iter()
            .filter(|t| t.path.ends_with("lora_b"))
            .map(|t| {
                let values = Distribution::Normal(0.0, 0.1);
                (
                    t.id,
                    Tensor::<1>::random([t.numel()], values, &Device::flex()),
                )
            })
            .collect();
        write_back(model, updates)
    }

    /// Two text rows of different lengths, the first half of each untrained.
    fn batch() -> Batch {
        let rows: Vec<Vec<i64>> = [17usize, 11]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|i| ((i * 37 + n * 5) % 490) as i64 + 3)
                    .collect()
            })
            .collect();
        let len = rows.iter().map(Vec::len).max().unwrap();
        let labels: Vec<Vec<i64>> = rows
            .iter()
            .map(|r| {
                let mut l: Vec<i64> = r
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| if i < r.len() / 2 { IGNORE_INDEX } else { t })
                    .collect();
                l.resize(len, IGNORE_INDEX);
                l
            })
            .collect();
        let tokens = labels
            .iter()
            .map(|l| l[1..].iter().filter(|&&t| t != IGNORE_INDEX).count())
            .sum();
        Batch {
            prompts: rows
                .into_iter()
                .map(|ids| Prompt {
                    ids,
                    images: Vec::new(),
                })
                .collect(),
            labels,
            tokens,
        }
    }

    fn run(model: &LlavaNext, recompute: bool, chunk: Option<usize>) -> (LossStats, Vec<Vec<f32>>) {
        let ids: Vec<ParamId> = trainables(model).iter().map(|t| t.id).collect();
        let batch = batch();
        let mut sums = GradSums::new();
        let options = BackwardOptions {
            recompute,
            loss_chunk_rows: chunk,
            seed: 7,
        };
        let stats =
            forward_backward(model, &batch, batch.tokens as f64, options, &ids, &mut sums).unwrap();
        // Text rows only: every trainable parameter of the LLM gets a gradient, nothing else.
        let llm = trainables(model)
            .iter()
            .filter(|t| t.path.starts_with("language_model."))
            .count();
        assert_eq!(sums.len(), llm);
        let grads = ids
            .iter()
            .filter_map(|id| sums.get(id))
            .map(|g| g.clone().into_data().try_to_vec::<f32>().unwrap())
            .collect();
        (stats, grads)
    }

    fn assert_same(a: &(LossStats, Vec<Vec<f32>>), b: &(LossStats, Vec<Vec<f32>>), what: &str) {
        assert_eq!(a.0.tokens, 15, "{what}");
        assert_eq!(
            (a.0.tokens, a.0.correct),
            (b.0.tokens, b.0.correct),
            "{what}"
        );
        for ((sa, na), (sb, nb)) in a.0.rows.iter().zip(&b.0.rows) {
            assert_eq!(na, nb, "{what}");
            assert!(
                (sa - sb).abs() <= 1e-5 * sa.abs(),
                "{what}: row loss {sa} vs {sb}"
            );
        }
        for (i, (ga, gb)) in a.1.iter().zip(&b.1).enumerate() {
            assert!(ga.iter().any(|&v| v != 0.0), "{what}: gradient {i} is zero");
            let e = relative_error(ga, gb);
            assert!(e < 1e-5, "{what}: gradient {i} differs by {e}");
        }
    }

    #[test]
    fn recompute_and_loss_chunks_give_the_one_graph_gradients_with_lora_dropout() {
        let _turn = DRAWS.lock().unwrap_or_else(|e| e.into_inner());
        let model = model(false);
        let whole = run(&model, false, None);
        assert_same(&whole, &run(&model, false, None), "plain twice");
        assert_same(&whole, &run(&model, true, None), "recompute");
        assert_same(
            &whole,
            &run(&model, true, Some(4)),
            "recompute, chunks of 4",
        );
        // The dropout draws differ with the seed, so the comparison above would catch a
        // recompute that drew its own masks.
        let ids: Vec<ParamId> = trainables(&model).iter().map(|t| t.id).collect();
        let mut sums = GradSums::new();
        let b = batch();
        let options = BackwardOptions {
            recompute: false,
            loss_chunk_rows: None,
            seed: 8,
        };
        forward_backward(&model, &b, b.tokens as f64, options, &ids, &mut sums).unwrap();
        let other = sums[&ids[0]]
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(relative_error(&other, &whole.1[0]) > 1e-3);
    }

    #[test]
    fn recompute_gives_the_one_graph_gradients_in_full_fine_tuning() {
        let _turn = DRAWS.lock().unwrap_or_else(|e| e.into_inner());
        let model = model(true);
        assert_same(
            &run(&model, false, None),
            &run(&model, true, Some(5)),
            "full",
        );
    }
}
