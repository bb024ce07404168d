//! The vision tower's configuration: HF `CLIPVisionConfig` / `SiglipVisionConfig` keys, with
//! each family's defaults for keys a hub `vision_config` leaves out (spec §2, §5.2).

use serde::Deserialize;

/// Which transformer the tower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TowerKind {
    /// OpenAI CLIP ViT: class token, pre-layernorm, patch conv without bias.
    Clip,
    /// SigLIP: no class token, no pre-layernorm, patch conv with bias.
    Siglip,
}

/// The tower's activation in its MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x·σ(1.702·x)` (CLIP).
    QuickGelu,
    /// tanh-approximated GELU (SigLIP's `gelu_pytorch_tanh`).
    GeluTanh,
    /// erf GELU.
    Gelu,
}

/// Geometry and widths of a ViT tower.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// CLIP or SigLIP.
    pub kind: TowerKind,
    /// Width of the tokens.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Encoder layers present in the checkpoint.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input side in pixels (the tile).
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// MLP activation.
    pub activation: Activation,
}

#[derive(Deserialize)]
struct Raw {
    model_type: Option<String>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
}

/// A `vision_config` that cannot be read (the message names the key); the caller adds the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VisionConfigError(pub String);

impl VisionConfig {
    /// `openai/clip-vit-large-patch14-336`, the tower of every LLaVA-1.6 checkpoint.
    pub fn clip_vit_large_336() -> Self {
        Self {
            kind: TowerKind::Clip,
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            image_size: 336,
            patch_size: 14,
            layer_norm_eps: 1e-5,
            activation: Activation::QuickGelu,
        }
    }

    /// `google/siglip-so400m-patch14-384` as published (27 layers; LLaVA drops the last).
    pub fn siglip_so400m_384() -> Self {
        Self {
            kind: TowerKind::Siglip,
            hidden_size: 1152,
            intermediate_size: 4304,
            num_hidden_layers: 27,
            num_attention_heads: 16,
            image_size: 384,
            patch_size: 14,
            layer_norm_eps: 1e-6,
            activation: Activation::GeluTanh,
        }
    }

    /// Parses a `vision_config` object (or a tower's own `config.json`, whose vision part may sit
    /// under `vision_config`). `kind_hint` decides when `model_type` is absent.
    pub fn from_json(
        value: &serde_json::Value,
        kind_hint: Option<TowerKind>,
    ) -> Result<Self, VisionConfigError> {
        let value = match value.get("vision_config") {
            Some(inner) if inner.is_object() => inner,
            _ => value,
        };
        let raw: Raw =
            serde_json::from_value(value.clone()).map_err(|e| VisionConfigError(e.to_string()))?;
        let kind = match raw.model_type.as_deref() {
            Some("clip_vision_model" | "clip") => TowerKind::Clip,
            Some("siglip_vision_model" | "siglip") => TowerKind::Siglip,
            Some(other) => {
                return Err(VisionConfigError(format!(
                    "unsupported vision model_type {other:?}"
                )));
            }
            None => kind_hint
                .ok_or_else(|| VisionConfigError("vision config has no model_type".into()))?,
        };
        // transformers' class defaults, used when the hub file omits a key.
        let (hidden, inter, layers, heads, image, patch, eps, act) = match kind {
            TowerKind::Clip => (768, 3072, 12, 12, 224, 32, 1e-5, "quick_gelu"),
            TowerKind::Siglip => (768, 3072, 12, 12, 224, 16, 1e-6, "gelu_pytorch_tanh"),
        };
        let act = raw.hidden_act.as_deref().unwrap_or(act);
        let activation = match act {
            "quick_gelu" => Activation::QuickGelu,
            "gelu_pytorch_tanh" | "gelu_new" => Activation::GeluTanh,
            "gelu" => Activation::Gelu,
            other => {
                return Err(VisionConfigError(format!(
                    "unsupported vision hidden_act {other:?}"
                )));
            }
        };
        let config = Self {
            kind,
            hidden_size: raw.hidden_size.unwrap_or(hidden),
            intermediate_size: raw.intermediate_size.unwrap_or(inter),
            num_hidden_layers: raw.num_hidden_layers.unwrap_or(layers),
            num_attention_heads: raw.num_attention_heads.unwrap_or(heads),
            image_size: raw.image_size.unwrap_or(image),
            patch_size: raw.patch_size.unwrap_or(patch),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(eps),
            activation,
        };
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(VisionConfigError(format!(
                "vision hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }
        // 384 / 14 is not whole for SigLIP: the stride-14 convolution ignores the last pixels.
        if config.patch_size == 0 || config.image_size < config.patch_size {
            return Err(VisionConfigError(format!(
                "vision patch_size {} does not fit image_size {}",
                config.patch_size, config.image_size
            )));
        }
        Ok(config)
    }

    /// Patches per side (24 for CLIP-336, 27 for SigLIP-384, whose last 6 pixels no patch reads).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens the embeddings produce per image (patches, plus the class token for CLIP).
    pub fn positions(&self) -> usize {
        self.grid() * self.grid() + usize::from(self.kind == TowerKind::Clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llava_hf_vision_config_fills_clip_defaults() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                "model_type": "clip_vision_model", "num_attention_heads": 16,
                "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768}"#,
        )
        .unwrap();
        assert_eq!(
            VisionConfig::from_json(&v, None).unwrap(),
            VisionConfig::clip_vit_large_336()
        );
        let bad = serde_json::json!({"model_type": "clip_vision_model", "hidden_size": 10, "num_attention_heads": 3});
        assert!(
            VisionConfig::from_json(&bad, None)
                .unwrap_err()
                .0
                .contains("num_attention_heads")
        );
    }
}
