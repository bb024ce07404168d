use std::path::PathBuf;

/// Errors of the composed model, its loading and inference. Each names the file, key or input
/// it is about.
#[derive(Debug, thiserror::Error)]
pub enum LlavaError {
    /// A configuration file cannot be read, is malformed or asks for what is not implemented
    /// (the file and the field named).
    #[error(transparent)]
    File(#[from] llava_checkpoint::FileError),
    /// The checkpoint has tensors that no module takes (named), so it does not match the
    /// configuration.
    #[error("{dir}: tensors not used by the model: {names:?}")]
    UnusedTensors {
        /// The checkpoint.
        dir: PathBuf,
        /// The keys (as stored).
        names: Vec<String>,
    },
    /// A file of a hub repository could not be found or downloaded.
    #[error("{repo}: cannot get {file}: {message}")]
    Hub {
        /// The repository id.
        repo: String,
        /// The file.
        file: String,
        /// Why, and what to do.
        message: String,
    },
    /// No model type of that name.
    #[error("unknown model type {name:?}; known: {known}")]
    UnknownModelType {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// The prompt does not leave room for any new token in the model's context.
    #[error(
        "the prompt is {prompt} tokens long (images expanded) and the model's context is {context} tokens: shorten the query, the history or the images"
    )]
    PromptTooLong {
        /// Prompt tokens.
        prompt: usize,
        /// The context length.
        context: usize,
    },
    /// A prompt and its images do not fit together (placeholder counts, sizes).
    #[error("{0}")]
    Input(String),
    /// Weights could not be loaded.
    #[error(transparent)]
    Checkpoint(#[from] llava_checkpoint::CheckpointError),
    /// The decoder rejected its configuration or input.
    #[error(transparent)]
    Llm(#[from] llava_llm::LlmError),
    /// The template or tokenizer failed.
    #[error(transparent)]
    Template(#[from] llava_template::TemplateError),
    /// An image could not be read.
    #[error(transparent)]
    Vision(#[from] llava_vision::VisionError),
    /// A LoRA adapter could not be read or does not fit the model.
    #[error(transparent)]
    Lora(#[from] llava_nn::LoraError),
    /// A kernel option (`LLAVA_*` or `ModelKwargs::kernel_options`) is unknown or invalid.
    #[error(transparent)]
    KernelOptions(#[from] llava_ops::options::OptionsError),
}

/// Result type of the facade.
pub type Result<T, E = LlavaError> = std::result::Result<T, E>;
