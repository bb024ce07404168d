//! PEFT's `adapter_config.json` for LoRA, and its module-matching rules (PEFT
//! `check_target_module_exists`, `get_pattern_key`).

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{LoraError, Result};

/// `target_modules` / `exclude_modules`: a list of module names (matched as the full name or a
/// `.`-separated suffix) or one regex that must match the full module name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Names matched exactly or as a suffix after a `.`.
    List(Vec<String>),
    /// A regex matched against the whole module name.
    Regex(String),
}

impl TargetModules {
    fn matches(&self, key: &str) -> bool {
        match self {
            TargetModules::List(names) => names
                .iter()
                .any(|n| key == n || key.ends_with(&format!(".{n}"))),
            TargetModules::Regex(pattern) => full_match(pattern, key),
        }
    }
}

/// `layers_to_transform`: one layer index or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerIndices {
    /// A single layer.
    One(usize),
    /// Several layers.
    Many(Vec<usize>),
}

/// `layers_pattern`: one name or several (e.g. `"layers"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single name.
    One(String),
    /// Several names.
    Many(Vec<String>),
}

fn default_peft_type() -> String {
    "LORA".into()
}
fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_bias() -> String {
    "none".into()
}

/// A PEFT LoRA configuration as stored in `adapter_config.json`. Keys this crate does not use
/// are kept in `extra`, so a configuration read and written again loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Always `"LORA"` here.
    #[serde(default = "default_peft_type")]
    pub peft_type: String,
    /// e.g. `"CAUSAL_LM"`.
    #[serde(default)]
    pub task_type: Option<String>,
    /// The base model the adapter was trained on.
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    /// Default rank.
    #[serde(default = "default_r")]
    pub r: usize,
    /// Default alpha.
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    /// Dropout on the LoRA branch's input during training.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Which modules get LoRA.
    #[serde(default)]
    pub target_modules: Option<TargetModules>,
    /// Modules excluded even when targeted.
    #[serde(default)]
    pub exclude_modules: Option<TargetModules>,
    /// Whether weights are stored `[in, out]` (Conv1D); never for the models here.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// `"none"`, `"all"` or `"lora_only"`.
    #[serde(default = "default_bias")]
    pub bias: String,
    /// Scale by `alpha/√r` instead of `alpha/r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// DoRA (not supported).
    #[serde(default)]
    pub use_dora: bool,
    /// A bias on B (not supported).
    #[serde(default)]
    pub lora_bias: bool,
    /// Modules trained in full and saved whole (not supported yet).
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    /// Restrict LoRA to these layer indices.
    #[serde(default)]
    pub layers_to_transform: Option<LayerIndices>,
    /// The module-list name(s) whose index `layers_to_transform` filters.
    #[serde(default)]
    pub layers_pattern: Option<OneOrMany>,
    /// Per-module rank overrides (keys are regexes matched against the module-name suffix).
    #[serde(default)]
    pub rank_pattern: Option<BTreeMap<String, usize>>,
    /// Per-module alpha overrides (same matching as `rank_pattern`).
    #[serde(default)]
    pub alpha_pattern: Option<BTreeMap<String, f64>>,
    /// How factors were initialised (`true`, `false`, `"gaussian"`, ...).
    #[serde(default)]
    pub init_lora_weights: serde_json::Value,
    /// Set by PEFT on save.
    #[serde(default)]
    pub inference_mode: bool,
    /// Every other key, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn full_match(pattern: &str, key: &str) -> bool {
    Regex::new(&format!("^(?:{pattern})$"))
        .map(|re| re.is_match(key))
        .unwrap_or(false)
}

/// PEFT's `get_pattern_key`: the first pattern key `k` with `^(.*\.)?(k)$` matching `module`.
fn pattern_key<'a>(keys: impl Iterator<Item = &'a String>, module: &str) -> Option<&'a String> {
    keys.into_iter()
        .find(|k| full_match(&format!(r"(?:.*\.)?(?:{k})"), module))
}

