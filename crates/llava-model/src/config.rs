//! `config.json` of both checkpoint layouts (spec §4, §5.2), normalised once:
//! - llava-hf (`model_type` `llava_next` / `llava_onevision`): `text_config`, `vision_config`,
//!   `image_grid_pinpoints` as (height, width), `image_token_index`;
//! - original LLaVA / lmms-lab (`LlavaMistralForCausalLM`, `LlavaLlamaForCausalLM`,
//!   `LlavaQwenForCausalLM`): the decoder's keys at the top level beside flat `mm_*` keys, the
//!   tower named by `mm_vision_tower`, pinpoints as (width, height).

use std::path::{Path, PathBuf};

use burn::tensor::DType;
use llava_llm::TextConfig;
use llava_vision::anyres::LLAVA_NEXT_PINPOINTS;
use llava_vision::preprocess::{CLIP_MEAN, CLIP_STD};
use llava_vision::{
    AnyresConfig, Convention, FeatureSelect, Processor, ProcessorConfig, TowerKind, VisionConfig,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{LlavaError, Result};

/// Which key layout and geometry conventions the checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// transformers' `LlavaNextForConditionalGeneration` / `LlavaOnevision…` files.
    LlavaHf,
    /// The original LLaVA code base's files.
    Original,
}

/// Everything the composed model needs, whatever the layout.
#[derive(Debug, Clone)]
pub struct LlavaConfig {
    /// Where the configuration came from.
    pub origin: PathBuf,
    /// Key layout and geometry convention.
    pub layout: Layout,
    /// The decoder.
    pub text: TextConfig,
    /// The vision tower.
    pub vision: VisionConfig,
    /// Which hidden state and tokens feed the projector.
    pub select: FeatureSelect,
    /// Image preprocessing (geometry in the layout's convention, the tower's mean/std).
    pub processor: ProcessorConfig,
    /// The placeholder id a llava-hf prompt repeats once per feature row.
    pub image_token_index: Option<u32>,
    /// Original layout: `mm_vision_tower` (a hub id or a directory), where the tower's weights
    /// come from when the checkpoint does not carry them.
    pub vision_tower_source: Option<String>,
    /// Original layout: `tokenizer_model_max_length`, the context the model was trained with.
    pub tokenizer_model_max_length: Option<usize>,
    /// The dtype the weights were saved in (`torch_dtype`, or transformers 5's `dtype`).
    pub torch_dtype: Option<DType>,
}

impl LlavaConfig {
    /// The image preprocessing of this checkpoint: each image tiled (anyres), except in a
    /// llava-hf OneVision checkpoint given several images, where transformers pads each to a
    /// square and takes one tile of it (spec §1.12); the original code tiles every image.
    pub fn image_processor(&self) -> Processor {
        let several_single =
            self.layout == Layout::LlavaHf && self.processor.anyres.max_tiles.is_some();
        Processor::new(self.processor.clone(), several_single)
    }

    /// The context length the model was trained for: `tokenizer_model_max_length` (original
    /// layout), else the decoder's `max_position_embeddings` (spec README, decision 3).
    pub fn context_length(&self) -> Option<usize> {
        self.tokenizer_model_max_length
            .or(self.text.max_position_embeddings)
    }

