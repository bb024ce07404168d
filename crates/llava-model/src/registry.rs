//! ms-swift's LLaVA model types (`../shared/spec/swift-llava.md` §1.2, §1.4): hub ids,
//! checkpoint layout, default template, LoRA targets, end-of-sequence token, context length.

use std::path::Path;

use crate::config::{Layout, LlavaConfig};
use crate::{LlavaError, Result};

/// One registered model type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// ms-swift's name.
    pub model_type: &'static str,
    /// Other names that select it (ms-swift 2.1's `llava1_6-*` renames).
    pub aliases: &'static [&'static str],
    /// The Hugging Face hub repository.
    pub hf_model_id: &'static str,
    /// The ModelScope repository (for reference; files are fetched from the HF hub).
    pub ms_model_id: &'static str,
    /// Key layout and geometry convention of the weights.
    pub layout: Layout,
    /// The template `get_default_template_type` gives.
    pub template_type: &'static str,
    /// Modules LoRA wraps by default (the LLM's q/k/v, spec README decision 4).
    pub lora_target_modules: &'static [&'static str],
    /// ms-swift's override of the tokenizer's end-of-sequence token.
    pub eos_token: Option<&'static str>,
    /// The context the model was trained for, used when `config.json` states none.
    pub context_length: usize,
}

const QKV: &[&str] = &["q_proj", "k_proj", "v_proj"];

const fn info(
    model_type: &'static str,
    aliases: &'static [&'static str],
    (hf_model_id, ms_model_id): (&'static str, &'static str),
    layout: Layout,
    template_type: &'static str,
    eos_token: Option<&'static str>,
    context_length: usize,
) -> ModelInfo {
    ModelInfo {
        model_type,
        aliases,
        hf_model_id,
        ms_model_id,
        layout,
        template_type,
        lora_target_modules: QKV,
        eos_token,
        context_length,
    }
}

use Layout::{LlavaHf, Original};

/// Every registered model type.
pub const MODELS: &[ModelInfo] = &[
    // The five of ms-swift 2.0.5's LLaVA best practice (original LLaVA / lmms-lab files).
    info(
        "llava1d6-mistral-7b-instruct",
        &["llava1_6-mistral-7b-instruct"],
        (
            "liuhaotian/llava-v1.6-mistral-7b",
            "AI-ModelScope/llava-v1.6-mistral-7b",
        ),
        Original,
        "llava-mistral-instruct",
        None,
        4096,
    ),
    info(
        "llava1d6-yi-34b-instruct",
        &["llava1_6-yi-34b-instruct"],
        ("liuhaotian/llava-v1.6-34b", "AI-ModelScope/llava-v1.6-34b"),
        Original,
        "llava-yi-instruct",
        Some("<|im_end|>"),
        4096,
    ),
    info(
        "llama3-llava-next-8b",
        &[],
        (
            "lmms-lab/llama3-llava-next-8b",
            "AI-Modelscope/llama3-llava-next-8b",
        ),
        Original,
        "llama-llava-next",
        None,
        8192,
    ),
    info(
        "llava-next-72b",
        &[],
        ("lmms-lab/llava-next-72b", "AI-Modelscope/llava-next-72b"),
        Original,
        "llava-qwen-instruct",
        None,
        32768,
    ),
    info(
        "llava-next-110b",
        &[],
        ("lmms-lab/llava-next-110b", "AI-Modelscope/llava-next-110b"),
        Original,
        "llava-qwen-instruct",
        None,
        32768,
    ),
    // llava-hf conversions of the same models (transformers' layout), and OneVision.
    info(
        "llava1_6-mistral-7b-instruct-hf",
        &[],
        (
            "llava-hf/llava-v1.6-mistral-7b-hf",
            "swift/llava-v1.6-mistral-7b-hf",
        ),
        LlavaHf,
        "llava-mistral",
        None,
        32768,
    ),
    info(
        "llava1_6-yi-34b-instruct-hf",
        &[],
        ("llava-hf/llava-v1.6-34b-hf", "swift/llava-v1.6-34b-hf"),
        LlavaHf,
        "llava-yi",
        Some("<|im_end|>"),
        4096,
    ),
    info(
        "llama3-llava-next-8b-hf",
        &[],
        (
            "llava-hf/llama3-llava-next-8b-hf",
            "swift/llama3-llava-next-8b-hf",
        ),
        LlavaHf,
        "llama3-llava-next-hf",
        None,
        8192,
    ),
    info(
        "llava-next-72b-hf",
        &[],
        (
            "llava-hf/llava-next-72b-hf",
            "AI-ModelScope/llava-next-72b-hf",
        ),
        LlavaHf,
        "llava-qwen-hf",
        None,
        32768,
    ),
    info(
        "llava-next-110b-hf",
        &[],
        (
            "llava-hf/llava-next-110b-hf",
            "AI-ModelScope/llava-next-110b-hf",
        ),
        LlavaHf,
        "llava-qwen-hf",
        None,
        32768,
    ),
    info(
        "llava-onevision-qwen2-0_5b-ov",
        &[],
        (
            "llava-hf/llava-onevision-qwen2-0.5b-ov-hf",
            "AI-ModelScope/llava-onevision-qwen2-0.5b-ov-hf",
        ),
        LlavaHf,
        "llava-onevision-qwen",
        None,
        32768,
    ),
    info(
        "llava-onevision-qwen2-7b-ov",
        &[],
        (
            "llava-hf/llava-onevision-qwen2-7b-ov-hf",
            "AI-ModelScope/llava-onevision-qwen2-7b-ov-hf",
        ),
        LlavaHf,
        "llava-onevision-qwen",
        None,
        32768,
    ),
    info(
        "llava-onevision-qwen2-72b-ov",
        &[],
        (
            "llava-hf/llava-onevision-qwen2-72b-ov-hf",
            "AI-ModelScope/llava-onevision-qwen2-72b-ov-hf",
        ),
        LlavaHf,
        "llava-onevision-qwen",
        None,
        32768,
    ),
];

