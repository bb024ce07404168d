//! Safetensors checkpoints as Hugging Face writes them, loaded into burn modules.
//!
//! - [`CheckpointFiles`] finds the weight files of a checkpoint directory: a single
//!   `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
//! - Every file's header is checked before use ([`files::check_header`]), so a truncated or
//!   corrupt file is reported with its path instead of failing deep inside a tensor read.
//! - [`KeyMap`] renames checkpoint keys to module paths (ordered regex rules), once, here, so
//!   the layers never branch on checkpoint layout.
//! - [`load_module`] applies every shard to a module through burn-store's applier, with a
//!   progress bar, an optional dtype cast, and a report of missing, mis-shaped and unused
//!   tensors by name. Tensors are views of each file's memory map (`mapped`): no host copy
//!   before the tensor is built.

mod error;
pub mod files;
mod key_map;
mod load;
mod mapped;
mod progress;
mod save;

pub use error::{CheckpointError, FileError};
pub use files::CheckpointFiles;
pub use key_map::KeyMap;
pub use load::{LoadOptions, LoadReport, load_module};
pub use progress::Progress;
pub use save::{save_safetensors, write_atomic};

/// Result type of this crate.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;
