//! PEFT LoRA: the configuration file, and adapter directories read and written.

mod config;
mod read;
mod write;

pub use config::{LayerIndices, LoraConfig, OneOrMany, TargetModules};
pub use read::{CONFIG_FILE, PeftAdapter, PeftFactors, WEIGHTS_FILE};
pub use write::save_adapter;
