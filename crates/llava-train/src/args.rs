//! `SftArguments` of ms-swift 2.0.5 (`../shared/spec/swift-llava.md` §5.1) as one typed struct:
//! the CLI flags (kebab case, `--lora-rank 8`), the library's input, and `sft_args.json` (snake
//! case, ms-swift's field names). Model flags (`--model-type`, `--model-id-or-path`, `--dtype`,
//! `--device`) are the CLI's shared ones; the CLI copies them in.

use std::path::PathBuf;

use clap::ArgAction;
use llava_data::TruncationStrategy;
use serde::{Deserialize, Serialize};

use crate::schedule::LrSchedulerType;

/// `--sft-type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "lower")]
pub enum SftType {
    /// Adapters on the target modules; the base is frozen.
    #[default]
    Lora,
    /// Every weight of the LLM and the projector (the vision tower with `--freeze-vit false`).
    Full,
}

/// `--dtype` as `sft_args.json` writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrainDtype {
    /// The checkpoint's dtype on a GPU (bf16 when it says float32), f32 on the CPU.
    #[default]
    #[serde(rename = "AUTO")]
    Auto,
    /// float32.
    #[serde(rename = "fp32")]
    F32,
    /// bfloat16.
    #[serde(rename = "bf16")]
    Bf16,
    /// float16.
    #[serde(rename = "fp16")]
    F16,
}

/// `--truncation-strategy` for clap (the data crate's enum has no clap).
fn parse_truncation(s: &str) -> Result<TruncationStrategy, String> {
    match s {
        "delete" | "ignore" => Ok(TruncationStrategy::Delete),
        "truncation_left" => Ok(TruncationStrategy::TruncationLeft),
        other => Err(format!(
            "unknown truncation strategy {other:?}: expected delete or truncation_left"
        )),
    }
}

