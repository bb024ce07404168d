//! `cargo xtask fixtures`: runs the Python script that builds the tiny checkpoints and their
//! transformers reference outputs.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Python interpreter with torch, transformers, peft and tokenizers.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Only these decoder families (mistral, llama3, yi, qwen2).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let script = root.join("scripts/fixtures/make_decoder_fixtures.py");
    let check = Command::new(&args.python)
        .args([
            "-c",
            "import torch, transformers, peft, tokenizers, safetensors",
        ])
        .status()
        .with_context(|| format!("cannot run {}", args.python))?;
    if !check.success() {
        bail!(
            "{} lacks torch/transformers/peft: `pip install -r {}` first",
            args.python,
            root.join("scripts/fixtures/requirements.txt").display()
        );
    }
    let mut cmd = Command::new(&args.python);
    cmd.arg(&script).arg("--out").arg(root.join("fixtures"));
    if !args.only.is_empty() {
        cmd.arg("--only").args(&args.only);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    Ok(())
}
