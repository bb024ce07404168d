//! `llava`: run LLaVA-NeXT models as ms-swift's `swift` does (`llava infer …`).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "llava",
    about = "LLaVA-NeXT in Rust: ms-swift's commands",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: llava_cli::Command,
}

fn main() -> anyhow::Result<()> {
    llava_cli::init_logging();
    llava_cli::run(Cli::parse().command)
}
