//! PEFT adapter directories: `adapter_config.json` + `adapter_model.safetensors`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Tensor, TensorData};
use llava_checkpoint::KeyMap;

use crate::{Linear, LoraConfig, LoraError, LoraFactors, Result};

/// The file PEFT writes the adapter configuration to.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The file PEFT writes the adapter tensors to.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's prefix on every saved key.
pub(super) const KEY_PREFIX: &str = "base_model.model.";

/// One layer's factors as stored in the adapter file.
#[derive(Debug, Clone)]
pub struct PeftFactors {
    /// The module's name in the model PEFT wrapped (the key without `base_model.model.` and
    /// the `.lora_A.weight` suffix), e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    /// A, `[r, d_input]`, in the file's dtype.
    pub lora_a: TensorData,
    /// B, `[d_output, r]`, in the file's dtype.
    pub lora_b: TensorData,
    /// `alpha/r` (or `alpha/√r`), with this module's rank and alpha.
    pub scaling: f64,
}

/// A PEFT LoRA adapter read from disk.
#[derive(Debug, Clone)]
pub struct PeftAdapter {
    /// The adapter directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: LoraConfig,
    /// Its factors, one entry per adapted module, sorted by module name.
    pub factors: Vec<PeftFactors>,
}

fn float_dtype(dtype: safetensors::Dtype) -> Option<DType> {
    match dtype {
        safetensors::Dtype::F32 => Some(DType::F32),
        safetensors::Dtype::F16 => Some(DType::F16),
        safetensors::Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

impl PeftAdapter {
    /// Reads and checks an adapter directory. Every tensor key must be a LoRA factor of a linear
    /// layer, each A must have its B, and each rank must agree with the configuration.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let config = LoraConfig::from_file(&dir.join(CONFIG_FILE))?;
        let path = dir.join(WEIGHTS_FILE);
        if !path.is_file() && dir.join("adapter_model.bin").is_file() {
            return Err(LoraError::Unsupported {
                path: dir.join("adapter_model.bin"),
                feature: "a pickled adapter (save it with safe_serialization=True)".into(),
            });
        }
        llava_checkpoint::files::check_header(&path)?;
        let bytes = std::fs::read(&path).map_err(|source| {
            LoraError::File(llava_checkpoint::FileError::Io {
                path: path.clone(),
                source,
            })
        })?;
        let weights_error = |message: String| LoraError::Weights {
            path: path.clone(),
            message,
        };
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| weights_error(e.to_string()))?;

        let mut pairs: BTreeMap<String, (Option<TensorData>, Option<TensorData>)> = BTreeMap::new();
        for (key, view) in file.tensors() {
            let Some(rest) = key.strip_prefix(KEY_PREFIX) else {
                return Err(weights_error(format!(
                    "key {key} does not start with {KEY_PREFIX:?}; is this a PEFT adapter?"
                )));
            };
            let (module, is_a) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
                (m, true)
            } else if let Some(m) = rest.strip_suffix(".lora_B.weight") {
                (m, false)
            } else if rest.contains("lora_embedding_") {
                return Err(LoraError::Unsupported {
                    path: path.clone(),
                    feature: format!("embedding LoRA (key {key})"),
                });
            } else {
                return Err(weights_error(format!(
                    "unexpected tensor {key}: only lora_A/lora_B factors of linear layers are supported"
                )));
            };
            let dtype = float_dtype(view.dtype()).ok_or_else(|| {
                weights_error(format!("tensor {key} has dtype {:?}", view.dtype()))
            })?;
            if view.shape().len() != 2 {
                return Err(weights_error(format!(
                    "tensor {key} has shape {:?}, expected 2 dimensions",
                    view.shape()
                )));
            }
            let data = TensorData::from_bytes_vec(view.data().to_vec(), view.shape(), dtype);
            let slot = pairs.entry(module.to_string()).or_default();
            if is_a {
                slot.0 = Some(data);
            } else {
                slot.1 = Some(data);
            }
        }

        let mut factors = Vec::with_capacity(pairs.len());
        for (module, (a, b)) in pairs {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(weights_error(format!(
                    "{KEY_PREFIX}{module} has only one of lora_A / lora_B"
                )));
            };
            let (sa, sb) = (a.shape().dims::<2>(), b.shape().dims::<2>());
            let (r, alpha) = config.rank_alpha(&module);
            if sa[0] != r || sb[1] != r {
                return Err(weights_error(format!(
                    "{module}: lora_A {sa:?} and lora_B {sb:?} do not have the rank {r} that \
                     adapter_config.json gives this module"
                )));
            }
            factors.push(PeftFactors {
                module,
                lora_a: a,
                lora_b: b,
                scaling: config.scaling(r, alpha),
            });
        }
        if factors.is_empty() {
            return Err(weights_error("the adapter holds no LoRA factors".into()));
        }
        Ok(Self {
            dir,
            config,
            factors,
        })
    }

    /// Attaches the factors to the model's layers. `layers` are the model's LoRA-capable linear
    /// layers with their module paths; `key_map` renames the adapter's module names to those
    /// paths (the same map that loads the base checkpoint). The factors keep the file's dtype.
    /// Returns the number of layers adapted.
    pub fn attach<'a>(
        &self,
        layers: impl IntoIterator<Item = (String, &'a mut Linear)>,
        key_map: &KeyMap,
    ) -> Result<usize> {
        let mut by_path: HashMap<String, &'a mut Linear> = layers.into_iter().collect();
        let path = self.dir.join(WEIGHTS_FILE);
        // Check everything before changing anything, so a failed attach leaves the model as it was.
        for f in &self.factors {
            let target = module_path(key_map, &f.module);
            let Some(layer) = by_path.get(&target) else {
                return Err(LoraError::Mismatch {
                    path,
                    message: format!(
                        "factors for module {} (model path {target}): the model has no such linear layer",
                        f.module
                    ),
                });
            };
            let (a, b) = (f.lora_a.shape().dims::<2>(), f.lora_b.shape().dims::<2>());
            if a[1] != layer.d_input() || b[0] != layer.d_output() {
                return Err(LoraError::Mismatch {
                    path,
                    message: format!(
                        "module {}: lora_A {a:?} / lora_B {b:?} do not fit a layer of {} inputs and {} outputs",
                        f.module,
                        layer.d_input(),
                        layer.d_output()
                    ),
                });
            }
        }
        for f in &self.factors {
            if let Some(layer) = by_path.get_mut(&module_path(key_map, &f.module)) {
                // Factors live with their layer (layers may sit on different devices).
                let device = layer.weight.val().device();
                let a = Tensor::<2>::from_data(f.lora_a.clone(), (&device, f.lora_a.dtype()));
                let b = Tensor::<2>::from_data(f.lora_b.clone(), (&device, f.lora_b.dtype()));
                layer.attach(LoraFactors::from_tensors(
                    a,
                    b,
                    f.scaling,
                    self.config.lora_dropout,
                ));
            }
        }
        Ok(self.factors.len())
    }
}

