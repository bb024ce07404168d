//! From vision features to the rows that replace an image's placeholder tokens:
//! - [`Projector`]: `mlp2x_gelu`, `linear_2(gelu(linear_1(x)))` with exact (erf) GELU (spec §3.1);
//! - [`pack_image`]: base features, then the tile features as one map, unpadded, downscaled
//!   (OneVision), each row followed by `image_newline` (spec §3.2). The geometry comes from
//!   [`llava_vision::ImageLayout`], the same value that counted the image's tokens.

mod pack;
mod projector;

pub use pack::{bilinear_weights, pack_image};
pub use projector::Projector;
