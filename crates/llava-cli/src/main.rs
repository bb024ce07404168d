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

fn main() -> std::process::ExitCode {
    llava_cli::init_logging();
    llava_cli::exit_code(llava_cli::run(Cli::parse().command))
}