    /// Reads `dir/config.json`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            LlavaError::File(llava_checkpoint::FileError::Io {
                path: path.clone(),
                source,
            })
        })?;
        Self::from_json(&text, &path)
    }

    /// Parses configuration text; `path` names it in errors and anchors relative tower paths.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| config_error(path, e.to_string()))?;
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        match model_type {
            "llava_next" | "llava_onevision" => Self::llava_hf(typed(value, path)?, path),
            _ => {
                let file: OriginalFile = typed(value.clone(), path)?;
                match file.family() {
                    Some(family) => Self::original(file, family, value, path),
                    None => Err(LlavaError::File(llava_checkpoint::FileError::Unsupported {
                        path: path.to_path_buf(),
                        what: format!(
                            "model_type {model_type:?} (expected llava_next, llava_onevision or an original LLaVA config)"
                        ),
                    })),
                }
            }
        }
    }

    fn llava_hf(file: HfFile, path: &Path) -> Result<Self> {
        let onevision = file.model_type == "llava_onevision";
        let mut text = file
            .text_config
            .ok_or_else(|| config_error(path, "missing field `text_config`".into()))?;
        if text.get("model_type").is_none() {
            text["model_type"] = Value::from("llama"); // LlavaNextConfig's default text model
        }
        let text = TextConfig::from_json(&text.to_string(), path)?;
        let vision_value = file
            .vision_config
            .ok_or_else(|| config_error(path, "missing field `vision_config`".into()))?;
        let hint = if onevision {
            TowerKind::Siglip
        } else {
            TowerKind::Clip
        };
        let vision = VisionConfig::from_json(&vision_value, Some(hint))
            .map_err(|m| config_error(path, format!("vision_config: {m}")))?;
        let layer = feature_layer(
            file.vision_feature_layer,
            if onevision { -1 } else { -2 },
            path,
        )?;
        let strategy = file
            .vision_feature_select_strategy
            .as_deref()
            .unwrap_or(if onevision { "full" } else { "default" });
        let drop_cls = match strategy {
            "default" => true,
            "full" => false,
            other => {
                return Err(unsupported(
                    path,
                    format!("vision_feature_select_strategy {other:?}"),
                ));
            }
        };
        let act = file.projector_hidden_act.as_deref().unwrap_or("gelu");
        if act != "gelu" {
            return Err(unsupported(path, format!("projector_hidden_act {act:?}")));
        }
        if file.multimodal_projector_bias == Some(false) {
            return Err(unsupported(path, "multimodal_projector_bias false".into()));
        }
        let pinpoints = match &file.image_grid_pinpoints {
            Some(p) => p.resolve(vision.image_size as u32, path)?,
            None if onevision => AnyresConfig::onevision(Convention::Transformers).pinpoints,
            None => LLAVA_NEXT_PINPOINTS.to_vec(),
        };
        let max_tiles = match file.vision_aspect_ratio.as_deref() {
            Some(ratio) => anyres_max(ratio, path)?,
            None if onevision => Some(9),
            None => None,
        };
        // transformers' config defaults when the key is absent.
        let image_token_index = file
            .image_token_index
            .or(file.image_token_id)
            .or(Some(if onevision { 151_646 } else { 32_000 }));
        check_layer(layer, &vision, path)?;
        check_select(&vision, drop_cls, path)?;
        Ok(Self {
            origin: path.to_path_buf(),
            layout: Layout::LlavaHf,
            processor: processor(&vision, pinpoints, max_tiles, Convention::Transformers),
            select: FeatureSelect { layer, drop_cls },
            text,
            vision,
            image_token_index,
            vision_tower_source: None,
            tokenizer_model_max_length: None,
            torch_dtype: stored_dtype(file.torch_dtype.or(file.dtype)),
        })
    }

    /// `value` is the whole file, which is also the decoder's configuration in this layout.
    fn original(file: OriginalFile, family: &str, mut value: Value, path: &Path) -> Result<Self> {
        value["model_type"] = Value::from(family);
        let text = TextConfig::from_json(&value.to_string(), path)?;
        let projector = file.mm_projector_type.as_deref().unwrap_or("linear");
        if projector != "mlp2x_gelu" {
            return Err(unsupported(
                path,
                format!("mm_projector_type {projector:?}"),
            ));
        }
        let merge = file.mm_patch_merge_type.as_deref().unwrap_or("flat");
        // `spatial_unpad_nobase`, `…_maxpool2x2` pack differently.
        if merge != "spatial_unpad" {
            return Err(unsupported(path, format!("mm_patch_merge_type {merge:?}")));
        }
        let ratio = file.image_aspect_ratio.as_deref().unwrap_or("square");
        let max_tiles = anyres_max(ratio, path)?;
        let source = file
            .mm_vision_tower
            .or(file.vision_tower)
            .ok_or_else(|| config_error(path, "missing field `mm_vision_tower`".into()))?;
        let vision = original_tower_config(&source, path)?;
        let layer = feature_layer(file.mm_vision_select_layer, -2, path)?;
        let drop_cls = match file.mm_vision_select_feature.as_deref().unwrap_or("patch") {
            "patch" => true,
            "cls_patch" | "full" => false,
            other => {
                return Err(unsupported(
                    path,
                    format!("mm_vision_select_feature {other:?}"),
                ));
            }
        };
        // LLaVA-NeXT's SigLIP tower ignores both keys: it drops the last of so400m's 27 layers
        // and returns the last hidden state, all 729 tokens (spec §2.2).
        let (layer, drop_cls) = if vision.kind == TowerKind::Siglip {
            (-1, false)
        } else {
            (layer, drop_cls)
        };
        let mut vision = vision;
        if vision.kind == TowerKind::Siglip {
            if vision.num_hidden_layers < 2 {
                return Err(config_error(
                    path,
                    "the SigLIP tower needs at least 2 layers (LLaVA drops its last)".into(),
                ));
            }
            vision.num_hidden_layers -= 1;
        }
        let pinpoints = match &file.image_grid_pinpoints {
            Some(p) => p.resolve(vision.image_size as u32, path)?,
            None => LLAVA_NEXT_PINPOINTS.to_vec(),
        };
        check_layer(layer, &vision, path)?;
        check_select(&vision, drop_cls, path)?;
        Ok(Self {
            origin: path.to_path_buf(),
            layout: Layout::Original,
            processor: processor(&vision, pinpoints, max_tiles, Convention::Original),
            select: FeatureSelect { layer, drop_cls },
            text,
            vision,
            image_token_index: None,
            vision_tower_source: Some(source),
            tokenizer_model_max_length: file.tokenizer_model_max_length,
            torch_dtype: stored_dtype(file.torch_dtype.or(file.dtype)),
        })
    }
}

