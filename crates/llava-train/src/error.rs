//! Errors of fine-tuning. Each names the file, flag or row it is about.

use std::path::PathBuf;

/// Errors of `llava-train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A flag or combination of flags that cannot work.
    #[error("{0}")]
    Args(String),
    /// Reading, checking or encoding the dataset failed.
    #[error(transparent)]
    Data(#[from] llava_data::DataError),
    /// The model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] llava_model::LlavaError),
    /// The decoder failed.
    #[error(transparent)]
    Llm(#[from] llava_llm::LlmError),
    /// The template failed.
    #[error(transparent)]
    Template(#[from] llava_template::TemplateError),
    /// An adapter could not be read or written.
    #[error(transparent)]
    Lora(#[from] llava_nn::LoraError),
    /// A checkpoint file could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] llava_checkpoint::CheckpointError),
    /// A config file could not be read.
    #[error(transparent)]
    File(#[from] llava_checkpoint::FileError),
    /// An image failed after the check (changed on disk since?).
    #[error("{origin}: {source}")]
    Image {
        /// The row.
        origin: String,
        /// The error.
        source: llava_vision::VisionError,
    },
    /// A checkpoint to resume from that does not fit this run.
    #[error("cannot resume from {path}: {message}")]
    Resume {
        /// The checkpoint directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Writing the run's files failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A micro-batch with no trained token (its mean loss would be NaN).
    #[error(
        "a batch has no trained token (every label is -100): check --max-length and the responses"
    )]
    NoTrainedTokens,
    /// A gradient norm that is not finite: the step is not applied.
    #[error(
        "the gradient norm of step {step} is {norm}: training stopped, the last checkpoint is intact"
    )]
    NonFinite {
        /// The optimizer step.
        step: usize,
        /// The norm.
        norm: f64,
    },
    /// A state that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;

/// An I/O error naming `path`.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
