//! `llava infer` flags: ms-swift's `swift infer` flags in kebab case, with its CLI defaults
//! (`../shared/spec/swift-llava.md` §4.2).

use std::path::PathBuf;

use clap::ArgAction;

use crate::args::ModelArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The model (shared with every command).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Template (default: the model type's).
    #[arg(long, default_value = "AUTO")]
    pub template_type: String,
    /// System text (default: the template's; `""` for none).
    #[arg(long)]
    pub system: Option<String>,
    /// New tokens per answer, at most.
    #[arg(long, default_value_t = 2048, value_parser = crate::args::at_least_one)]
    pub max_new_tokens: usize,
    /// Sample (`false`: greedy).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub do_sample: bool,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.3, value_parser = crate::args::temperature)]
    pub temperature: f64,
    /// Keep the k most likely tokens.
    #[arg(long, default_value_t = 20)]
    pub top_k: usize,
    /// Nucleus mass.
    #[arg(long, default_value_t = 0.7)]
    pub top_p: f64,
    /// Penalty on tokens already in the sequence.
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f64,
    /// Extra texts that end an answer, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub stop_words: Vec<String>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the answer as it is generated.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub stream: bool,
    /// Append each turn to `<ckpt or model dir>/infer_result/<timestamp>.jsonl` (the current
    /// directory's `infer_result/` for the embedded model).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub save_result: bool,
    /// Where the result file goes instead of `<ckpt or model dir>/infer_result`. One-shot
    /// mode (`--query`) writes its answer there too, as one line, only when this is given
    /// (and `--save-result` is not false).
    #[arg(long)]
    pub result_dir: Option<PathBuf>,
    /// One-shot mode: answer this query and exit (no REPL).
    #[arg(long)]
    pub query: Option<String>,
    /// One-shot mode: the query's images (paths or URLs), space separated or the flag
    /// repeated (`--images a.png b.png`, as ms-swift's lists), so a path may hold a comma.
    #[arg(long, num_args = 1.., action = ArgAction::Append, requires = "query")]
    pub images: Vec<String>,
    /// Image URLs: seconds to connect, and for each read.
    #[arg(long, default_value_t = 30.0, value_parser = crate::args::seconds)]
    pub image_timeout: f64,
    /// Image URLs: seconds for the whole fetch (a server trickling bytes is cut off).
    #[arg(long, default_value_t = 120.0, value_parser = crate::args::seconds)]
    pub image_deadline: f64,
    /// Image URLs: the largest body accepted, in MiB.
    #[arg(long, default_value_t = 64, value_parser = crate::args::at_least_one)]
    pub image_max_mib: usize,
    /// Images: the most pixels one may have (default Pillow's decompression-bomb limit,
    /// 178,956,970), checked on the header before decoding.
    #[arg(long)]
    pub max_image_pixels: Option<u64>,
    /// Images: the longest side one may have, in pixels (default 16,384), checked on the
    /// header before decoding.
    #[arg(long)]
    pub max_image_side: Option<u32>,
    /// One-shot mode: `text` (the answer) or `json`
    /// (`{"response", "token_ids", "prompt_tokens", "image_tokens"}`).
    #[arg(long, default_value = "text", value_parser = ["text", "json"], requires = "query")]
    pub output_format: String,
    /// With `--ckpt-dir`: take the training run's datasets, split and seed from its
    /// `sft_args.json` and answer the validation rows it held out (ms-swift's
    /// `--load_dataset_config`).
    #[arg(long, action = ArgAction::Set, default_value_t = false)]
    pub load_dataset_config: bool,
    /// Answer these datasets' validation rows (files or registered names, `#N` sampling).
    #[arg(long, num_args = 1..)]
    pub dataset: Vec<String>,
    /// Answer every row of these datasets.
    #[arg(long, num_args = 1..)]
    pub val_dataset: Vec<String>,
    /// Share held out for validation (default: the training run's, else 0.01).
    #[arg(long)]
    pub dataset_test_ratio: Option<f64>,
    /// Seed of the split and of the rows shown (default: the training run's, else 42).
    #[arg(long)]
    pub dataset_seed: Option<u64>,
    /// Directories holding mirrors of registered datasets.
    #[arg(long, num_args = 1..)]
    pub dataset_dir: Vec<PathBuf>,
    /// How many validation rows to answer, drawn with the dataset seed; -1 for all.
    #[arg(long, default_value_t = 10, allow_hyphen_values = true)]
    pub show_dataset_sample: i64,
    /// Rows answered together in one batch.
    #[arg(long, default_value_t = 4)]
    pub eval_batch_size: usize,
    /// List the model types and exit.
    #[arg(long)]
    pub list_models: bool,
}
