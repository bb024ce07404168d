//! ms-swift's `get_model_tokenizer`: a model type and a local directory or hub id → the loaded
//! model (with its generation defaults and context length) and its tokenizer.

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device};
use llava_checkpoint::Progress;
use llava_llm::{GenerationConfig, LoadOptions};
use llava_template::Tokenizer;
use serde_json::Value;

use crate::device_map::DeviceMapSpec;
use crate::hub::{HubOptions, resolve_model_dir};
use crate::registry::ModelInfo;
use crate::{LlavaConfig, LlavaError, LlavaNext, Result};

/// A loaded model with what inference needs besides the weights.
#[derive(Debug)]
pub struct Model {
    /// The network.
    pub llava: LlavaNext,
    /// The registered model type.
    pub info: &'static ModelInfo,
    /// Where the files were read from.
    pub model_dir: PathBuf,
    /// Defaults of `inference` (the checkpoint's `generation_config.json`).
    pub generation_config: GenerationConfig,
    /// Longest prompt plus answer, in tokens (images expanded).
    pub max_model_len: usize,
}

/// How `get_model_tokenizer` finds and places the model.
#[derive(Debug, Clone)]
pub struct ModelKwargs {
    /// A local checkpoint directory or a hub id; the model type's hub id when unset.
    pub model_id_or_path: Option<String>,
    /// Where the parameters live.
    pub device: Device,
    /// Hub branch, tag or commit.
    pub revision: Option<String>,
    /// Hub cache, offline mode, endpoint (from the environment by default).
    pub hub: HubOptions,
    /// Progress bars while loading.
    pub progress: Progress,
    /// A PEFT LoRA adapter directory (its layers in the decoder, the projector or the tower).
    pub adapter: Option<PathBuf>,
    /// Split the model over several devices (`None`: everything on `device`).
    pub device_map: Option<DeviceMapSpec>,
    /// The kernel route's switches (`None`: the `LLAVA_*` environment; docs/knobs.md). Set
    /// once per process: a later load with other values is an error.
    pub kernel_options: Option<llava_ops::options::KernelOptions>,
    /// Weight-only quantization of the language model's projections after loading
    /// (docs/quantization.md).
    pub quant_method: llava_nn::QuantMethod,
}

impl Default for ModelKwargs {
    fn default() -> Self {
        Self {
            model_id_or_path: None,
            device: Device::flex(),
            revision: None,
            hub: HubOptions::from_env(),
            progress: Progress::Auto,
            adapter: None,
            device_map: None,
            kernel_options: None,
            quant_method: llava_nn::QuantMethod::None,
        }
    }
}

/// Loads `model_type` (a registered name or alias) from `kwargs.model_id_or_path` (or the
/// type's hub id). `dtype` `None` picks f32 on the CPU and, elsewhere, the checkpoint's
/// `torch_dtype` (f16 when that is float32 or absent, as ms-swift does).
pub fn get_model_tokenizer(
    model_type: &str,
    dtype: Option<DType>,
    kwargs: ModelKwargs,
) -> Result<(Model, Tokenizer)> {
    llava_ops::options::install(kwargs.kernel_options.clone())?;
    let info = ModelInfo::find(model_type)?;
    let source = kwargs
        .model_id_or_path
        .clone()
        .unwrap_or_else(|| info.hf_model_id.to_string());
    let mut hub = kwargs.hub.clone();
    if kwargs.revision.is_some() {
        hub.revision = kwargs.revision.clone();
    }
    let dir = resolve_model_dir(&source, &hub)?;
    let config = LlavaConfig::from_dir(&dir)?;
    info.check_fits(&config, &dir)?;
    if config.layout != info.layout {
        tracing::warn!(
            model_type = info.model_type,
            dir = %dir.display(),
            "the checkpoint's layout ({:?}) is not the model type's ({:?}); loading it as it is",
            config.layout,
            info.layout
        );
    }
    let dtype = dtype.unwrap_or_else(|| default_dtype(&config, &kwargs.device));
    let options = LoadOptions {
        dtype,
        progress: kwargs.progress,
        device_map: kwargs
            .device_map
            .as_ref()
            .map(|spec| spec.resolve(&config, dtype))
            .transpose()?,
    };
    if let Some(map) = &options.device_map {
        tracing::info!("device map: {}", crate::device_map::describe(map));
    }
    let files = llava_checkpoint::CheckpointFiles::discover(&dir)?;
    let mut llava = LlavaNext::load(&config, &files, &kwargs.device, &options)?;
    if kwargs.quant_method != llava_nn::QuantMethod::None {
        llava.quantize(kwargs.quant_method);
        tracing::info!(method = ?kwargs.quant_method, "language model quantized");
    }
    if let Some(adapter) = &kwargs.adapter {
        let layers = llava.attach_adapter(&llava_nn::PeftAdapter::load(adapter)?)?;
        tracing::info!(layers, adapter = %adapter.display(), "LoRA adapter attached");
    }
    let mut tokenizer = Tokenizer::from_dir(&dir)?;
    if let Some(eos) = info.eos_token {
        tokenizer.set_eos_token(eos)?;
    }
    let generation_config = GenerationConfig::from_model_dir(&dir)?;
    let max_model_len = config.context_length().unwrap_or(info.context_length);
    Ok((
        Model {
            llava,
            info,
            model_dir: dir,
            generation_config,
            max_model_len,
        },
        tokenizer,
    ))
}

fn default_dtype(config: &LlavaConfig, device: &Device) -> DType {
    if *device == Device::flex() {
        return DType::F32;
    }
    match config.torch_dtype {
        Some(DType::BF16) => DType::BF16,
        _ => DType::F16,
    }
}

impl Model {
    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.llava.device()
    }
}

/// Reads `sft_args.json` of a checkpoint directory, if any (ms-swift writes it there).
pub fn read_sft_args(ckpt_dir: &Path) -> Result<Option<Value>> {
    let path = ckpt_dir.join("sft_args.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| {
        LlavaError::File(llava_checkpoint::FileError::Io {
            path: path.clone(),
            source,
        })
    })?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        LlavaError::File(llava_checkpoint::FileError::Config {
            path,
            message: e.to_string(),
        })
    })
}