/// Every option of a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct SftArgs {
    /// ms-swift's model type (set by the CLI's `--model-type`).
    #[arg(skip)]
    pub model_type: String,
    /// The checkpoint directory or hub id (set by the CLI's `--model-id-or-path`).
    #[arg(skip)]
    pub model_id_or_path: Option<String>,
    /// The dtype of the run (set by the CLI's `--dtype`).
    #[arg(skip)]
    pub dtype: TrainDtype,
    /// Where training runs (set by the CLI's `--device`; the CPU when unset). Not saved.
    #[arg(skip)]
    #[serde(skip)]
    pub device: Option<burn::tensor::Device>,
    /// `lora` or `full`.
    #[arg(long, value_enum, default_value_t = SftType::Lora)]
    pub sft_type: SftType,
    /// The template; the model type's default when unset.
    #[arg(long)]
    pub template_type: Option<String>,
    /// Runs go to `<output-dir>/<model_type>/v<N>-<timestamp>/`.
    #[arg(long, default_value = "output")]
    pub output_dir: PathBuf,
    /// Add `<model_type>/v<N>-<timestamp>` to the output directory.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub add_output_dir_suffix: bool,
    /// Seed of the adapters' initialisation, dropout and the sample order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Training datasets: files (`.jsonl`, `.json`, `.csv`) or registered names, `#N` to
    /// sample N rows.
    #[arg(long, num_args = 1.., required = true)]
    pub dataset: Vec<String>,
    /// Validation datasets; when given, nothing is split off the training data.
    #[arg(long, num_args = 1..)]
    pub val_dataset: Vec<String>,
    /// Seed of sampling and of the validation split.
    #[arg(long, default_value_t = 42)]
    pub dataset_seed: u64,
    /// Share of each training dataset held out for validation.
    #[arg(long, default_value_t = 0.01)]
    pub dataset_test_ratio: f64,
    /// Directories holding mirrors of registered datasets (`<dir>/<name>/`).
    #[arg(long, num_args = 1..)]
    pub dataset_dir: Vec<PathBuf>,
    /// The system text; the template's default when unset, none when empty.
    #[arg(long)]
    pub system: Option<String>,
    /// Longest training sequence, images expanded; the model's context when unset, -1 for no
    /// limit.
    #[arg(long, allow_hyphen_values = true)]
    pub max_length: Option<i64>,
    /// Rows over `--max-length`: `delete` or `truncation_left`.
    #[arg(long, value_parser = parse_truncation, default_value = "delete")]
    pub truncation_strategy: TruncationStrategy,
    /// `DEFAULT` (the LLM's q/k/v), `ALL` (every linear of the LLM and the projector, the
    /// tower's too with `--freeze-vit false`) or module names.
    #[arg(long, num_args = 1.., default_values_t = vec!["DEFAULT".to_string()])]
    pub lora_target_modules: Vec<String>,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    /// LoRA alpha (scaling alpha/r).
    #[arg(long, default_value_t = 32.0)]
    pub lora_alpha: f64,
    /// Dropout on the adapters' input.
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout_p: f64,
    /// Scaling alpha/√r (rank-stabilised LoRA).
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    pub use_rslora: bool,
    /// Keep the vision tower frozen.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub freeze_vit: bool,
    /// Rows per micro-batch.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Rows per evaluation batch (`--batch-size` when unset).
    #[arg(long)]
    pub eval_batch_size: Option<usize>,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub num_train_epochs: usize,
    /// Optimizer steps of the run; -1: the epochs decide.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub max_steps: i64,
    /// Stop at the first optimizer step after this many minutes from the command's start
    /// (loading the model and encoding the dataset included) and save a checkpoint there
    /// (`--resume-from-checkpoint` goes on from it, on the same schedule): for machines lent by
    /// the slot. Unset: train to the end.
    #[arg(long)]
    pub stop_after_minutes: Option<f64>,
    /// Base learning rate (1e-4 for LoRA, 1e-5 for full when unset).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Decoupled weight decay (not on biases and norm weights).
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// AdamW β₁.
    #[arg(long, default_value_t = 0.9)]
    pub adam_beta1: f64,
    /// AdamW β₂.
    #[arg(long, default_value_t = 0.999)]
    pub adam_beta2: f64,
    /// AdamW ε.
    #[arg(long, default_value_t = 1e-8)]
    pub adam_epsilon: f64,
    /// Micro-batches per optimizer step (`ceil(16 / batch size)` when unset).
    #[arg(long)]
    pub gradient_accumulation_steps: Option<usize>,
    /// Clip the global gradient norm to this (≤ 0: no clipping).
    #[arg(long, default_value_t = 0.5)]
    pub max_grad_norm: f64,
    /// Keep only each decoder layer's input in the forward pass and run the layer again in the
    /// backward pass (ms-swift's default): activation memory of one layer, for one forward
    /// pass more.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub gradient_checkpointing: bool,
    /// Keep f32 master weights (and f32 moments) for parameters the model holds in bf16 or
    /// f16, the model getting them rounded after each step; without it, full fine-tuning in
    /// bf16 is pure bf16, as ms-swift without DeepSpeed (8 more bytes a parameter: the master,
    /// and moments in f32).
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub master_f32: bool,
    /// `linear`, `cosine` or `constant`, after the warmup.
    #[arg(long, value_enum, default_value_t = LrSchedulerType::Linear)]
    pub lr_scheduler_type: LrSchedulerType,
    /// Warmup share of the optimizer steps.
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    /// Warmup steps (overrides the ratio when positive).
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// Evaluate every this many optimizer steps (and at the end).
    #[arg(long, default_value_t = 50)]
    pub eval_steps: usize,
    /// Save every this many steps (`--eval-steps` when unset; and at the end).
    #[arg(long)]
    pub save_steps: Option<usize>,
    /// Log every this many steps (and at step 1).
    #[arg(long, default_value_t = 5)]
    pub logging_steps: usize,
    /// Checkpoints kept: the best and the latest up to this many; -1 keeps all.
    #[arg(long, default_value_t = 2, allow_hyphen_values = true)]
    pub save_total_limit: i64,
    /// A checkpoint of an earlier run to continue (weights, optimizer, schedule, data position).
    #[arg(long)]
    pub resume_from_checkpoint: Option<PathBuf>,
    /// With `--resume-from-checkpoint`: the weights only, a fresh optimizer and schedule.
    #[arg(long, default_value_t = false, action = ArgAction::Set)]
    pub resume_only_model: bool,
}

impl Default for SftArgs {
    fn default() -> Self {
        Self {
            model_type: String::new(),
            model_id_or_path: None,
            dtype: TrainDtype::Auto,
            device: None,
            sft_type: SftType::Lora,
            template_type: None,
            output_dir: PathBuf::from("output"),
            add_output_dir_suffix: true,
            seed: 42,
            dataset: Vec::new(),
            val_dataset: Vec::new(),
            dataset_seed: 42,
            dataset_test_ratio: 0.01,
            dataset_dir: Vec::new(),
            system: None,
            max_length: None,
            truncation_strategy: TruncationStrategy::Delete,
            lora_target_modules: vec!["DEFAULT".into()],
            lora_rank: 8,
            lora_alpha: 32.0,
            lora_dropout_p: 0.05,
            use_rslora: false,
            freeze_vit: true,
            batch_size: 1,
            eval_batch_size: None,
            num_train_epochs: 1,
            max_steps: -1,
            stop_after_minutes: None,
            learning_rate: None,
            weight_decay: 0.1,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            gradient_accumulation_steps: None,
            max_grad_norm: 0.5,
            gradient_checkpointing: true,
            master_f32: false,
            lr_scheduler_type: LrSchedulerType::Linear,
            warmup_ratio: 0.05,
            warmup_steps: 0,
            eval_steps: 50,
            save_steps: None,
            logging_steps: 5,
            save_total_limit: 2,
            resume_from_checkpoint: None,
            resume_only_model: false,
        }
    }
}

