//! PEFT adapter directories written: what `PeftModel.from_pretrained` reads.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::TensorData;

use super::read::{CONFIG_FILE, KEY_PREFIX, WEIGHTS_FILE};
use crate::{Linear, LoraConfig, LoraError, Result};

/// Writes `config` and the factors of every layer in `layers` that has an adapter to `dir`:
/// `adapter_model.safetensors` with PEFT's keys (`base_model.model.<module>.lora_A.weight`,
/// `…lora_B.weight`, each factor in its own dtype) and `adapter_config.json`. `layers` pairs
/// each layer with its module name as PEFT names it in the wrapped model (the caller maps
/// its own paths to those). Each file is written atomically (a temporary name, then a
/// rename), the weights first. Returns the number of layers written; none is an error.
pub fn save_adapter<'a>(
    dir: &Path,
    config: &LoraConfig,
    layers: impl IntoIterator<Item = (String, &'a Linear)>,
) -> Result<usize> {
    let mut tensors = Vec::new();
    for (module, layer) in layers {
        let Some(lora) = &layer.lora else { continue };
        let data = |t: burn::tensor::Tensor<2>| -> TensorData { t.into_data() };
        tensors.push((
            format!("{KEY_PREFIX}{module}.lora_A.weight"),
            data(lora.lora_a.val()),
        ));
        tensors.push((
            format!("{KEY_PREFIX}{module}.lora_B.weight"),
            data(lora.lora_b.val()),
        ));
    }
    if tensors.is_empty() {
        return Err(LoraError::Weights {
            path: dir.join(WEIGHTS_FILE),
            message: "no layer has an adapter to save".into(),
        });
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let count = tensors.len() / 2;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    llava_checkpoint::save_safetensors(&dir.join(WEIGHTS_FILE), &tensors, Some(metadata))?;
    let mut config = config.clone();
    config.peft_type = "LORA".into();
    config.inference_mode = true;
    // PEFT reads these as dicts and fails on null (`rank_pattern.keys()`).
    config.rank_pattern.get_or_insert_default();
    config.alpha_pattern.get_or_insert_default();
    let path = dir.join(CONFIG_FILE);
    let json = serde_json::to_vec_pretty(&config).map_err(|e| {
        LoraError::File(llava_checkpoint::FileError::Config {
            path: path.clone(),
            message: e.to_string(),
        })
    })?;
    llava_checkpoint::write_atomic(&path, &json)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LinearConfig, LoraFactors, PeftAdapter};
    use burn::tensor::{Device, Distribution, Tensor};
    use llava_checkpoint::KeyMap;

    fn config() -> LoraConfig {
        serde_json::from_str(
            r#"{"r": 2, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                "task_type": "CAUSAL_LM", "lora_dropout": 0.0}"#,
        )
        .unwrap()
    }

    /// Two adapted layers and one plain one written, read back by `PeftAdapter::load` and
    /// attached to fresh layers: the same outputs, the plain layer absent from the file.
    #[test]
    fn a_saved_adapter_reads_back_to_the_same_layers() {
        let device = Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        let base = |d_in: usize| {
            let mut l = LinearConfig::new(d_in, 3).init(&device);
            l.weight = burn::module::Param::from_tensor(Tensor::random([3, d_in], normal, &device));
            l
        };
        let (mut q, mut v, k) = (base(4), base(4), base(4));
        for l in [&mut q, &mut v] {
            l.attach(LoraFactors::from_tensors(
                Tensor::random([2, 4], normal, &device),
                Tensor::random([3, 2], normal, &device),
                4.0,
                0.0,
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let layers = [
            ("model.layers.0.self_attn.q_proj".to_string(), &q),
            ("model.layers.0.self_attn.v_proj".to_string(), &v),
            ("model.layers.0.self_attn.k_proj".to_string(), &k),
        ];
        assert_eq!(save_adapter(dir.path(), &config(), layers).unwrap(), 2);

        let adapter = PeftAdapter::load(dir.path()).unwrap();
        assert_eq!(adapter.factors.len(), 2);
        assert!(adapter.config.inference_mode);
        // PEFT needs the pattern maps as objects, never null.
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_FILE)).unwrap()).unwrap();
        assert!(
            raw["rank_pattern"].is_object() && raw["alpha_pattern"].is_object(),
            "{raw}"
        );
        let (mut q2, mut v2) = (q.clone(), v.clone());
        q2.lora = None;
        v2.lora = None;
        let attached = adapter
            .attach(
                [
                    ("model.layers.0.self_attn.q_proj".to_string(), &mut q2),
                    ("model.layers.0.self_attn.v_proj".to_string(), &mut v2),
                ],
                &KeyMap::identity(),
            )
            .unwrap();
        assert_eq!(attached, 2);
        let x = Tensor::<2>::random([5, 4], normal, &device);
        for (a, b) in [(&q, &q2), (&v, &v2)] {
            let diff = (a.forward(x.clone()) - b.forward(x.clone()))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert_eq!(diff, 0.0);
        }
        // Scaling alpha/r = 8/2 from the written config.
        assert_eq!(q2.lora.as_ref().unwrap().scaling, 4.0);
    }

    #[test]
    fn nothing_to_save_is_an_error_and_writes_nothing() {
        let device = Device::flex();
        let plain = LinearConfig::new(2, 2).init(&device);
        let dir = tempfile::tempdir().unwrap();
        let e = save_adapter(dir.path(), &config(), [("m".to_string(), &plain)]).unwrap_err();
        assert!(e.to_string().contains("no layer has an adapter"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
