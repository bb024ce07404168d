use burn::tensor::activation::softmax;
use burn::tensor::{DType, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::processors::{repetition_penalty, temperature, top_k, top_p};
use crate::{LlmError, Result};

/// The decoding settings transformers' `GenerationConfig` names, with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Draw from the distribution instead of taking the argmax.
    pub do_sample: bool,
    /// Softmax temperature (sampling only).
    pub temperature: f64,
    /// Keep the k most likely tokens (sampling only; 0 disables).
    pub top_k: usize,
    /// Nucleus mass (sampling only; 1 disables).
    pub top_p: f64,
    /// Penalty on tokens already present (1 disables).
    pub repetition_penalty: f64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Rejects values transformers rejects.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LlmError::Generation(m));
        if self.repetition_penalty.is_nan() || self.repetition_penalty <= 0.0 {
            return bad(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        if self.do_sample {
            if self.temperature.is_nan() || self.temperature <= 0.0 {
                return bad(format!(
                    "temperature must be > 0 when sampling, got {} (use greedy decoding instead)",
                    self.temperature
                ));
            }
            // Scores are f32: a temperature that is 0 there divides them into infinities.
            if (self.temperature as f32) < f32::MIN_POSITIVE {
                return bad(format!(
                    "temperature {:e} is below the smallest f32 the scores are divided in \
                     ({:e}); use greedy decoding (do_sample false) instead",
                    self.temperature,
                    f32::MIN_POSITIVE
                ));
            }
            if self.top_p.is_nan() || self.top_p <= 0.0 || self.top_p > 1.0 {
                return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
            }
        }
        Ok(())
    }
}

/// Applies the processors and chooses tokens, with its own seeded random stream so that a
/// fixed seed reproduces the same draws on any backend.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler with the given settings and seed.
    pub fn new(params: SamplingParams, seed: u64) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The processed scores, f32 `[batch, vocab]`, in transformers' order: repetition penalty,
    /// then (sampling only) temperature, top-k, top-p.
    pub fn process(&self, logits: Tensor<2>, seen: &[Vec<u32>]) -> Tensor<2> {
        let p = &self.params;
        let mut scores = logits.cast(DType::F32);
        if p.repetition_penalty != 1.0 {
            scores = repetition_penalty(scores, seen, p.repetition_penalty);
        }
        if p.do_sample {
            if p.temperature != 1.0 {
                scores = temperature(scores, p.temperature);
            }
            if p.top_k != 0 {
                scores = top_k(scores, p.top_k);
            }
            if p.top_p < 1.0 {
                scores = top_p(scores, p.top_p);
            }
        }
        scores
    }

    /// One token per row: the argmax (first index on ties), or a draw from the softmax.
    pub fn choose(&mut self, scores: Tensor<2>) -> Result<Vec<u32>> {
        let [batch, vocab] = scores.dims();
        // A row whose scores are broken (NaN, +inf: broken weights, or a temperature that
        // overflows the scores) is flagged by adding `vocab` to its id, so that the one read
        // of the ids also tells; torch's sampler raises there.
        let (ids, broken) = if self.params.do_sample {
            let cdf = softmax(scores, 1).cumsum(1);
            let total = cdf.clone().narrow(1, vocab - 1, 1);
            let broken = total
                .clone()
                .is_nan()
                .bool_or(total.clone().lower_equal_elem(0.0))
                .reshape([batch]);
            let draws: Vec<f32> = (0..batch).map(|_| self.rng.random::<f32>()).collect();
            let u = Tensor::<2>::from_data(
                TensorData::new(draws, [batch, 1]),
                (&cdf.device(), DType::F32),
            ) * total;
            // The first index whose cumulative probability exceeds u: entries removed by the
            // processors (probability 0) can never be that index.
            let ids = cdf
                .lower_equal(u.expand([batch, vocab]))
                .int()
                .sum_dim(1)
                .clamp_max(vocab as i64 - 1);
            (ids, broken)
        } else {
            let broken = scores
                .clone()
                .is_nan()
                .bool_or(scores.clone().equal_elem(f32::INFINITY))
                .any_dim(1)
                .reshape([batch]);
            (llava_ops::argmax_last(scores), broken)
        };
        let flagged = ids.reshape([batch]) + broken.int() * (vocab as i64);
        let ids = flagged
            .try_into_vec_as::<i64>()
            .map_err(|e| LlmError::Device(format!("reading the chosen token ids: {e:?}")))?;
        if let Some(row) = ids.iter().position(|&id| id >= vocab as i64) {
            return Err(LlmError::Generation(format!(
                "row {row}: the scores are not finite (NaN or infinity), so no token can be \
                 chosen; the weights hold NaN/inf, or the temperature {} overflows them",
                self.params.temperature
            )));
        }
        Ok(ids.into_iter().map(|id| id as u32).collect())
    }

    /// Processes `logits` (`[batch, vocab]`) and chooses one token per row. `seen` holds each
    /// row's ids for the repetition penalty (one entry per row, or none at all).
    pub fn next_tokens(&mut self, logits: Tensor<2>, seen: &[Vec<u32>]) -> Result<Vec<u32>> {
        let batch = logits.dims()[0];
        if self.params.repetition_penalty != 1.0 && seen.len() != batch {
            return Err(LlmError::Input(format!(
                "{} token histories for a batch of {batch}",
                seen.len()
            )));
        }
        let scores = self.process(logits, seen);
        self.choose(scores)
    }
}
