//! The templates as data (`docs/templates.md` compares them with ms-swift 2.0.5's strings).
//!
//! They follow the conversation format each checkpoint family was trained with (spec README,
//! decision 2): upstream LLaVA-NeXT's `mistral_instruct`, `chatml_direct` (Yi-34B),
//! `llava_llama_3` and `qwen_1_5` conversations, written with ms-swift's template pieces and
//! names. Original-layout templates put the sentinel -200 where an image goes; llava-hf ones
//! write the `<image>` token, which the model expands to one token per feature row.

/// How an image appears in the encoded ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePlaceholder {
    /// Original LLaVA: the text is split at the image and `-200` stands between the pieces.
    Sentinel,
    /// llava-hf: this token string is written into the text (one per image).
    Token(&'static str),
}

/// A chat template: ms-swift's `prefix`, `system_prefix`, `prompt`, `chat_sep`, `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    /// The template type (ms-swift's name).
    pub name: &'static str,
    /// A token written by id before everything else (ms-swift's `[['bos_token_id']]`), not as
    /// text: a SentencePiece tokenizer whose Metaspace prepends `▁` to the first piece only
    /// (`prepend_scheme: "first"`) would otherwise tokenize the text after a literal `<s>` as
    /// a later piece (`[` instead of transformers' `▁[`).
    pub bos: Option<&'static str>,
    /// Start of the text (after [`Self::bos`]) when there is no system text.
    pub prefix: &'static str,
    /// Start of the text with a system text (`{{SYSTEM}}`); `None`: no system support.
    pub system_prefix: Option<&'static str>,
    /// One user turn and the assistant header (`{{QUERY}}`).
    pub prompt: &'static str,
    /// After each history response; `None`: single-round only.
    pub chat_sep: Option<&'static str>,
    /// After the last response; the stop word at inference.
    pub suffix: &'static str,
    /// Used when the caller gives no system.
    pub default_system: Option<&'static str>,
    /// Where an image goes.
    pub image_placeholder: ImagePlaceholder,
    /// Text written after every image.
    pub image_suffix: &'static str,
}

const LLAVA_LLAMA3_SYSTEM: &str = "You are a helpful language and vision assistant. You are able \
to understand the visual content that the user provides, and assist the user with a variety of \
tasks using natural language.";
const QWEN_SYSTEM: &str = "You are a helpful assistant.";
const YI_SYSTEM: &str = "Answer the questions.";
const HF_IMAGE: ImagePlaceholder = ImagePlaceholder::Token("<image>");

const fn mistral(name: &'static str, image: ImagePlaceholder) -> TemplateSpec {
    TemplateSpec {
        name,
        bos: Some("<s>"),
        prefix: "[INST] ",
        system_prefix: None,
        prompt: "{{QUERY}} [/INST]",
        chat_sep: Some("</s>[INST] "),
        suffix: "</s>",
        default_system: None,
        image_placeholder: image,
        image_suffix: "\n",
    }
}

const fn chatml_direct(name: &'static str, image: ImagePlaceholder) -> TemplateSpec {
    TemplateSpec {
        name,
        bos: None,
        prefix: "",
        system_prefix: Some("<|im_start|>system\n{{SYSTEM}}<|im_end|>"),
        prompt: "<|im_start|>user\n{{QUERY}}<|im_end|><|im_start|>assistant\n",
        chat_sep: Some("<|im_end|>"),
        suffix: "<|im_end|>",
        default_system: Some(YI_SYSTEM),
        image_placeholder: image,
        image_suffix: "\n",
    }
}

const fn llama3(name: &'static str, image: ImagePlaceholder) -> TemplateSpec {
    TemplateSpec {
        name,
        bos: None,
        prefix: "<|begin_of_text|>",
        system_prefix: Some(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{{SYSTEM}}<|eot_id|>",
        ),
        prompt: "<|start_header_id|>user<|end_header_id|>\n\n{{QUERY}}<|eot_id|>\
                 <|start_header_id|>assistant<|end_header_id|>\n\n",
        chat_sep: Some("<|eot_id|>"),
        suffix: "<|eot_id|>",
        default_system: Some(LLAVA_LLAMA3_SYSTEM),
        image_placeholder: image,
        image_suffix: "\n",
    }
}

const fn qwen(name: &'static str, image: ImagePlaceholder) -> TemplateSpec {
    TemplateSpec {
        name,
        bos: None,
        prefix: "",
        system_prefix: Some("<|im_start|>system\n{{SYSTEM}}<|im_end|>\n"),
        prompt: "<|im_start|>user\n{{QUERY}}<|im_end|>\n<|im_start|>assistant\n",
        chat_sep: Some("<|im_end|>\n"),
        suffix: "<|im_end|>",
        default_system: Some(QWEN_SYSTEM),
        image_placeholder: image,
        image_suffix: "\n",
    }
}

/// Every registered template.
pub const TEMPLATES: &[TemplateSpec] = &[
    // Original layout (liuhaotian / lmms-lab checkpoints), ms-swift 2.0.5's names.
    mistral("llava-mistral-instruct", ImagePlaceholder::Sentinel),
    chatml_direct("llava-yi-instruct", ImagePlaceholder::Sentinel),
    llama3("llama-llava-next", ImagePlaceholder::Sentinel),
    qwen("llava-qwen-instruct", ImagePlaceholder::Sentinel),
    // llava-hf checkpoints (ms-swift 2.2+ names).
    mistral("llava-mistral", HF_IMAGE),
    chatml_direct("llava-yi", HF_IMAGE),
    llama3("llama3-llava-next-hf", HF_IMAGE),
    qwen("llava-qwen-hf", HF_IMAGE),
    qwen("llava-onevision-qwen", HF_IMAGE),
];

/// Later ms-swift names of the same templates.
pub const TEMPLATE_ALIASES: &[(&str, &str)] = &[
    ("llama3-llava-next", "llama-llava-next"),
    ("llava-qwen", "llava-qwen-instruct"),
];

/// The template registered under `name` (or one of its aliases).
pub fn find_template(name: &str) -> Option<&'static TemplateSpec> {
    let name = TEMPLATE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, target)| target);
    TEMPLATES.iter().find(|t| t.name == name)
}
