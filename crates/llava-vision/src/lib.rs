//! The image side of LLaVA-NeXT.
//!
//! - [`anyres`]: the geometry as pure functions (best canvas, resize, padding, tiles,
//!   unpadding, token counts) in both conventions ([`Convention`]).
//! - [`image_io`]: decoding to RGB (EXIF orientation, alpha, limits before allocation).
//! - [`resample`]: Pillow's bicubic, bit for bit.
//! - [`preprocess`]: base image + tiles, rescaled and normalised, tiles in parallel;
//!   [`Processor`]: one checkpoint's rule for a prompt's images, no model needed.
//! - [`tower`]: the CLIP and SigLIP vision transformers (burn modules).

pub mod anyres;
mod error;
pub mod image_io;
mod jpeg;
pub mod preprocess;
mod processor;
pub mod resample;
mod source;
pub mod tower;

pub use anyres::{AnyresConfig, Convention, ImageLayout, Size};
pub use error::VisionError;
pub use image_io::{AlphaMode, DecodeOptions, RgbImage, decode_image, open_image};
pub use preprocess::{ProcessedImage, ProcessorConfig, preprocess, preprocess_single_patch};
pub use processor::Processor;
pub use source::{FetchOptions, ImageInput, fetch_url};
pub use tower::{FeatureSelect, TowerKind, VisionConfig, VisionConfigError, VisionTower};
