//! Chat templates of ms-swift's LLaVA model types: a conversation (system text, history,
//! query, images per round) → token ids with image placeholders, and the label mask that
//! training uses; plus the streaming detokenizer that turns generated ids into text deltas.
//!
//! - [`Tokenizer`]: `tokenizer.json` (+ `tokenizer_config.json` for special-token roles).
//! - [`TemplateSpec`], [`TEMPLATES`]: the templates as data, by ms-swift's names.
//! - [`get_template`] / [`Template::encode`]: per-segment tokenisation as ms-swift does it.
//! - [`StreamDecoder`]: deltas that never split a UTF-8 character or show a stop word.

#![warn(missing_docs)]

mod conversation;
mod convert;
mod encode;
mod error;
mod spec;
mod stream;
mod template;
mod tokenizer;

pub use conversation::{Conversation, IMAGE_TAG, Round};
pub use encode::{Encoded, IGNORE_INDEX, IMAGE_SENTINEL};
pub use error::{Result, TemplateError};
pub use spec::{ImagePlaceholder, TEMPLATE_ALIASES, TEMPLATES, TemplateSpec, find_template};
pub use stream::{StreamDecoder, StreamStep};
pub use template::{Template, get_template};
pub use tokenizer::Tokenizer;
