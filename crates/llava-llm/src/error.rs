/// Errors of the decoder crate. Each names the file, field or value involved.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A configuration file cannot be read, is malformed or asks for what is not implemented
    /// (the file and the field named).
    #[error(transparent)]
    File(#[from] llava_checkpoint::FileError),
    /// The checkpoint does not fit the configuration.
    #[error(transparent)]
    Checkpoint(#[from] llava_checkpoint::CheckpointError),
    /// A LoRA adapter could not be read or applied.
    #[error(transparent)]
    Lora(#[from] llava_nn::LoraError),
    /// The prompt and the requested generation do not fit the model's context.
    #[error(
        "the prompt has {prompt} tokens and {new} new tokens were asked for, but the model's \
         context is {context} tokens"
    )]
    ContextTooLong {
        /// Prompt tokens (longest row).
        prompt: usize,
        /// Requested new tokens.
        new: usize,
        /// `max_position_embeddings`.
        context: usize,
    },
    /// A forward pass would write past the end of the KV cache.
    #[error(
        "the KV cache holds {capacity} positions; {used} are used and {incoming} more were given"
    )]
    CacheFull {
        /// Cache capacity.
        capacity: usize,
        /// Positions already written.
        used: usize,
        /// Positions in this forward.
        incoming: usize,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} entries")]
    TokenOutOfRange {
        /// The id.
        id: i64,
        /// `vocab_size`.
        vocab: usize,
    },
    /// Inputs disagree with each other or with the model.
    #[error("invalid input: {0}")]
    Input(String),
    /// Generation settings are invalid (as transformers would reject them).
    #[error("invalid generation setting: {0}")]
    Generation(String),
    /// The device failed (a read-back or a kernel error).
    #[error("device error: {0}")]
    Device(String),
}
