use std::path::Path;

use burn::tensor::{DType, Device};
use llava_checkpoint::{CheckpointFiles, Progress, load_module};
use llava_nn::PeftAdapter;

use crate::checkpoint_keys::{decoder_key_map, is_decoder_key};
use crate::{CausalLm, DeviceMap, LlmError, Result, TextConfig};

/// How to load a decoder.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The dtype of the parameters (f32 on CPU; bf16 or f16 on CUDA). The cast happens on the
    /// host, tensor by tensor, while loading.
    pub dtype: DType,
    /// Whether to draw a progress bar.
    pub progress: Progress,
    /// Where each part goes when the model is split over devices (`None`: all on the device
    /// passed to the loader). Weights are loaded straight to their part's device.
    pub device_map: Option<DeviceMap>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            progress: Progress::Auto,
            device_map: None,
        }
    }
}

impl CausalLm {
    /// Loads `config.json` and the weights (single file or shards) of a checkpoint directory,
    /// in any of the key layouts of [`decoder_key_map`].
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let config = TextConfig::from_file(dir.join("config.json"))?;
        let files = CheckpointFiles::discover(dir)?;
        Self::load(&config, &files, device, options)
    }

    /// Builds a model for `config` and loads `files` into it. Missing or mis-shaped tensors are
    /// errors naming them; so are decoder tensors the configuration does not describe. Other
    /// keys (vision tower, projector) are ignored.
    pub fn load(
        config: &TextConfig,
        files: &CheckpointFiles,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<Self> {
        let mut model = match &options.device_map {
            Some(map) => {
                check_map(map, config, files)?;
                Self::new_mapped(config, map)
            }
            None => Self::new(config, device),
        };
        let load_options = llava_checkpoint::LoadOptions {
            key_map: decoder_key_map(),
            dtype: Some(options.dtype),
            progress: options.progress,
        };
        let report = load_module(&mut model, files, &load_options)?;
        let stray: Vec<&String> = report
            .unused
            .iter()
            .filter(|k| is_decoder_key(k))
            .filter(|k| !(config.tie_word_embeddings && k.as_str() == "lm_head.weight"))
            .collect();
        if !stray.is_empty() {
            return Err(LlmError::File(llava_checkpoint::FileError::Config {
                path: files.origin.clone(),
                message: format!(
                    "the checkpoint has decoder tensors the configuration does not describe \
                     ({} layers configured): {}",
                    config.num_hidden_layers,
                    stray
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }));
        }
        tracing::info!(tensors = report.applied, origin = %files.origin.display(), "decoder loaded");
        for device in model.device_map().devices() {
            device.memory_cleanup();
        }
        Ok(model)
    }

    /// Reads a PEFT adapter directory and attaches its factors to the layers it names (in any
    /// checkpoint layout). Returns the number of adapted layers.
    pub fn load_adapter(&mut self, dir: impl AsRef<Path>) -> Result<usize> {
        let adapter = PeftAdapter::load(dir)?;
        Ok(adapter.attach(self.linears_mut(), &decoder_key_map())?)
    }
}

/// A device map must name one device per layer of the configuration.
pub(crate) fn check_map(
    map: &DeviceMap,
    config: &TextConfig,
    files: &CheckpointFiles,
) -> Result<()> {
    if map.layers.len() != config.num_hidden_layers {
        return Err(LlmError::File(llava_checkpoint::FileError::Config {
            path: files.origin.clone(),
            message: format!(
                "the device map places {} layers but num_hidden_layers is {}",
                map.layers.len(),
                config.num_hidden_layers
            ),
        }));
    }
    Ok(())
}
