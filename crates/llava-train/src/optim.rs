//! AdamW with torch's semantics (`torch.optim.AdamW`, single-tensor path): decoupled decay
//! `θ ← θ·(1 − lr·λ)` on the decay group only; `m ← lerp(m, g, 1 − β₁)`;
//! `v ← β₂·v + (1 − β₂)·g²`; `θ ← θ − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + ε)`, the bias
//! corrections in f64. burn's AdamW adds ε after dividing v by its correction and rounds the
//! corrections to f32 (`../shared/spec/training.md` §2.3), hence this one.
//!
//! Moments are kept per parameter path, in the parameter's dtype, flattened.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

/// Hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε (torch and transformers: 1e-8).
    pub epsilon: f64,
    /// λ.
    pub weight_decay: f64,
}

/// The first and second moments of one parameter.
#[derive(Debug, Clone)]
pub struct Moments {
    /// `exp_avg`.
    pub exp_avg: Tensor<1>,
    /// `exp_avg_sq`.
    pub exp_avg_sq: Tensor<1>,
}

/// The optimizer and its state.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Steps taken (the bias corrections' t).
    pub steps: u64,
    /// Moments by parameter path.
    pub state: BTreeMap<String, Moments>,
}

impl AdamW {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            state: BTreeMap::new(),
        }
    }

    /// Counts one step; call once per optimizer step, before [`Self::update`].
    pub fn begin_step(&mut self) {
        self.steps += 1;
    }

    /// The new value of the parameter at `path` (flattened `param`, its gradient `grad`).
    pub fn update(
        &mut self,
        path: &str,
        decay: bool,
        param: Tensor<1>,
        grad: Tensor<1>,
        lr: f64,
    ) -> Tensor<1> {
        let c = self.config;
        let t = self.steps.max(1) as i32;
        let param = if decay && c.weight_decay != 0.0 {
            param.mul_scalar(1.0 - lr * c.weight_decay)
        } else {
            param
        };
        let moments = self.state.remove(path).unwrap_or_else(|| Moments {
            exp_avg: grad.zeros_like(),
            exp_avg_sq: grad.zeros_like(),
        });
        let exp_avg =
            moments.exp_avg.clone() + (grad.clone() - moments.exp_avg).mul_scalar(1.0 - c.beta1);
        let exp_avg_sq = moments.exp_avg_sq.mul_scalar(c.beta2)
            + (grad.clone() * grad).mul_scalar(1.0 - c.beta2);
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let step_size = lr / bc1;
        let denom = exp_avg_sq
            .clone()
            .sqrt()
            .div_scalar(bc2_sqrt)
            .add_scalar(c.epsilon);
        let new = param - (exp_avg.clone() / denom).mul_scalar(step_size);
        self.state.insert(
            path.to_string(),
            Moments {
                exp_avg,
                exp_avg_sq,
            },
        );
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Two steps of torch.optim.AdamW(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    /// on θ = [1, −2] with gradients [0.5, 0.25] then [−1, 2] (values printed by torch 2.8: [0.9177104, -2.1413467]).
    #[test]
    fn two_steps_match_torch() {
        let device = Device::flex();
        let t = |v: [f32; 2]| Tensor::<1>::from_data(TensorData::from(v), &device);
        let mut opt = AdamW::new(AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.1,
        });
        let mut p = t([1.0, -2.0]);
        for g in [[0.5, 0.25], [-1.0, 2.0]] {
            opt.begin_step();
            p = opt.update("w", true, p, t(g), 0.1);
        }
        let got = p.into_data().try_into_vec::<f32>().unwrap();
        let expected = [0.917_710_4_f32, -2.141_346_7];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }
}
