//! The layers every part of llava-rs shares, and LoRA with PEFT's semantics and file format.
//!
//! - [`Linear`]: the linear layer of every projection (decoder, vision tower, projector). It
//!   holds the base weight in PyTorch's `[out, in]` layout and, once an adapter is attached, the
//!   factors A `[r, in]` and B `[out, r]`: `y = x·Wᵀ + b + s·B(A(dropout(x)))`, with
//!   `s = alpha/r` (or `alpha/√r` with rslora). It runs under autodiff; `merge` folds the
//!   adapter into the weight.
//! - [`RmsNorm`], [`LayerNorm`]: the norms, with transformers' f32 statistics.
//! - [`lora`]: PEFT's `adapter_config.json` ([`LoraConfig`]) with its module-matching rules, and
//!   adapter directories read from disk and attached ([`PeftAdapter`]) or written
//!   ([`lora::save_adapter`]).

mod error;
mod layer_norm;
mod linear;
pub mod lora;
mod quant;
mod rms_norm;

pub use error::LoraError;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, LinearConfig, LoraFactors};
pub use lora::{LoraConfig, PeftAdapter, PeftFactors, TargetModules};
pub use quant::{GROUP as QUANT_GROUP, QuantMethod};
pub use rms_norm::RmsNorm;

/// Result type of this crate.
pub type Result<T, E = LoraError> = std::result::Result<T, E>;