/// The keys of a llava-hf `config.json` (transformers' `LlavaNextConfig`,
/// `LlavaOnevisionConfig`) read here; the decoder's and the tower's own configurations are
/// parsed by their crates.
#[derive(Debug, Deserialize)]
struct HfFile {
    model_type: String,
    text_config: Option<Value>,
    vision_config: Option<Value>,
    vision_feature_layer: Option<FeatureLayer>,
    vision_feature_select_strategy: Option<String>,
    projector_hidden_act: Option<String>,
    multimodal_projector_bias: Option<bool>,
    image_grid_pinpoints: Option<Pinpoints>,
    vision_aspect_ratio: Option<String>,
    image_token_index: Option<u32>,
    /// transformers 5's name of `image_token_index`.
    image_token_id: Option<u32>,
    torch_dtype: Option<String>,
    /// transformers 5's name of `torch_dtype`.
    dtype: Option<String>,
}

/// The multimodal keys of an original LLaVA (`LlavaMistralForCausalLM`, …) `config.json`,
/// whose decoder keys sit at the top level beside them.
#[derive(Debug, Deserialize)]
struct OriginalFile {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
    mm_projector_type: Option<String>,
    mm_patch_merge_type: Option<String>,
    image_aspect_ratio: Option<String>,
    mm_vision_tower: Option<String>,
    /// An older name of `mm_vision_tower`.
    vision_tower: Option<String>,
    mm_vision_select_layer: Option<FeatureLayer>,
    mm_vision_select_feature: Option<String>,
    image_grid_pinpoints: Option<Pinpoints>,
    tokenizer_model_max_length: Option<usize>,
    torch_dtype: Option<String>,
    dtype: Option<String>,
}

impl OriginalFile {
    /// The decoder family, from the architecture (or model_type).
    fn family(&self) -> Option<&'static str> {
        let arch = self
            .architectures
            .as_ref()
            .and_then(|a| a.first())
            .map_or("", String::as_str);
        match (arch, self.model_type.as_deref().unwrap_or("")) {
            (a, _) if a.starts_with("LlavaMistral") => Some("mistral"),
            (a, _) if a.starts_with("LlavaQwen") => Some("qwen2"),
            (a, _) if a.starts_with("LlavaLlama") => Some("llama"),
            (_, "llava_mistral") => Some("mistral"),
            (_, "llava_qwen") => Some("qwen2"),
            (_, "llava" | "llava_llama") => Some("llama"),
            _ => None,
        }
    }
}

/// A vision feature layer: one index, or several (not supported).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FeatureLayer {
    One(i64),
    Many(Vec<i64>),
}

/// `image_grid_pinpoints`: `[a, b]` pairs in pixels, or LLaVA-NeXT's `"(1x1),...,(6x6)"` grid
/// string (multiples of the tile).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Pinpoints {
    Pixels(Vec<[u32; 2]>),
    Grid(String),
}

