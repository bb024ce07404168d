//! The composed LLaVA-NeXT and how to get one.
//!
//! - [`LlavaNext`]: the vision tower ([`llava_vision`]), the `mlp2x_gelu` projector and the
//!   packing of image features ([`Projector`], [`pack_image`]), the decoder ([`llava_llm`]);
//!   prompts with image placeholders spliced with image features ([`Prompt`], [`PreparedBatch`]).
//! - [`LlavaConfig`]: `config.json` of both checkpoint layouts (llava-hf and original LLaVA).
//! - Loading: [`llava_key_map`] normalises both layouts' keys once; [`LlavaNext::load`] rejects
//!   tensors no part takes.
//! - [`MODELS`]: ms-swift's model types; [`resolve_model_dir`]: a local directory or a hub id
//!   through the hf-hub cache; [`get_model_tokenizer`].
#![warn(missing_docs)]

mod config;
mod device_map;
mod error;
pub mod hub;
mod keys;
mod model;
mod pack;
mod pretrained;
mod projector;
#[cfg(feature = "random-weights")]
mod random_weights;
mod registry;

pub use config::{Layout, LlavaConfig};
pub use device_map::{DeviceMapSpec, describe as describe_device_map};
pub use error::{LlavaError, Result};
pub use hub::{HubOptions, resolve_model_dir};
pub use keys::llava_key_map;
pub use llava_nn::QuantMethod;
pub use model::{IMAGE_SENTINEL, LlavaNext, Padding, PreparedBatch, Prompt};
pub use pack::{bilinear_weights, pack_image, pack_images};
pub use pretrained::{Model, ModelKwargs, get_model_tokenizer, read_sft_args};
pub use projector::Projector;
#[cfg(feature = "random-weights")]
pub use random_weights::randomize;
pub use registry::{MODELS, ModelInfo, get_default_template_type};
