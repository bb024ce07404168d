//! LLaVA-NeXT in Rust, the way ms-swift users know it:
//!
//! ```no_run
//! use llava::{InferArgs, ModelKwargs, get_default_template_type, get_model_tokenizer,
//!     get_template, inference, inference_stream};
//!
//! let model_type = "llava1d6-mistral-7b-instruct";
//! let (model, tokenizer) = get_model_tokenizer(model_type, None, ModelKwargs {
//!     model_id_or_path: Some("fixtures/llava/clip-mistral/original".into()),
//!     ..ModelKwargs::default()
//! })?;
//! let template = get_template(get_default_template_type(model_type)?, tokenizer)?;
//! let args = InferArgs { images: vec!["fixtures/vision/images/coco_640x480.png".into()], ..Default::default() };
//! let (response, history) = inference(&model, &template, "Describe the image.", args.clone())?;
//! for delta in inference_stream(&model, &template, "And the colours?", InferArgs { history, ..args })? {
//!     print!("{}", delta?.text);
//! }
//! # Ok::<(), llava::LlavaError>(())
//! ```
//!
//! Underneath, [`llava_model`] composes the vision tower ([`llava_vision`]), the projector and
//! the decoder ([`llava_llm`]) and loads checkpoints in both layouts (llava-hf and original
//! LLaVA); the templates are [`llava_template`]'s.

#![warn(missing_docs)]

mod demo;
mod inference;

pub use demo::{evaluate_scenes, pixels};
/// The demo model's world: rendered scenes, their questions and the scoring.
pub use llava_scenes as scenes;

pub use inference::{
    Delta, GenerationInfo, History, InferArgs, InferenceStream, Turn, inference, inference_batch,
    inference_stream, inference_with_info, seed_everything,
};
/// Weight-only quantization (`ModelKwargs::quant_method`, docs/quantization.md).
pub use llava_model::QuantMethod;
pub use llava_model::{
    DeviceMapSpec, IMAGE_SENTINEL, Layout, LlavaConfig, LlavaError, LlavaNext, MODELS, Model,
    ModelInfo, ModelKwargs, PreparedBatch, Prompt, Result, describe_device_map,
    get_default_template_type, get_model_tokenizer, hub, llava_key_map, read_sft_args,
};
pub use llava_model::{HubOptions, resolve_model_dir};
pub use llava_vision::{FetchOptions, ImageInput, fetch_url};

/// Parameter dtype and progress bars: the decoder's options serve the whole model.
pub use llava_llm::{
    DeviceMap, GenerateOptions, GenerationConfig, LoadOptions, parse_layer_ranges, sampling,
};
pub use llava_template::{Template, Tokenizer, get_template};
pub use llava_train::{
    ExportArgs, SftArgs, SftOutput, SftType, TrainDtype, TrainError, export, merged_dir, sft,
};
pub use llava_vision::{
    DecodeOptions, ProcessedImage, Processor, ProcessorConfig, RgbImage, VisionError, open_image,
    preprocess,
};