impl LoraConfig {
    /// Reads `adapter_config.json`; errors name the file and the offending field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            LoraError::File(llava_checkpoint::FileError::Io {
                path: path.to_path_buf(),
                source,
            })
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| {
            LoraError::File(llava_checkpoint::FileError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        })?;
        config.check_supported(path)?;
        Ok(config)
    }

    /// Rejects PEFT features whose semantics this crate does not implement, so an adapter is
    /// never silently applied wrong.
    pub fn check_supported(&self, path: &Path) -> Result<()> {
        let unsupported = |feature: String| LoraError::Unsupported {
            path: path.to_path_buf(),
            feature,
        };
        if self.peft_type != "LORA" {
            return Err(unsupported(format!("peft_type {:?}", self.peft_type)));
        }
        if self.use_dora {
            return Err(unsupported("use_dora (DoRA)".into()));
        }
        if self.fan_in_fan_out {
            return Err(unsupported("fan_in_fan_out".into()));
        }
        if self.bias != "none" {
            return Err(unsupported(format!("bias {:?}", self.bias)));
        }
        if self.lora_bias {
            return Err(unsupported("lora_bias".into()));
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(unsupported("modules_to_save".into()));
        }
        if self.r == 0 {
            return Err(LoraError::File(llava_checkpoint::FileError::Config {
                path: path.to_path_buf(),
                message: "r must be positive".into(),
            }));
        }
        Ok(())
    }

    /// Whether PEFT would wrap the module named `key` (its dotted path in the model).
    pub fn matches(&self, key: &str) -> bool {
        if self
            .exclude_modules
            .as_ref()
            .is_some_and(|e| e.matches(key))
        {
            return false;
        }
        let Some(targets) = &self.target_modules else {
            return false;
        };
        if !targets.matches(key) {
            return false;
        }
        if let (TargetModules::List(_), Some(layers)) = (targets, &self.layers_to_transform) {
            let wanted: Vec<usize> = match layers {
                LayerIndices::One(i) => vec![*i],
                LayerIndices::Many(v) => v.clone(),
            };
            if wanted.is_empty() {
                return true;
            }
            return self
                .layer_index(key)
                .is_some_and(|idx| wanted.contains(&idx));
        }
        true
    }

    /// The layer index PEFT reads from a module name for `layers_to_transform`.
    fn layer_index(&self, key: &str) -> Option<usize> {
        let patterns: Vec<String> = match &self.layers_pattern {
            None => vec![],
            Some(OneOrMany::One(p)) if p.is_empty() => vec![],
            Some(OneOrMany::One(p)) => vec![p.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        let regexes: Vec<String> = if patterns.is_empty() {
            vec![r"^.*?\.[^.]*\.(\d+)\.".into()]
        } else {
            patterns
                .iter()
                .map(|p| format!(r"^(?:.*?\.)?(?:{p})\.(\d+)\."))
                .collect()
        };
        regexes.iter().find_map(|r| {
            Regex::new(r)
                .ok()?
                .captures(key)?
                .get(1)?
                .as_str()
                .parse()
                .ok()
        })
    }

    /// Rank and alpha for the module named `key`, after `rank_pattern` / `alpha_pattern`.
    pub fn rank_alpha(&self, key: &str) -> (usize, f64) {
        let r = self
            .rank_pattern
            .as_ref()
            .and_then(|p| pattern_key(p.keys(), key).map(|k| p[k]))
            .unwrap_or(self.r);
        let alpha = self
            .alpha_pattern
            .as_ref()
            .and_then(|p| pattern_key(p.keys(), key).map(|k| p[k]))
            .unwrap_or(self.lora_alpha);
        (r, alpha)
    }

    /// The scale applied to `B·A`: `alpha/r`, or `alpha/√r` with rslora.
    pub fn scaling(&self, r: usize, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> LoraConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn list_targets_match_full_names_and_dotted_suffixes() {
        let c = config(r#"{"target_modules": ["q_proj", "v_proj"]}"#);
        assert!(c.matches("model.layers.0.self_attn.q_proj"));
        assert!(c.matches("q_proj"));
        assert!(!c.matches("model.layers.0.self_attn.qq_proj"));
        assert!(!c.matches("model.layers.0.self_attn.k_proj"));
        // PEFT's pitfall (spec §7.1): suffix matching also reaches the vision tower.
        assert!(c.matches("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"));
    }

    #[test]
    fn regex_targets_must_match_the_whole_name() {
        let c =
            config(r#"{"target_modules": "^(model\\.layers\\.\\d+\\.self_attn\\.(q|k)_proj)$"}"#);
        assert!(c.matches("model.layers.11.self_attn.k_proj"));
        assert!(!c.matches("vision_tower.model.layers.1.self_attn.k_proj"));
        let c = config(r#"{"target_modules": ".*language_model.*\\.(q_proj|v_proj)"}"#);
        assert!(c.matches("model.language_model.layers.0.self_attn.q_proj"));
        assert!(!c.matches("model.vision_tower.layers.0.self_attn.q_proj"));
    }

    #[test]
    fn exclusions_and_layer_filters() {
        let c = config(
            r#"{"target_modules": ["q_proj"], "exclude_modules": ["vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"],
                "layers_to_transform": [1, 3], "layers_pattern": "layers"}"#,
        );
        assert!(c.matches("model.layers.1.self_attn.q_proj"));
        assert!(c.matches("model.layers.3.self_attn.q_proj"));
        assert!(!c.matches("model.layers.2.self_attn.q_proj"));
        assert!(!c.matches("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj"));
    }

    #[test]
    fn patterns_override_rank_and_alpha() {
        let c = config(
            r#"{"r": 8, "lora_alpha": 16, "rank_pattern": {"down_proj": 2, "layers\\.1\\.self_attn\\.q_proj": 4},
                "alpha_pattern": {"down_proj": 4}}"#,
        );
        assert_eq!(c.rank_alpha("model.layers.0.mlp.down_proj"), (2, 4.0));
        assert_eq!(c.rank_alpha("model.layers.1.self_attn.q_proj"), (4, 16.0));
        assert_eq!(c.rank_alpha("model.layers.0.self_attn.q_proj"), (8, 16.0));
        assert_eq!(c.scaling(8, 16.0), 2.0);
        let rs = config(r#"{"use_rslora": true}"#);
        assert_eq!(rs.scaling(16, 8.0), 2.0);
    }

    #[test]
    fn unsupported_features_are_named() {
        let p = Path::new("adapter_config.json");
        for (json, feature) in [
            (r#"{"use_dora": true}"#, "use_dora"),
            (r#"{"bias": "all"}"#, "bias"),
            (r#"{"modules_to_save": ["lm_head"]}"#, "modules_to_save"),
            (r#"{"peft_type": "IA3"}"#, "IA3"),
        ] {
            let err = config(json).check_supported(p).unwrap_err().to_string();
            assert!(
                err.contains(feature) && err.contains("adapter_config.json"),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let c = config(r#"{"r": 4, "peft_version": "0.21.2", "kasa_config": null}"#);
        let back: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(back["peft_version"], "0.21.2");
        assert_eq!(back["r"], 4);
    }
}