impl Pinpoints {
    fn resolve(&self, tile: u32, path: &Path) -> Result<Vec<[u32; 2]>> {
        match self {
            Self::Pixels(pairs) if !pairs.is_empty() => {
                // The tiles are cut whole from the chosen resolution (anyres), so a side of 0 or
                // one that is not a multiple of the tile has no grid.
                if let Some((i, pair)) = pairs
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.iter().any(|&side| side == 0 || side % tile != 0))
                {
                    return Err(config_error(
                        path,
                        format!(
                            "image_grid_pinpoints[{i}] = {pair:?}: every side must be a positive \
                             multiple of the vision tower's image_size ({tile} px)"
                        ),
                    ));
                }
                Ok(pairs.clone())
            }
            Self::Pixels(_) => Err(config_error(path, "image_grid_pinpoints is empty".into())),
            Self::Grid(text) => grid_pinpoints(text, tile).ok_or_else(|| {
                config_error(path, format!("image_grid_pinpoints: cannot read {text:?}"))
            }),
        }
    }
}

/// The file's serde struct, errors naming the key (`vision_config.hidden_size: invalid type …`).
fn typed<T: serde::de::DeserializeOwned>(value: Value, path: &Path) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| config_error(path, e.to_string()))
}

/// `torch_dtype` (or `dtype`) as stored, where it names a float dtype.
fn stored_dtype(name: Option<String>) -> Option<DType> {
    match name.as_deref()? {
        "bfloat16" => Some(DType::BF16),
        "float16" => Some(DType::F16),
        "float32" => Some(DType::F32),
        _ => None,
    }
}

/// The tower of an original checkpoint: a directory (relative to the checkpoint, or absolute)
/// holding a `config.json`, or one of the stock towers by hub id.
fn original_tower_config(source: &str, path: &Path) -> Result<VisionConfig> {
    let base = path.parent().unwrap_or(Path::new("."));
    let dir = base.join(source);
    let file = dir.join("config.json");
    if file.is_file() {
        let text = std::fs::read_to_string(&file).map_err(|source| {
            LlavaError::File(llava_checkpoint::FileError::Io {
                path: file.clone(),
                source,
            })
        })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| config_error(&file, e.to_string()))?;
        return VisionConfig::from_json(&value, None)
            .map_err(|m| config_error(&file, m.to_string()));
    }
    if source.contains("clip-vit-large-patch14-336") {
        Ok(VisionConfig::clip_vit_large_336())
    } else if source.contains("siglip-so400m-patch14-384") {
        Ok(VisionConfig::siglip_so400m_384())
    } else {
        Err(unsupported(
            path,
            format!(
                "mm_vision_tower {source:?}: neither a directory with config.json nor a known tower"
            ),
        ))
    }
}

fn processor(
    vision: &VisionConfig,
    pinpoints: Vec<[u32; 2]>,
    max_tiles: Option<u32>,
    convention: Convention,
) -> ProcessorConfig {
    let (mean, std) = match vision.kind {
        TowerKind::Clip => (CLIP_MEAN, CLIP_STD),
        TowerKind::Siglip => ([0.5; 3], [0.5; 3]),
    };
    ProcessorConfig {
        anyres: AnyresConfig {
            pinpoints,
            tile: vision.image_size as u32,
            patch: vision.patch_size as u32,
            max_tiles,
            convention,
        },
        mean,
        std,
    }
}

/// Packing needs exactly the grid's patch tokens: CLIP without its class token, SigLIP whole.
fn check_select(vision: &VisionConfig, drop_cls: bool, path: &Path) -> Result<()> {
    match (vision.kind, drop_cls) {
        (TowerKind::Clip, true) | (TowerKind::Siglip, false) => Ok(()),
        (TowerKind::Clip, false) => Err(unsupported(
            path,
            "feature selection that keeps CLIP's class token (\"full\" / \"cls_patch\")".into(),
        )),
        (TowerKind::Siglip, true) => Err(unsupported(
            path,
            "feature selection \"default\" with a SigLIP tower (it has no class token)".into(),
        )),
    }
}

/// A hidden-state index must name one of the tower's `layers + 1` states.
fn check_layer(layer: i64, vision: &VisionConfig, path: &Path) -> Result<()> {
    let states = vision.num_hidden_layers as i64 + 1;
    if (-states..states).contains(&layer) {
        Ok(())
    } else {
        Err(config_error(
            path,
            format!("vision feature layer {layer} is outside the tower's {states} hidden states"),
        ))
    }
}

