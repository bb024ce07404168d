//! `cargo xtask fixtures`: runs the Python scripts that build the tiny checkpoints and their
//! transformers reference outputs: decoders, then the vision references (images, patches,
//! token table), then the LLaVA models (which read the images), the chat-template references,
//! and the `inference` references on the LLaVA models.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Python interpreter with torch, transformers, peft and tokenizers.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Only these fixtures: decoder families (mistral, llama3, yi, qwen2), `vision`, LLaVA
    /// models (clip-mistral, clip-qwen2, siglip-qwen2), `templates`, `inference` or `training`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let check = Command::new(&args.python)
        .args([
            "-c",
            "import torch, transformers, peft, tokenizers, safetensors, PIL, numpy",
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
    const DECODERS: [&str; 4] = ["mistral", "llama3", "yi", "qwen2"];
    const MODELS: [&str; 3] = ["clip-mistral", "clip-qwen2", "siglip-qwen2"];
    let wanted = |names: &[&str]| -> Option<Vec<String>> {
        let picked: Vec<String> = args
            .only
            .iter()
            .filter(|o| names.contains(&o.as_str()))
            .cloned()
            .collect();
        (args.only.is_empty() || !picked.is_empty()).then_some(picked)
    };
    let fixtures = root.join("fixtures");
    if let Some(only) = wanted(&DECODERS) {
        run_script(
            &args.python,
            &root.join("scripts/fixtures/make_decoder_fixtures.py"),
            &fixtures,
            &only,
        )?;
    }
    if args.only.is_empty() || args.only.iter().any(|o| o == "vision") {
        run_script(
            &args.python,
            &root.join("scripts/fixtures/make_vision_fixtures.py"),
            &fixtures.join("vision"),
            &[],
        )?;
    }
    if let Some(only) = wanted(&MODELS) {
        run_script(
            &args.python,
            &root.join("scripts/fixtures/make_llava_fixtures.py"),
            &fixtures,
            &only,
        )?;
    }
    if args.only.is_empty() || args.only.iter().any(|o| o == "templates") {
        run_script(
            &args.python,
            &root.join("scripts/fixtures/make_template_fixtures.py"),
            &fixtures,
            &[],
        )?;
    }
    // After the LLaVA models: it adds the chat tokens to their tokenizers and generates with
    // templated prompts.
    if args.only.is_empty() || args.only.iter().any(|o| o == "inference") {
        run_script(
            &args.python,
            &root.join("scripts/fixtures/make_inference_fixtures.py"),
            &fixtures,
            &[],
        )?;
    }
    // Last: it trains from the LLaVA models and their tokenizers, and runs `llava sft`.
    if args.only.is_empty() || args.only.iter().any(|o| o == "training") {
        run_script(
            &args.python,
            &root.join("scripts/fixtures/make_training_fixtures.py"),
            &fixtures,
            &[],
        )?;
    }
    Ok(())
}

fn run_script(
    python: &str,
    script: &std::path::Path,
    out: &std::path::Path,
    only: &[String],
) -> Result<()> {
    let mut cmd = Command::new(python);
    cmd.arg(script).arg("--out").arg(out);
    if !only.is_empty() {
        cmd.arg("--only").args(only);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    Ok(())
}
