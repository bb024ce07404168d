use std::path::PathBuf;

/// Errors of the template crate. Each names the file, template or conversation part involved.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A tokenizer file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A tokenizer file is malformed.
    #[error("{path}: {message}")]
    TokenizerFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer failed on a text or id sequence.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// No template of that name.
    #[error("unknown template type {name:?}; known: {known}")]
    UnknownTemplate {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// The conversation does not fit the template (system on a template without one,
    /// image tags that do not match the images, …).
    #[error("template {template}: {message}")]
    Conversation {
        /// The template's name.
        template: String,
        /// What is wrong.
        message: String,
    },
    /// The encoded prompt is longer than allowed.
    #[error(
        "the prompt is {len} tokens long (an image counts as one), more than max_length {max_length}"
    )]
    TooLong {
        /// Tokens of the prompt.
        len: usize,
        /// The limit.
        max_length: usize,
    },
}

/// Result type of this crate.
pub type Result<T, E = TemplateError> = std::result::Result<T, E>;
