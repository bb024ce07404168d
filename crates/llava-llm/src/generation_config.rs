use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sampling::SamplingParams;
use crate::{LlmError, Result, TokenIds};

fn one() -> f64 {
    1.0
}
fn fifty() -> usize {
    50
}

/// transformers' `GenerationConfig` (the keys of `generation_config.json`), with transformers'
/// defaults: greedy, temperature 1, **top-k 50**, top-p 1, no repetition penalty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// New tokens to generate.
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
    /// Total length (prompt included), used when `max_new_tokens` is unset; transformers'
    /// default is 20.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Sample instead of taking the argmax.
    #[serde(default)]
    pub do_sample: bool,
    /// Softmax temperature (sampling only).
    #[serde(default = "one")]
    pub temperature: f64,
    /// Keep the k most likely tokens (sampling only; 0 disables).
    #[serde(default = "fifty")]
    pub top_k: usize,
    /// Nucleus mass (sampling only).
    #[serde(default = "one")]
    pub top_p: f64,
    /// > 1 discourages tokens already in the sequence (prompt included).
    #[serde(default = "one")]
    pub repetition_penalty: f64,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// Padding id for finished rows.
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
    /// Seed of the sampler's random stream (not a transformers key: there the global torch
    /// seed plays this part). `None`: the caller's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Every other key, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

impl GenerationConfig {
    /// Reads `generation_config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| {
            LlmError::File(llava_checkpoint::FileError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        serde_json::from_str(&text).map_err(|e| {
            LlmError::File(llava_checkpoint::FileError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        })
    }

    /// The checkpoint's `generation_config.json` if it has one, else the defaults.
    pub fn from_model_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("generation_config.json");
        if path.is_file() {
            Self::from_file(path)
        } else {
            Ok(Self::default())
        }
    }

    /// The logits-processing settings.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            do_sample: self.do_sample,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
        }
    }

    /// New tokens to generate for a prompt of `prompt_len` tokens.
    pub fn new_tokens(&self, prompt_len: usize) -> usize {
        self.max_new_tokens
            .unwrap_or_else(|| self.max_length.unwrap_or(20).saturating_sub(prompt_len))
    }

    /// End-of-sequence ids.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }
}
