//! The decoder's `config.json`, as transformers writes it for Llama, Mistral and Qwen2 (both
//! the 4.x keys, `rope_theta` / `rope_scaling`, and the 5.x `rope_parameters`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{LlmError, Result};

/// A token id field that transformers allows to be one id or a list (`eos_token_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(i64),
    /// Several ids.
    Many(Vec<i64>),
}

impl TokenIds {
    /// The ids, in order; negative ids (never valid tokens) are dropped.
    pub fn to_vec(&self) -> Vec<u32> {
        let ids: Vec<i64> = match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        };
        ids.into_iter()
            .filter_map(|id| u32::try_from(id).ok())
            .collect()
    }
}

/// transformers ≥ 5 writes RoPE settings here instead of `rope_theta` / `rope_scaling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeParameters {
    /// θ.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// `"default"` for plain RoPE.
    #[serde(default)]
    pub rope_type: Option<String>,
}

/// The decoder family: which transformers class the configuration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM` (Llama 3, Yi / Nous-Hermes-2-Yi).
    Llama,
    /// `MistralForCausalLM`.
    Mistral,
    /// `Qwen2ForCausalLM` (Qwen1.5 and Qwen2).
    Qwen2,
}

/// A decoder configuration. Field names are the `config.json` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// `llama`, `mistral` or `qwen2`.
    pub model_type: String,
    /// Rows of the embedding and of `lm_head`.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE θ (transformers 4.x).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE settings (transformers 5.x).
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// RoPE scaling (transformers 4.x); only absent / `"default"` is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// The context the model was trained for.
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Llama: biases on q/k/v/o. Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Llama: biases on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Attention window (Mistral; Qwen2 when `use_sliding_window`). `null` disables it; an
    /// absent key takes transformers' default of 4096, as `MistralConfig` / `Qwen2Config` do.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub sliding_window: Option<Option<usize>>,
    /// Qwen2: whether `sliding_window` is used at all.
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    /// Qwen2: layers below this index use full attention.
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    /// Per-layer attention kind (`full_attention` / `sliding_attention`), when written.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Whether `lm_head` reuses the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Must be `silu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Beginning-of-sequence id(s).
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// Deserializes a present key (even `null`) as `Some(value)`, so that an absent key (`None`)
/// can take a family default.
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// transformers' default `sliding_window` for Mistral and Qwen2 when the key is absent.
const DEFAULT_SLIDING_WINDOW: usize = 4096;
/// transformers' default `max_window_layers` for Qwen2.
const DEFAULT_MAX_WINDOW_LAYERS: usize = 28;

fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

impl TextConfig {
    /// Reads and validates a `config.json`; errors name the file and the field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| {
            LlmError::File(llava_checkpoint::FileError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        Self::from_json(&text, path)
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: impl Into<PathBuf>) -> Result<Self> {
        let origin = origin.into();
        let config: Self = serde_json::from_str(text).map_err(|e| {
            LlmError::File(llava_checkpoint::FileError::Config {
                path: origin.clone(),
                message: e.to_string(),
            })
        })?;
        config.validate(&origin)?;
        Ok(config)
    }

