//! One decoder for the LLMs inside LLaVA-NeXT: Mistral, Yi (a Llama), Llama 3 and
//! Qwen1.5/Qwen2, configured from the checkpoint's `config.json`.
//!
//! The families differ only by configuration (q/k/v biases, RoPE θ, GQA ratio, sliding window,
//! tied embeddings), so there is one code path ([`CausalLm`]), numerically equal to
//! transformers' `LlamaForCausalLM` / `MistralForCausalLM` / `Qwen2ForCausalLM`.
//!
//! - [`TextConfig`]: `config.json` (or a LLaVA `text_config`), validated.
//! - [`CausalLm`]: embeddings → decoder layers → norm → `lm_head`, with a preallocated
//!   [`KvCache`]; `forward` takes token ids or input embeddings (LLaVA splices image features
//!   into the embeddings).
//! - [`CausalLm::from_pretrained`]: weights through burn-store, any LLaVA key layout.
//! - [`sampling`]: transformers' logits processors in transformers' order, greedy and seeded
//!   sampling, on batched logits.
//! - [`Generator`]: prefill then one-token steps, batched with left padding.

mod attention;
mod checkpoint_keys;
mod config;
mod decode_graph;
mod decoder_layer;
mod device_map;
mod error;
mod generate;
mod generation_config;
mod kv_cache;
mod layerwise;
mod loader;
mod mask;
mod mlp;
mod model;
mod rope;
pub mod sampling;

pub use attention::Attention;
pub use checkpoint_keys::decoder_key_map;
pub use config::{Family, TextConfig, TokenIds};
pub use decoder_layer::DecoderLayer;
pub use device_map::{DeviceMap, balanced_slots, parse_layer_ranges, weighted_slots};
pub use error::LlmError;
pub use generate::{GenerateOptions, Generator, Prefill, generate};
pub use generation_config::GenerationConfig;
pub use kv_cache::KvCache;
pub use layerwise::LayerTables;
pub use llava_nn::RmsNorm;
pub use loader::LoadOptions;
pub use mlp::Mlp;
pub use model::{CausalLm, DecoderInput, DecoderModel, ForwardOptions, LogitsFor};
pub use rope::RotaryEmbedding;

/// Result type of this crate.
pub type Result<T, E = LlmError> = std::result::Result<T, E>;
