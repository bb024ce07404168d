//! CLIP and SigLIP vision towers (spec §2) with transformers' module names, so a checkpoint
//! loads after a prefix rename: `vision_model.embeddings.*`, `vision_model.encoder.layers.*`.

mod config;
mod encoder;

use burn::module::{Initializer, Module, Param};
use burn::tensor::{Device, Tensor};
use llava_nn::Linear;

pub use config::{Activation, TowerKind, VisionConfig, VisionConfigError};
pub use encoder::{Encoder, EncoderLayer, Mlp, SelfAttention};
pub use llava_nn::LayerNorm;

/// The patch convolution (kernel = stride = patch), stored as PyTorch's `[out, 3, p, p]`.
#[derive(Module, Debug)]
pub struct PatchEmbedding {
    /// `[hidden, channels, patch, patch]`.
    pub weight: Param<Tensor<4>>,
    /// `[hidden]` (SigLIP only).
    pub bias: Option<Param<Tensor<1>>>,
}

/// Learned position table.
#[derive(Module, Debug)]
pub struct PositionEmbedding {
    /// `[positions, hidden]`.
    pub weight: Param<Tensor<2>>,
}

/// Patches, class token (CLIP) and positions.
#[derive(Module, Debug)]
pub struct Embeddings {
    /// Patch projection.
    pub patch_embedding: PatchEmbedding,
    /// CLIP's `[hidden]` class token; SigLIP has none.
    pub class_embedding: Option<Param<Tensor<1>>>,
    /// Positions.
    pub position_embedding: PositionEmbedding,
}

/// `vision_model` of a CLIP or SigLIP checkpoint.
#[derive(Module, Debug)]
pub struct VisionTransformer {
    /// Embeddings.
    pub embeddings: Embeddings,
    /// CLIP's `pre_layrnorm` (upstream spelling); SigLIP has none.
    pub pre_layrnorm: Option<LayerNorm>,
    /// Encoder layers.
    pub encoder: Encoder,
    /// Applied by the reference only to pooled outputs: loaded, never used for LLaVA features.
    pub post_layernorm: LayerNorm,
}

/// Which hidden state feeds the projector and which of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSelect {
    /// Python-style index into the hidden states (`-2` for CLIP LLaVA, `-1` for OneVision):
    /// entry 0 is the embeddings (after CLIP's pre-layernorm), entry `i` the output of layer `i−1`.
    pub layer: i64,
    /// Drop the class token (`"default"` / `"patch"`); SigLIP has none to drop.
    pub drop_cls: bool,
}

/// A vision tower: `vision_model` plus how features are taken from it.
#[derive(Module, Debug)]
pub struct VisionTower {
    /// The transformer.
    pub vision_model: VisionTransformer,
    #[module(skip)]
    config: VisionConfig,
}

impl VisionTower {
    /// A tower for `config` with lazy parameters (a checkpoint fills them).
    pub fn new(config: &VisionConfig, device: &Device) -> Self {
        let d = config.hidden_size;
        let p = config.patch_size;
        let clip = config.kind == TowerKind::Clip;
        let embeddings = Embeddings {
            patch_embedding: PatchEmbedding {
                weight: Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                }
                .init([d, 3, p, p], device),
                bias: (!clip).then(|| Initializer::Zeros.init([d], device)),
            },
            class_embedding: clip.then(|| {
                Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                }
                .init([d], device)
            }),
            position_embedding: PositionEmbedding {
                weight: Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                }
                .init([config.positions(), d], device),
            },
        };
        let norm = || LayerNorm::new(d, config.layer_norm_eps, device);
        Self {
            vision_model: VisionTransformer {
                embeddings,
                pre_layrnorm: clip.then(norm),
                encoder: Encoder {
                    layers: (0..config.num_hidden_layers)
                        .map(|_| EncoderLayer::new(config, device))
                        .collect(),
                },
                post_layernorm: norm(),
            },
            config: config.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Layers run for a feature layer index; `None` if the index is out of range.
    pub fn layers_for(&self, layer: i64) -> Option<usize> {
        let states = self.config.num_hidden_layers as i64 + 1;
        let index = if layer < 0 { states + layer } else { layer };
        (0..states).contains(&index).then_some(index as usize)
    }

    /// Pixel values `[n, 3, S, S]` → features `[n, tokens, hidden]` of the selected hidden state
    /// (`tokens` = patches, plus the class token unless dropped). Layers after the selected one
    /// are not run: they cannot change the result.
    pub fn forward(&self, pixels: Tensor<4>, select: FeatureSelect) -> Tensor<3> {
        let run = self
            .layers_for(select.layer)
            .unwrap_or(self.config.num_hidden_layers);
        let mut h = self.embed(pixels);
        if let Some(norm) = &self.vision_model.pre_layrnorm {
            h = norm.forward(h);
        }
        for layer in &self.vision_model.encoder.layers[..run] {
            h = layer.forward(h);
        }
        if select.drop_cls && self.config.kind == TowerKind::Clip {
            let [n, t, d] = h.dims();
            h = h.slice([0..n, 1..t, 0..d]);
        }
        h
    }

    /// `[n, 3, S, S]` → `[n, positions, hidden]`: the stride-p convolution as one matmul over
    /// flattened patches (channel, y, x order, as the conv weight flattens).
    fn embed(&self, pixels: Tensor<4>) -> Tensor<3> {
        let [n, c, s, _] = pixels.dims();
        let p = self.config.patch_size;
        let g = s / p;
        let d = self.config.hidden_size;
        let emb = &self.vision_model.embeddings;
        let dtype = emb.patch_embedding.weight.val().dtype();
        // A convolution without padding never reads the pixels past the last whole patch.
        let pixels = if g * p == s {
            pixels
        } else {
            pixels.slice([0..n, 0..c, 0..g * p, 0..g * p])
        };
        let patches = pixels
            .cast(dtype)
            .reshape([n, c, g, p, g, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([n, g * g, c * p * p]);
        let weight = emb.patch_embedding.weight.val().reshape([d, c * p * p]);
        let bias = emb.patch_embedding.bias.as_ref().map(|b| b.val());
        // Not `linear`: PyTorch's CUDA convolution adds its bias after the rounded output
        // (SigLIP's patch embedding), as `patch_linear` does.
        let mut h = llava_ops::patch_linear(patches, weight, bias);
        if let Some(cls) = &emb.class_embedding {
            let cls = cls.val().reshape([1, 1, d]).expand([n, 1, d]);
            h = Tensor::cat(vec![cls, h], 1);
        }
        let t = h.dims()[1];
        let pos = emb
            .position_embedding
            .weight
            .val()
            .slice([0..t, 0..d])
            .unsqueeze::<3>();
        h + pos
    }

    /// Every linear of the tower with its module path (for adapters and merging).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::new();
        for (i, layer) in self.vision_model.encoder.layers.iter_mut().enumerate() {
            let prefix = format!("vision_model.encoder.layers.{i}");
            let a = &mut layer.self_attn;
            out.push((format!("{prefix}.self_attn.q_proj"), &mut a.q_proj));
            out.push((format!("{prefix}.self_attn.k_proj"), &mut a.k_proj));
            out.push((format!("{prefix}.self_attn.v_proj"), &mut a.v_proj));
            out.push((format!("{prefix}.self_attn.out_proj"), &mut a.out_proj));
            out.push((format!("{prefix}.mlp.fc1"), &mut layer.mlp.fc1));
            out.push((format!("{prefix}.mlp.fc2"), &mut layer.mlp.fc2));
        }
        out
    }
}