impl ModelInfo {
    /// The model type named `name` (or an alias of it).
    pub fn find(name: &str) -> Result<&'static ModelInfo> {
        MODELS
            .iter()
            .find(|m| m.model_type == name || m.aliases.contains(&name))
            .ok_or_else(|| LlavaError::UnknownModelType {
                name: name.to_string(),
                known: MODELS
                    .iter()
                    .map(|m| m.model_type)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The model type whose hub id is `id` (ms-swift picks the type from a registered id).
    pub fn for_hub_id(id: &str) -> Option<&'static ModelInfo> {
        MODELS.iter().find(|m| {
            m.hf_model_id.eq_ignore_ascii_case(id) || m.ms_model_id.eq_ignore_ascii_case(id)
        })
    }
}

impl ModelInfo {
    /// The decoder family its template is written for (`mistral`, `llama` for Yi and Llama 3,
    /// `qwen2` for Qwen1.5/2), as `config.json`'s text `model_type` names it.
    pub fn decoder_family(&self) -> &'static str {
        if self.template_type.contains("mistral") {
            "mistral"
        } else if self.template_type.contains("qwen") {
            "qwen2"
        } else {
            "llama"
        }
    }

    /// Refuses a checkpoint whose decoder is of another family than this type's (a Qwen type
    /// on a Mistral checkpoint would run with the wrong template), listing the types that fit.
    pub fn check_fits(&self, config: &LlavaConfig, dir: &Path) -> Result<()> {
        let family = config.text.model_type.as_str();
        if !matches!(family, "mistral" | "llama" | "qwen2") || family == self.decoder_family() {
            return Ok(());
        }
        let fitting: Vec<&str> = MODELS
            .iter()
            .filter(|m| m.layout == config.layout && m.decoder_family() == family)
            .map(|m| m.model_type)
            .collect();
        Err(LlavaError::File(llava_checkpoint::FileError::Config {
            path: dir.join("config.json"),
            message: format!(
                "--model-type {} is for a {} decoder (template {}), but this checkpoint's \
                 decoder is {family}; model types that fit it: {}",
                self.model_type,
                self.decoder_family(),
                self.template_type,
                fitting.join(", ")
            ),
        }))
    }

    /// The model type of the checkpoint in `dir`, read from its `config.json`: the layout, the
    /// text model's family, the tower, and the vocabulary (Llama 3's 128k against Yi's 64k).
    /// Types that differ only in size (llava-next-72b and -110b, OneVision's three) behave the
    /// same here, and the first is taken. When nothing matches, the error lists the candidates
    /// of the layout.
    pub fn infer_from_dir(dir: &Path) -> Result<&'static ModelInfo> {
        let config = LlavaConfig::from_dir(dir)?;
        let family = config.text.model_type.as_str();
        let siglip = config.vision.kind == llava_vision::TowerKind::Siglip;
        // (original layout, llava-hf layout)
        let names = match (family, siglip) {
            ("mistral", false) => Some((
                "llava1d6-mistral-7b-instruct",
                "llava1_6-mistral-7b-instruct-hf",
            )),
            ("llama", false) if config.text.vocab_size >= 128_000 => {
                Some(("llama3-llava-next-8b", "llama3-llava-next-8b-hf"))
            }
            ("llama", false) => Some(("llava1d6-yi-34b-instruct", "llava1_6-yi-34b-instruct-hf")),
            ("qwen2", false) => Some(("llava-next-72b", "llava-next-72b-hf")),
            ("qwen2", true) => Some(("", "llava-onevision-qwen2-0_5b-ov")),
            _ => None,
        };
        let found = names.and_then(|(original, hf)| {
            let name = match config.layout {
                Layout::Original => original,
                Layout::LlavaHf => hf,
            };
            MODELS.iter().find(|m| m.model_type == name)
        });
        found.ok_or_else(|| {
            let candidates: Vec<&str> = MODELS
                .iter()
                .filter(|m| m.layout == config.layout)
                .map(|m| m.model_type)
                .collect();
            LlavaError::File(llava_checkpoint::FileError::Config {
                path: dir.join("config.json"),
                message: format!(
                    "cannot tell the model type from a {family} decoder with a {} tower ({:?} layout): pass --model-type, one of {}",
                    if siglip { "SigLIP" } else { "CLIP" },
                    config.layout,
                    candidates.join(", ")
                ),
            })
        })
    }
}

/// ms-swift's `get_default_template_type(model_type)`.
pub fn get_default_template_type(model_type: &str) -> Result<&'static str> {
    Ok(ModelInfo::find(model_type)?.template_type)
}
