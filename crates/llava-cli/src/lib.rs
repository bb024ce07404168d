//! The product commands behind the `llava` binary (and `cargo xtask infer`, which forwards
//! here): `infer`, `sft` and `export`.

pub mod args;
pub mod embedded;
pub mod export;
pub mod infer;
pub mod sft;

use clap::Subcommand;

/// A `llava` command.
#[derive(Subcommand)]
pub enum Command {
    /// Chat with a LLaVA model (ms-swift's `swift infer`); `--query` answers once and exits.
    Infer(Box<infer::Args>),
    /// Fine-tune a LLaVA model (ms-swift's `swift sft`): LoRA or full, on dataset files or
    /// registered names; without a model, the embedded tiny one.
    Sft(Box<sft::Args>),
    /// Merge a LoRA checkpoint into its base model (ms-swift's `swift export --merge_lora`),
    /// writing `<ckpt>-merged/`.
    Export(export::Args),
}

/// Runs `command`. The kernel options (`LLAVA_*`) are checked first, so a bad one fails before
/// any model is loaded.
pub fn run(command: Command) -> anyhow::Result<()> {
    llava_ops::options::install(None)?;
    match command {
        Command::Infer(args) => infer::run(*args),
        Command::Sft(args) => sft::run(*args),
        Command::Export(args) => export::run(args),
    }
}

/// `err` as one line: its message, then each cause the message does not already hold (our
/// error types print their OS cause in their own message, which anyhow's `Caused by:` would
/// repeat).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

/// What a binary's `main` returns for `result`: errors printed as one line (`Error: …`) on
/// stderr, exit status 1.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `warn` (or `RUST_LOG`'s filter), in colour only on a terminal; and a
/// closed stdout (`llava infer --list-models | head -1`) ends the program quietly, as Unix tools
/// do, where Rust's default would panic in the next `println!`.
pub fn init_logging() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