fn feature_layer(value: Option<FeatureLayer>, default: i64, path: &Path) -> Result<i64> {
    match value {
        None => Ok(default),
        Some(FeatureLayer::One(layer)) => Ok(layer),
        Some(FeatureLayer::Many(layers)) => Err(unsupported(
            path,
            format!("vision feature layer {layers:?} (only a single layer is supported)"),
        )),
    }
}

/// `"anyres"` → no limit, `"anyres_max_9"` → 9; anything else is not anyres.
fn anyres_max(ratio: &str, path: &Path) -> Result<Option<u32>> {
    if ratio == "anyres" {
        return Ok(None);
    }
    ratio
        .strip_prefix("anyres_max_")
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            unsupported(
                path,
                format!("image_aspect_ratio {ratio:?} (anyres and anyres_max_N are)"),
            )
        })
}

/// LLaVA-NeXT's grid string: `"(1x1),...,(6x6)"` (every grid between the two corners) or a
/// list of cells, in multiples of the tile.
fn grid_pinpoints(text: &str, tile: u32) -> Option<Vec<[u32; 2]>> {
    let parse = |cell: &str| -> Option<[u32; 2]> {
        let cell = cell.trim().trim_start_matches('(').trim_end_matches(')');
        let (a, b) = cell.split_once('x')?;
        Some([a.trim().parse().ok()?, b.trim().parse().ok()?])
    };
    let cells: Vec<&str> = text.split(',').map(str::trim).collect();
    let grids: Vec<[u32; 2]> = if cells.len() == 3 && cells[1] == "..." {
        let (from, to) = (parse(cells[0])?, parse(cells[2])?);
        (from[0]..=to[0])
            .flat_map(|i| (from[1]..=to[1]).map(move |j| [i, j]))
            .collect()
    } else {
        cells.iter().map(|c| parse(c)).collect::<Option<_>>()?
    };
    if grids.iter().flatten().any(|&n| n == 0) {
        return None;
    }
    Some(grids.iter().map(|[a, b]| [a * tile, b * tile]).collect())
}

fn config_error(path: &Path, message: String) -> LlavaError {
    LlavaError::File(llava_checkpoint::FileError::Config {
        path: path.to_path_buf(),
        message,
    })
}

fn unsupported(path: &Path, what: String) -> LlavaError {
    LlavaError::File(llava_checkpoint::FileError::Unsupported {
        path: path.to_path_buf(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(layout: &str) -> (String, PathBuf) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/llava/clip-mistral")
            .join(layout);
        let path = dir.join("config.json");
        (std::fs::read_to_string(&path).unwrap(), path)
    }

    #[test]
    fn both_layouts_read_with_their_stored_dtype() {
        for layout in ["hf", "original"] {
            let (text, path) = fixture(layout);
            let config = LlavaConfig::from_json(&text, &path).unwrap();
            assert_eq!(config.text.model_type, "mistral", "{layout}");
            let stored: Value = serde_json::from_str(&text).unwrap();
            let name = stored.get("torch_dtype").or(stored.get("dtype"));
            assert_eq!(
                config.torch_dtype,
                stored_dtype(name.and_then(Value::as_str).map(String::from)),
                "{layout}"
            );
        }
    }

    #[test]
    fn a_key_of_the_wrong_type_is_named_in_the_error() {
        let (text, path) = fixture("hf");
        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["image_token_index"] = Value::from("many");
        let e = LlavaConfig::from_json(&value.to_string(), &path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("image_token_index") && e.contains("config.json"),
            "{e}"
        );
        let (text, path) = fixture("original");
        let mut value: Value = serde_json::from_str(&text).unwrap();
        value["mm_vision_select_layer"] = Value::from(vec![-2, -1]);
        let e = LlavaConfig::from_json(&value.to_string(), &path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only a single layer"), "{e}");
    }

    #[test]
    fn grid_strings_expand_to_pixel_pinpoints() {
        assert_eq!(
            grid_pinpoints("(1x1),...,(2x3)", 336).unwrap(),
            vec![
                [336, 336],
                [336, 672],
                [336, 1008],
                [672, 336],
                [672, 672],
                [672, 1008]
            ]
        );
        assert_eq!(
            grid_pinpoints("(1x2), (3x1)", 384).unwrap(),
            vec![[384, 768], [1152, 384]]
        );
        assert!(grid_pinpoints("(1x)", 336).is_none());
    }
}
