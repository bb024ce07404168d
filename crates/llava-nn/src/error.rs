use std::path::PathBuf;

/// Errors from reading or applying LoRA adapters. Each names the file and key involved.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    /// A configuration file cannot be read or is malformed (the file and the field named).
    #[error(transparent)]
    File(#[from] llava_checkpoint::FileError),
    /// The adapter uses a PEFT feature this crate does not implement.
    #[error("{path}: {feature} is not supported")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The feature, as PEFT names it.
        feature: String,
    },
    /// `adapter_model.safetensors` is unreadable or inconsistent with the config.
    #[error("{path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The adapter names a module the model does not have, or one of the wrong size.
    #[error("adapter {path}: {message}")]
    Mismatch {
        /// The adapter file.
        path: PathBuf,
        /// What does not fit, naming the module.
        message: String,
    },
    /// A checkpoint-level error (header checks).
    #[error(transparent)]
    Checkpoint(#[from] llava_checkpoint::CheckpointError),
}
