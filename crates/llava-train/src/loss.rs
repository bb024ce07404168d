//! The causal-LM loss on trained positions only: `lm_head` runs on the hidden states whose next
//! label is not −100 (the loss is the same as over all logits, without the `[seq, vocab]` f32
//! logits, `../shared/spec/training.md` §2.2), in f32, masked by label rather than by token id
//! (the pad token is also the trained EOS).

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Int, Tensor, TensorData};
use llava_llm::CausalLm;
use llava_template::IGNORE_INDEX;

use crate::error::{Result, TrainError};

/// The loss of a batch.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Σ of the token losses (nats), `[1]`, tracked by autodiff.
    pub sum: Tensor<1>,
    /// Trained tokens.
    pub tokens: usize,
    /// Trained tokens whose argmax is the label (decision 6).
    pub correct: usize,
    /// Per row: Σ token loss and trained tokens.
    pub rows: Vec<(f64, usize)>,
}

/// The loss of `hidden` (`[batch, len, hidden]`, the decoder's final-norm states) against
/// `labels` (`[batch][len]`, expanded, aligned with the sequence). A batch with no trained
/// token is an error (its mean would be NaN, ms-swift issue #2283).
pub fn lm_loss(lm: &CausalLm, hidden: Tensor<3>, labels: &[Vec<i64>]) -> Result<LossParts> {
    let [b, len, h] = hidden.dims();
    if labels.len() != b || labels.iter().any(|l| l.len() != len) {
        return Err(TrainError::Internal(format!(
            "labels of {} rows for a batch of {b} rows of {len} positions",
            labels.len()
        )));
    }
    let mut index = Vec::new();
    let mut targets = Vec::new();
    let mut per_row = Vec::with_capacity(b);
    for (r, row) in labels.iter().enumerate() {
        let before = index.len();
        for i in 0..len.saturating_sub(1) {
            let label = row[i + 1];
            if label != IGNORE_INDEX {
                index.push((r * len + i) as i64);
                targets.push(label);
            }
        }
        per_row.push(index.len() - before);
    }
    let n = index.len();
    if n == 0 {
        return Err(TrainError::NoTrainedTokens);
    }
    let device = hidden.device();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
    let picked = hidden.reshape([b * len, h]).select(0, index);
    let logits = lm
        .logits(picked.unsqueeze::<3>())
        .reshape([n as i32, -1])
        .cast(DType::F32);
    let target = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
    let logp = log_softmax(logits.clone(), 1);
    let nll = logp.gather(1, target.clone()).neg().reshape([n]);
    let values = nll
        .clone()
        .inner()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Internal(format!("{e:?}")))?;
    let correct = logits
        .inner()
        .argmax(1)
        .equal(target.inner())
        .int()
        .sum()
        .into_scalar::<i64>();
    let mut rows = Vec::with_capacity(b);
    let mut start = 0;
    for count in per_row {
        let s: f64 = values[start..start + count]
            .iter()
            .map(|&v| f64::from(v))
            .sum();
        rows.push((s, count));
        start += count;
    }
    Ok(LossParts {
        sum: nll.sum(),
        tokens: n,
        correct: correct as usize,
        rows,
    })
}
