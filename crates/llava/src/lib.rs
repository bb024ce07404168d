//! LLaVA-NeXT in Rust: the facade that composes the vision tower ([`llava_vision`]), the
//! projector ([`llava_projector`]) and the decoder ([`llava_llm`]), and loads checkpoints in
//! both layouts (llava-hf and original LLaVA).

mod config;
mod error;
mod keys;
mod model;

pub use config::{Layout, LlavaConfig};
pub use error::{LlavaError, Result};
pub use keys::llava_key_map;
pub use model::{IMAGE_SENTINEL, LlavaNext, PreparedBatch, Prompt};

/// Parameter dtype and progress bars: the decoder's options serve the whole model.
pub use llava_llm::{GenerateOptions, LoadOptions, sampling};
pub use llava_vision::{ProcessedImage, ProcessorConfig, RgbImage, open_image, preprocess};
