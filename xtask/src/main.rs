//! `cargo xtask`: the project's jobs.
//!
//! - `generate`: greedy or sampled generation from a decoder checkpoint on disk (the debugging
//!   handle for decoders alone);
//! - `fixtures`: regenerate the tiny transformers fixtures (needs Python with torch,
//!   transformers and peft);
//! - `cuda-smoke`: compare a CUDA run with the CPU on a fixture (needs `--features cuda`);
//! - `infer`, `sft`, `export`: forwards to `llava infer` (the `swift infer` REPL, or one query
//!   with `--query`), `llava sft` and `llava export` (crates/llava-cli), so the README's
//!   `cargo xtask` commands work;
//! - `bench`: first-token time, decode speed and memory on full-size shapes with random
//!   weights (the GPU benchmark; `benches/transformers_llava.py` is its transformers twin);
//! - `bench-sft`: seconds per fine-tuning step and memory on the same shapes
//!   (`benches/transformers_sft.py` is its transformers + PEFT twin);
//! - `bench-ops`, `sweep`: decode operations alone, and every candidate kernel of the CUDA
//!   route on one model's shapes (what `llava_ops::cuda` picks from).

mod bench;
#[cfg(feature = "cuda")]
mod bench_ops;
mod bench_sft;
mod cuda_smoke;
mod demo_model;
mod device;
mod fixtures;
mod generate;
#[cfg(feature = "cuda")]
mod sweep;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "llava-rs jobs", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with a LLaVA model (ms-swift's `swift infer`); `--query` answers once and exits.
    /// A forward to `llava infer` (crates/llava-cli).
    Infer(Box<llava_cli::infer::Args>),
    /// Fine-tune (ms-swift's `swift sft`). A forward to `llava sft` (crates/llava-cli).
    Sft(Box<llava_cli::sft::Args>),
    /// Merge a LoRA checkpoint (ms-swift's `swift export`). A forward to `llava export`.
    Export(llava_cli::export::Args),
    /// Render, train, evaluate and export the embedded demo model (docs/demo-model.md).
    DemoModel(demo_model::Args),
    /// Generate from a decoder checkpoint (config.json + safetensors [+ tokenizer.json]).
    Generate(generate::Args),
    /// Regenerate the committed fixtures with transformers and PEFT.
    Fixtures(fixtures::Args),
    /// Run a matmul and a decoder fixture on CUDA and compare with the CPU.
    CudaSmoke(cuda_smoke::Args),
    /// Time first token, decode and memory on a full-size shape with random weights.
    Bench(bench::Args),
    /// Time fine-tuning steps (LoRA or full) and memory on a full-size shape with random
    /// weights.
    BenchSft(bench_sft::Args),
    /// Time the decode-step operations (attention against a long cache, GEMV) on their own
    /// (CUDA builds).
    #[cfg(feature = "cuda")]
    BenchOps(bench_ops::Args),
    /// Time every candidate kernel of the CUDA route on one model's shapes (CUDA builds).
    #[cfg(feature = "cuda")]
    Sweep(sweep::Args),
}

fn main() -> std::process::ExitCode {
    llava_cli::init_logging();
    llava_cli::exit_code(run())
}

fn run() -> anyhow::Result<()> {
    llava_ops::options::install(None)?;
    match Cli::parse().command {
        Command::Infer(args) => llava_cli::run(llava_cli::Command::Infer(args)),
        Command::Sft(args) => llava_cli::run(llava_cli::Command::Sft(args)),
        Command::Export(args) => llava_cli::run(llava_cli::Command::Export(args)),
        Command::DemoModel(args) => demo_model::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Fixtures(args) => fixtures::run(args),
        Command::CudaSmoke(args) => cuda_smoke::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchSft(args) => bench_sft::run(args),
        #[cfg(feature = "cuda")]
        Command::BenchOps(args) => bench_ops::run(args),
        #[cfg(feature = "cuda")]
        Command::Sweep(args) => sweep::run(args),
    }
}