/// The model path of an adapter's module name: the name is mapped as its weight's key is (a
/// checkpoint's key map has rules ending in `.`, e.g. `lm_head.`), then `.weight` is dropped.
fn module_path(key_map: &KeyMap, module: &str) -> String {
    let key = key_map.map(&format!("{module}.weight"));
    key.strip_suffix(".weight").unwrap_or(&key).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LinearConfig;
    use burn::tensor::Device;

    fn write_adapter(dir: &Path, config: &str, tensors: &[(&str, [usize; 2])]) {
        std::fs::write(dir.join(CONFIG_FILE), config).unwrap();
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, s)| vec![0u8; s[0] * s[1] * 4])
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .zip(&data)
            .map(|((k, s), d)| {
                let view =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.to_vec(), d)
                        .unwrap();
                (k.to_string(), view)
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(WEIGHTS_FILE)).unwrap();
    }

    const CONFIG: &str = r#"{"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}"#;
    const A: &str = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    const B: &str = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

    fn error(config: &str, tensors: &[(&str, [usize; 2])]) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_adapter(dir.path(), config, tensors);
        PeftAdapter::load(dir.path()).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_adapter_attaches_with_its_scaling() {
        let dir = tempfile::tempdir().unwrap();
        write_adapter(dir.path(), CONFIG, &[(A, [2, 4]), (B, [3, 2])]);
        let adapter = PeftAdapter::load(dir.path()).unwrap();
        assert_eq!(adapter.factors[0].module, "model.layers.0.self_attn.q_proj");
        assert_eq!(adapter.factors[0].scaling, 2.0);
        let device = Device::flex();
        let mut layer = LinearConfig::new(4, 3).init(&device);
        let layers = vec![("model.layers.0.self_attn.q_proj".to_string(), &mut layer)];
        assert_eq!(adapter.attach(layers, &KeyMap::identity()).unwrap(), 1);
        assert_eq!(layer.lora.as_ref().unwrap().rank(), 2);
    }

    #[test]
    fn a_layer_of_the_wrong_size_is_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write_adapter(dir.path(), CONFIG, &[(A, [2, 4]), (B, [3, 2])]);
        let adapter = PeftAdapter::load(dir.path()).unwrap();
        let device = Device::flex();
        let mut layer = LinearConfig::new(5, 3).init(&device);
        let layers = vec![("model.layers.0.self_attn.q_proj".to_string(), &mut layer)];
        let err = adapter
            .attach(layers, &KeyMap::identity())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.layers.0.self_attn.q_proj") && err.contains("5 inputs"),
            "{err}"
        );
        assert!(layer.lora.is_none());
    }

    #[test]
    fn malformed_adapters_are_named() {
        let err = error(CONFIG, &[(A, [2, 4])]);
        assert!(
            err.contains("q_proj has only one of lora_A / lora_B"),
            "{err}"
        );
        let err = error(CONFIG, &[("model.layers.0.q_proj.lora_A.weight", [2, 4])]);
        assert!(err.contains("does not start with"), "{err}");
        let err = error(
            CONFIG,
            &[(
                "base_model.model.model.embed_tokens.lora_embedding_A",
                [2, 4],
            )],
        );
        assert!(err.contains("embedding LoRA"), "{err}");
        let err = error(CONFIG, &[(A, [3, 4]), (B, [3, 3])]);
        assert!(
            err.contains("rank 2") && err.contains("adapter_config.json"),
            "{err}"
        );
        let err = error(
            r#"{"r": 2, "target_modules": 5}"#,
            &[(A, [2, 4]), (B, [3, 2])],
        );
        assert!(err.contains("adapter_config.json"), "{err}");
    }

    #[test]
    fn a_pickled_adapter_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), CONFIG).unwrap();
        std::fs::write(dir.path().join("adapter_model.bin"), b"pickle").unwrap();
        let err = PeftAdapter::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("safe_serialization"), "{err}");
    }
}