impl SftArgs {
    /// The learning rate of the run.
    pub fn lr(&self) -> f64 {
        self.learning_rate.unwrap_or(match self.sft_type {
            SftType::Lora => 1e-4,
            SftType::Full => 1e-5,
        })
    }

    /// Micro-batches per optimizer step.
    pub fn accumulation(&self) -> usize {
        self.gradient_accumulation_steps
            .unwrap_or_else(|| 16usize.div_ceil(self.batch_size.max(1)))
    }

    /// Steps between saves.
    pub fn save_every(&self) -> usize {
        self.save_steps.unwrap_or(self.eval_steps)
    }

    /// Rows per evaluation batch.
    pub fn eval_batch(&self) -> usize {
        self.eval_batch_size.unwrap_or(self.batch_size)
    }

    /// Checks values that no run can use, naming the flag.
    pub fn check(&self) -> crate::Result<()> {
        let bad = |m: String| Err(crate::TrainError::Args(m));
        if self.model_type.is_empty() {
            return bad("no --model-type given".into());
        }
        if self.dataset.is_empty() {
            return bad("no --dataset given".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == Some(0) {
            return bad("--batch-size and --eval-batch-size must be at least 1".into());
        }
        if self.gradient_accumulation_steps == Some(0) {
            return bad("--gradient-accumulation-steps must be at least 1".into());
        }
        if self.lora_rank == 0 {
            return bad("--lora-rank must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.lora_dropout_p) {
            return bad(format!(
                "--lora-dropout-p {} must be in [0, 1)",
                self.lora_dropout_p
            ));
        }
        if self.eval_steps == 0 || self.save_every() == 0 || self.logging_steps == 0 {
            return bad("--eval-steps, --save-steps and --logging-steps must be at least 1".into());
        }
        if self.num_train_epochs == 0 && self.max_steps <= 0 {
            return bad("--num-train-epochs 0 needs --max-steps".into());
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "--warmup-ratio {} must be in [0, 1)",
                self.warmup_ratio
            ));
        }
        if self.save_total_limit == 0 || self.save_total_limit < -1 {
            return bad("--save-total-limit must be -1 (keep all) or at least 1".into());
        }
        if self.resume_only_model && self.resume_from_checkpoint.is_none() {
            return bad("--resume-only-model needs --resume-from-checkpoint".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SftArgs,
    }

    /// The flags' defaults are the struct's defaults (one set of ms-swift defaults).
    #[test]
    fn flag_defaults_equal_the_struct_defaults() {
        let cli = Cli::try_parse_from(["sft", "--dataset", "x.jsonl"]).unwrap();
        let expected = SftArgs {
            dataset: vec!["x.jsonl".into()],
            ..SftArgs::default()
        };
        assert_eq!(cli.args, expected);
        let cli = Cli::try_parse_from([
            "sft",
            "--dataset",
            "a.jsonl",
            "llava-tiny#4",
            "--sft-type",
            "full",
            "--freeze-vit",
            "false",
            "--max-length",
            "-1",
            "--lora-target-modules",
            "ALL",
            "--truncation-strategy",
            "truncation_left",
        ])
        .unwrap();
        assert_eq!(cli.args.dataset.len(), 2);
        assert_eq!(cli.args.sft_type, SftType::Full);
        assert!(!cli.args.freeze_vit);
        assert_eq!(cli.args.max_length, Some(-1));
        assert_eq!(
            cli.args.truncation_strategy,
            TruncationStrategy::TruncationLeft
        );
        assert_eq!(cli.args.lr(), 1e-5);
    }

    #[test]
    fn derived_values_and_sft_args_json() {
        let mut a = SftArgs::default();
        assert_eq!(a.accumulation(), 16);
        a.batch_size = 3;
        assert_eq!(a.accumulation(), 6);
        assert_eq!(a.lr(), 1e-4);
        assert_eq!(a.save_every(), 50);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["sft_type"], "lora");
        assert_eq!(json["dtype"], "AUTO");
        assert_eq!(json["lora_target_modules"][0], "DEFAULT");
        let back: SftArgs = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
        // A file from an older run, missing fields, reads with the defaults.
        let old: SftArgs = serde_json::from_str(r#"{"model_type": "x", "lora_rank": 4}"#).unwrap();
        assert_eq!((old.lora_rank, old.seed), (4, 42));
    }
}
