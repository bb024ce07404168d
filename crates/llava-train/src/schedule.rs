//! Learning-rate schedules as transformers computes them (`get_scheduler`): a warmup from
//! exactly 0, then linear decay to 0, cosine, or constant. burn's schedulers cannot start at 0
//! (`../shared/spec/training.md` §2.4), so the factor is computed here and passed to each step.

use serde::{Deserialize, Serialize};

/// `--lr-scheduler-type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "lower")]
pub enum LrSchedulerType {
    /// Warmup, then linear decay to 0 (ms-swift's default).
    #[default]
    Linear,
    /// Warmup, then half a cosine down to 0.
    Cosine,
    /// Warmup, then the base rate.
    Constant,
}

/// The schedule of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Its shape.
    pub kind: LrSchedulerType,
    /// The base learning rate.
    pub base_lr: f64,
    /// Optimizer steps of the run.
    pub total_steps: usize,
    /// Warmup steps.
    pub warmup_steps: usize,
}

impl Schedule {
    /// Warmup steps from `--warmup-steps` when positive, else `ceil(total · ratio)`
    /// (transformers' `get_warmup_steps`).
    pub fn warmup(total_steps: usize, warmup_ratio: f64, warmup_steps: usize) -> usize {
        if warmup_steps > 0 {
            warmup_steps
        } else {
            (total_steps as f64 * warmup_ratio).ceil() as usize
        }
    }

    /// The rate of optimizer step `step` (0-based: the first step uses `lr(0)`, which is 0
    /// with any warmup, as in transformers).
    pub fn lr(&self, step: usize) -> f64 {
        let (s, w, t) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        let factor = if step < self.warmup_steps {
            s / w.max(1.0)
        } else {
            let progress = (s - w) / (t - w).max(1.0);
            match self.kind {
                LrSchedulerType::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
                LrSchedulerType::Cosine => {
                    (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
                }
                LrSchedulerType::Constant => 1.0,
            }
        };
        self.base_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// transformers' values: `get_linear_schedule_with_warmup(opt, 126, 2506)` at steps 0, 1,
    /// 126 and 2505, and the cosine midpoint.
    #[test]
    fn warmup_from_zero_then_decay() {
        assert_eq!(Schedule::warmup(2506, 0.05, 0), 126);
        assert_eq!(Schedule::warmup(10, 0.05, 0), 1);
        assert_eq!(Schedule::warmup(10, 0.05, 3), 3);
        let s = Schedule {
            kind: LrSchedulerType::Linear,
            base_lr: 1e-4,
            total_steps: 2506,
            warmup_steps: 126,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(1) - 1e-4 / 126.0).abs() < 1e-18);
        assert!((s.lr(126) - 1e-4).abs() < 1e-18);
        assert!((s.lr(2505) - 1e-4 / 2380.0).abs() < 1e-18);
        assert_eq!(s.lr(2506), 0.0);
        let c = Schedule {
            kind: LrSchedulerType::Cosine,
            ..s
        };
        assert!((c.lr(126 + 1190) - 0.5e-4).abs() < 1e-12);
        let k = Schedule {
            kind: LrSchedulerType::Constant,
            ..s
        };
        assert_eq!(k.lr(2000), 1e-4);
    }
}
