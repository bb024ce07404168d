//! LoRA for llava-rs, with PEFT's semantics and file format.
//!
//! - [`LoraLinear`]: the linear layer every decoder projection uses. It holds the base weight in
//!   PyTorch's `[out, in]` layout and, once an adapter is attached, the factors A `[r, in]` and
//!   B `[out, r]`: `y = x·Wᵀ + b + s·B(A(dropout(x)))`, with `s = alpha/r` (or `alpha/√r` with
//!   rslora). It runs under autodiff; `merge` folds the adapter into the weight.
//! - [`LoraConfig`]: PEFT's `adapter_config.json`, with its module-matching rules.
//! - [`PeftAdapter`]: a PEFT adapter directory read from disk and attached to the layers it names.

mod adapter;
mod config;
mod error;
mod linear;

pub use adapter::{PeftAdapter, PeftFactors};
pub use config::{LoraConfig, TargetModules};
pub use error::LoraError;
pub use linear::{LoraFactors, LoraLinear, LoraLinearConfig};

/// Result type of this crate.
pub type Result<T, E = LoraError> = std::result::Result<T, E>;
