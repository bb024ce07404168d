//! Fine-tuning LLaVA-NeXT as ms-swift 2.0.5's `swift sft` does (`../shared/spec/training.md`),
//! with the project's decisions 10–14 (`../shared/spec/README.md`): a hand-written loop on
//! burn-autodiff, LoRA (PEFT's layers, initialisation and files) or full fine-tuning, torch's
//! AdamW, global-norm clipping, transformers' schedules, and ms-swift's output layout.

pub mod args;
pub mod backward;
pub mod batch;
pub mod checkpoint;
mod error;
pub mod export;
pub mod loss;
pub mod master;
pub mod optim;
pub mod output;
pub mod params;
pub mod plots;
mod run;
pub mod schedule;
pub mod targets;
pub mod trainer;

pub use args::{SftArgs, SftType, TrainDtype};
pub use error::{Result, TrainError};
pub use export::{ExportArgs, export, merged_dir};
pub use run::{SftOutput, cache_dir, sft};
pub use schedule::{LrSchedulerType, Schedule};
pub use trainer::{EvalRecord, StepRecord, Trainer, TrainerParts};