    /// Checks the values this decoder relies on.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |message: String| {
            LlmError::File(llava_checkpoint::FileError::Config {
                path: origin.to_path_buf(),
                message,
            })
        };
        let unsupported = |what: String| {
            LlmError::File(llava_checkpoint::FileError::Unsupported {
                path: origin.to_path_buf(),
                what,
            })
        };
        self.family()
            .ok_or_else(|| unsupported(format!("model_type {:?}", self.model_type)))?;
        if self.hidden_act != "silu" {
            return Err(unsupported(format!("hidden_act {:?}", self.hidden_act)));
        }
        let rope_type = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_type.clone())
            .or_else(|| {
                self.rope_scaling.as_ref().and_then(|s| {
                    s.get("rope_type")
                        .or_else(|| s.get("type"))
                        .and_then(|t| t.as_str().map(str::to_string))
                })
            });
        if let Some(kind) = rope_type.filter(|t| t != "default") {
            return Err(unsupported(format!("RoPE scaling {kind:?}")));
        }
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
        ] {
            if value == 0 {
                return Err(bad(format!("{name} must be positive")));
            }
        }
        let kv = self.num_kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(bad(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({kv})",
                self.num_attention_heads
            )));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size ({}) is not a multiple of num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim ({}) must be even for RoPE",
                self.head_dim()
            )));
        }
        if let Some(types) = &self.layer_types
            && types.len() != self.num_hidden_layers
        {
            return Err(bad(format!(
                "layer_types has {} entries for {} layers",
                types.len(),
                self.num_hidden_layers
            )));
        }
        Ok(())
    }

    /// The transformers class this configuration belongs to.
    pub fn family(&self) -> Option<Family> {
        match self.model_type.as_str() {
            "llama" => Some(Family::Llama),
            "mistral" => Some(Family::Mistral),
            "qwen2" => Some(Family::Qwen2),
            _ => None,
        }
    }

    /// Key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// RoPE θ (default 10000, as transformers).
    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// Whether q/k/v have biases.
    pub fn qkv_bias(&self) -> bool {
        self.family() == Some(Family::Qwen2) || self.attention_bias.unwrap_or(false)
    }

    /// Whether `o_proj` has a bias (Llama with `attention_bias` only).
    pub fn o_bias(&self) -> bool {
        self.family() == Some(Family::Llama) && self.attention_bias.unwrap_or(false)
    }

    /// The attention window of layer `layer`, if it uses one, as transformers 5 decides it:
    /// Mistral windows every layer (it ignores `layer_types`); Qwen2 only with
    /// `use_sliding_window`, on the layers `layer_types` marks `sliding_attention` or else from
    /// `max_window_layers` on; Llama never.
    pub fn sliding_window(&self, layer: usize) -> Option<usize> {
        let window = self.sliding_window.unwrap_or(Some(DEFAULT_SLIDING_WINDOW));
        match self.family()? {
            Family::Mistral => window,
            Family::Qwen2 => {
                if !self.use_sliding_window.unwrap_or(false) {
                    return None;
                }
                let sliding = match &self.layer_types {
                    Some(types) => {
                        types.get(layer).map(String::as_str) == Some("sliding_attention")
                    }
                    None => layer >= self.max_window_layers.unwrap_or(DEFAULT_MAX_WINDOW_LAYERS),
                };
                if sliding { window } else { None }
            }
            Family::Llama => None,
        }
    }

    /// End-of-sequence ids.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text_config of llava-hf/llava-v1.6-mistral-7b-hf with Mistral's defaults filled in,
    /// in transformers 4.x style.
    const MISTRAL_7B: &str = r#"{
        "_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2", "architectures": ["MistralForCausalLM"],
        "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768,
        "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
        "sliding_window": null, "torch_dtype": "bfloat16", "vocab_size": 32064}"#;

    /// llava-next-72b-hf's text_config (spec §5.2), verbatim keys.
    const QWEN_72B: &str = r#"{
        "_name_or_path": "Qwen/Qwen1.5-72B-Chat", "architectures": ["Qwen2ForCausalLM"],
        "bos_token_id": 151643, "eos_token_id": 151645, "hidden_size": 8192,
        "intermediate_size": 24576, "max_position_embeddings": 32768, "max_window_layers": 70,
        "model_type": "qwen2", "num_attention_heads": 64, "num_hidden_layers": 80,
        "num_key_value_heads": 64, "rope_theta": 1000000.0, "sliding_window": 32768,
        "use_sliding_window": false, "vocab_size": 152064}"#;

    #[test]
    fn full_size_configs_parse_with_their_derived_values() {
        let m = TextConfig::from_json(MISTRAL_7B, "mistral.json").unwrap();
        assert_eq!(m.family(), Some(Family::Mistral));
        assert_eq!(
            (m.head_dim(), m.num_kv_heads(), m.rope_theta()),
            (128, 8, 1e6)
        );
        assert!(!m.qkv_bias());
        assert_eq!(m.sliding_window(0), None);

        let q = TextConfig::from_json(QWEN_72B, "qwen.json").unwrap();
        assert!(q.qkv_bias() && !q.o_bias());
        assert_eq!(q.num_kv_heads(), 64);
        assert_eq!(q.sliding_window(79), None, "use_sliding_window is false");
        assert_eq!(q.eos_token_ids(), vec![151645]);
    }

    #[test]
    fn transformers_5_rope_parameters_are_read() {
        let text = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "eos_token_id": [7, 9]}"#;
        let c = TextConfig::from_json(text, "c.json").unwrap();
        assert_eq!(c.rope_theta(), 500000.0);
        assert_eq!(c.eos_token_ids(), vec![7, 9]);
    }

    #[test]
    fn qwen_windows_follow_max_window_layers() {
        let text = QWEN_72B.replace(
            r#""use_sliding_window": false"#,
            r#""use_sliding_window": true"#,
        );
        let q = TextConfig::from_json(&text, "q.json").unwrap();
        assert_eq!(q.sliding_window(69), None);
        assert_eq!(q.sliding_window(70), Some(32768));
    }

    #[test]
    fn sliding_window_defaults_follow_transformers() {
        // Mistral: an absent key means 4096, `null` means none.
        let absent = MISTRAL_7B.replace(r#""sliding_window": null,"#, "");
        let m = TextConfig::from_json(&absent, "m.json").unwrap();
        assert_eq!(m.sliding_window(0), Some(4096));
        let m = TextConfig::from_json(MISTRAL_7B, "m.json").unwrap();
        assert_eq!(m.sliding_window(31), None);
        // Qwen2: layer_types only matter with use_sliding_window.
        let types: Vec<&str> = (0..80)
            .map(|i| {
                if i < 70 {
                    "full_attention"
                } else {
                    "sliding_attention"
                }
            })
            .collect();
        let with_types = QWEN_72B.replace(
            r#""vocab_size": 152064}"#,
            &format!(
                r#""vocab_size": 152064, "layer_types": {}}}"#,
                serde_json::to_string(&types).unwrap()
            ),
        );
        let q = TextConfig::from_json(&with_types, "q.json").unwrap();
        assert_eq!(q.sliding_window(75), None);
        let q = TextConfig::from_json(
            &with_types.replace(
                r#""use_sliding_window": false"#,
                r#""use_sliding_window": true"#,
            ),
            "q.json",
        )
        .unwrap();
        assert_eq!(
            (q.sliding_window(69), q.sliding_window(75)),
            (None, Some(32768))
        );
        // Llama has no window even if a key is present.
        let llama = MISTRAL_7B
            .replace(r#""model_type": "mistral""#, r#""model_type": "llama""#)
            .replace("null", "16");
        assert_eq!(
            TextConfig::from_json(&llama, "l.json")
                .unwrap()
                .sliding_window(0),
            None
        );
    }

    #[test]
    fn a_missing_field_is_named_with_the_file() {
        let text = MISTRAL_7B.replace(r#""hidden_size": 4096,"#, "");
        let err = TextConfig::from_json(&text, "/ckpt/config.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/ckpt/config.json") && err.contains("hidden_size"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_settings_are_named() {
        for (from, to, what) in [
            (
                r#""model_type": "mistral""#,
                r#""model_type": "gemma""#,
                "gemma",
            ),
            (
                r#""rope_theta": 1000000.0"#,
                r#""rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#,
                "llama3",
            ),
            (
                r#""num_key_value_heads": 8"#,
                r#""num_key_value_heads": 5"#,
                "num_key_value_heads",
            ),
        ] {
            let text = MISTRAL_7B.replace(from, to);
            let err = TextConfig::from_json(&text, "c.json")
                .unwrap_err()
                .to_string();
            assert!(err.contains(what), "{err}");
        }
    }
}
