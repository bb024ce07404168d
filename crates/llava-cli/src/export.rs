//! `llava export --ckpt-dir X --merge-lora true`: ms-swift's `swift export` for LoRA checkpoints,
//! writing `X-merged/`, a model directory `llava infer --ckpt-dir` and transformers load.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ArgAction;

use crate::args::DeviceArg;

/// `llava export` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A LoRA checkpoint written by `llava sft`.
    #[arg(long)]
    pub ckpt_dir: PathBuf,
    /// Fold the adapter into the base weights.
    #[arg(long, action = ArgAction::Set, default_value_t = false)]
    pub merge_lora: bool,
    /// Where the merge runs.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceArg,
}

/// Merges and prints the merged directory.
pub fn run(args: Args) -> Result<()> {
    let merged = llava_train::export(&llava_train::ExportArgs {
        ckpt_dir: args.ckpt_dir.clone(),
        merge_lora: args.merge_lora,
        device: Some(args.device.device()?),
    })
    .with_context(|| format!("exporting {}", args.ckpt_dir.display()))?;
    println!("merged model: {}", merged.display());
    Ok(())
}
