//! The causal-LM loss on trained positions only: the final norm and `lm_head` run on the hidden
//! states whose next label is not −100 (the loss is the same as over all logits, without the
//! `[seq, vocab]` logits, `../shared/spec/training.md` §2.2), in f32, masked by label rather
//! than by token id (the pad token is also the trained EOS). The positions go in chunks whose
//! f32 logits fit [`LOGITS_CHUNK_BYTES`], so a long answer never holds `[tokens, vocab]` whole
//! where each chunk gets its own backward pass (see `crate::backward`).

use std::ops::Range;

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Int, Tensor, TensorData};
use llava_llm::CausalLm;
use llava_template::IGNORE_INDEX;

use crate::error::{Result, TrainError};

/// The f32 logits one loss chunk may hold (a 32k vocabulary: 2,048 positions a chunk).
pub const LOGITS_CHUNK_BYTES: usize = 256 << 20;

/// Positions a chunk for a vocabulary of `vocab`.
pub fn chunk_rows(vocab: usize) -> usize {
    (LOGITS_CHUNK_BYTES / (4 * vocab.max(1))).max(1)
}

/// The loss of a batch.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// Σ of the token losses (nats), `[1]`, tracked by autodiff.
    pub sum: Tensor<1>,
    /// The numbers read back.
    pub stats: LossStats,
}

/// The host side of a batch's loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossStats {
    /// Trained tokens.
    pub tokens: usize,
    /// Trained tokens whose argmax is the label (decision 6).
    pub correct: usize,
    /// Per row: Σ token loss and trained tokens.
    pub rows: Vec<(f64, usize)>,
}

/// Where a batch is trained: flat positions (`row · len + i`, whose next label is not −100)
/// and their labels.
#[derive(Debug, Clone)]
pub struct TrainedPositions {
    index: Vec<i64>,
    targets: Vec<i64>,
    per_row: Vec<usize>,
    len: usize,
}

impl TrainedPositions {
    /// The trained positions of `labels` (`[batch][len]`, expanded, aligned with a sequence of
    /// `len` positions). A batch with no trained token is an error (its mean would be NaN,
    /// ms-swift issue #2283).
    pub fn of(labels: &[Vec<i64>], batch: usize, len: usize) -> Result<Self> {
        if labels.len() != batch || labels.iter().any(|l| l.len() != len) {
            return Err(TrainError::Internal(format!(
                "labels of {} rows for a batch of {batch} rows of {len} positions",
                labels.len()
            )));
        }
        let mut index = Vec::new();
        let mut targets = Vec::new();
        let mut per_row = Vec::with_capacity(batch);
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
        if index.is_empty() {
            return Err(TrainError::NoTrainedTokens);
        }
        Ok(Self {
            index,
            targets,
            per_row,
            len,
        })
    }

    /// Trained positions.
    pub fn count(&self) -> usize {
        self.index.len()
    }

    /// Consecutive ranges of at most `rows` positions covering all of them.
    pub fn chunks(&self, rows: usize) -> Vec<Range<usize>> {
        let rows = rows.max(1);
        (0..self.count())
            .step_by(rows)
            .map(|s| s..(s + rows).min(self.count()))
            .collect()
    }

    /// The loss of the positions in `range`, from `states` (`[batch, len, hidden]`, the last
    /// decoder layer's output before the final norm).
    pub fn chunk_loss(
        &self,
        lm: &CausalLm,
        states: Tensor<3>,
        range: Range<usize>,
    ) -> Result<(Tensor<1>, ChunkValues)> {
        let [b, len, h] = states.dims();
        if len != self.len || b != self.per_row.len() {
            return Err(TrainError::Internal(format!(
                "states of shape [{b}, {len}, {h}] for labels of {} rows of {} positions",
                self.per_row.len(),
                self.len
            )));
        }
        let n = range.len();
        let device = states.device();
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(self.index[range.clone()].to_vec(), [n]),
            &device,
        );
        let picked = states.reshape([b * len, h]).select(0, index);
        let normed = lm.final_norm(picked.unsqueeze::<3>());
        let logits = lm.logits(normed).reshape([n as i32, -1]).cast(DType::F32);
        let target = Tensor::<2, Int>::from_data(
            TensorData::new(self.targets[range].to_vec(), [n, 1]),
            &device,
        );
        let logp = log_softmax(logits.clone(), 1);
        let nll = logp.gather(1, target.clone()).neg().reshape([n]);
        let losses = nll
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
            .into_scalar::<i64>() as usize;
        Ok((nll.sum(), ChunkValues { losses, correct }))
    }

    /// The statistics of the chunks' values, in position order.
    pub fn stats(&self, chunks: &[ChunkValues]) -> LossStats {
        let losses: Vec<f32> = chunks
            .iter()
            .flat_map(|c| c.losses.iter().copied())
            .collect();
        let mut rows = Vec::with_capacity(self.per_row.len());
        let mut start = 0;
        for &count in &self.per_row {
            let s: f64 = losses[start..start + count]
                .iter()
                .map(|&v| f64::from(v))
                .sum();
            rows.push((s, count));
            start += count;
        }
        LossStats {
            tokens: self.count(),
            correct: chunks.iter().map(|c| c.correct).sum(),
            rows,
        }
    }
}

/// What a loss chunk reads back.
#[derive(Debug, Clone)]
pub struct ChunkValues {
    /// Per position: the token loss (nats).
    pub losses: Vec<f32>,
    /// Positions whose argmax is the label.
    pub correct: usize,
}

/// The loss of `states` (`[batch, len, hidden]`, before the final norm) against `labels`
/// (`[batch][len]`), every chunk in one graph.
pub fn lm_loss(lm: &CausalLm, states: Tensor<3>, labels: &[Vec<i64>]) -> Result<LossParts> {
    let [b, len, _] = states.dims();
    let positions = TrainedPositions::of(labels, b, len)?;
    let mut sums = Vec::new();
    let mut values = Vec::new();
    for range in positions.chunks(chunk_rows(lm.config().vocab_size)) {
        let (sum, v) = positions.chunk_loss(lm, states.clone(), range)?;
        sums.push(sum);
        values.push(v);
    }
    Ok(LossParts {
        sum: Tensor::cat(sums, 0).sum(),
        stats: positions.stats(&values),
    })
}
