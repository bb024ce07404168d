//! Checkpoints in ms-swift's layout (`../shared/spec/swift-llava.md` §5.5, decision 13):
//! `checkpoint-<step>/` with a PEFT adapter (LoRA) or a model directory transformers loads
//! (full), ms-swift's JSON files, and our resume state (`optimizer.safetensors`,
//! `llava_state.json`). A checkpoint is written into a temporary directory beside its final
//! name and renamed into place, so a process killed mid-save leaves the previous ones intact.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use llava_checkpoint::{CheckpointFiles, save_safetensors};
use llava_model::{Layout, llava_key_map};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, TrainError, io};
use crate::optim::Moments;

/// `llava_state.json`: where a run stood when the checkpoint was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Version of this file's layout.
    pub format: u32,
    /// The model type trained.
    pub model_type: String,
    /// `lora` or `full`.
    pub sft_type: crate::SftType,
    /// Optimizer steps done.
    pub global_step: usize,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// AdamW's step count.
    pub optimizer_steps: u64,
    /// Training rows of the run (the sample order depends on it).
    pub train_rows: usize,
    /// Trainable tensors: path → shape.
    pub trainables: BTreeMap<String, Vec<usize>>,
    /// Adapted module paths (LoRA).
    pub lora_targets: Vec<String>,
    /// Lowest evaluation loss so far, and its checkpoint.
    pub best_metric: Option<f64>,
    /// The checkpoint of `best_metric`.
    pub best_model_checkpoint: Option<String>,
}

/// The resume state's file name.
pub const STATE_FILE: &str = "llava_state.json";
/// The optimizer moments' file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The tensors transformers names in the Python model: the source checkpoint's own keys where
/// it has them (so a saved directory keeps the layout it was loaded from), else the names of
/// the layout's Python classes.
pub fn python_key(path: &str, layout: Layout, source: &HashMap<String, String>) -> String {
    if let Some(k) = source.get(path) {
        return k.clone();
    }
    match layout {
        // llava-hf files keep the hub's names, which are our module paths but for the head.
        Layout::LlavaHf => match path.strip_prefix("language_model.lm_head") {
            Some(r) => format!("lm_head{r}"),
            None => path.to_string(),
        },
        Layout::Original => crate::targets::original_name(path),
    }
}

/// Module path → checkpoint key, from the keys of the checkpoint in `dir`.
pub fn source_keys(dir: &Path) -> Result<HashMap<String, String>> {
    let files = CheckpointFiles::discover(dir)?;
    let map = llava_key_map();
    let mut out = HashMap::new();
    for shard in &files.shards {
        let header = llava_checkpoint::files::check_header(shard)?;
        for key in header.tensors.into_keys() {
            out.insert(map.map(&key), key);
        }
    }
    Ok(out)
}

/// Writes `tensors` as transformers does: `model.safetensors`, or shards of at most
/// `max_shard_bytes` named `model-0000i-of-0000n.safetensors` with
/// `model.safetensors.index.json`.
pub fn save_sharded(
    dir: &Path,
    tensors: Vec<(String, TensorData)>,
    max_shard_bytes: usize,
) -> Result<()> {
    let mut shards: Vec<Vec<(String, TensorData)>> = vec![Vec::new()];
    let mut size = 0;
    let mut total = 0usize;
    for (name, data) in tensors {
        let bytes = data.as_bytes().len();
        if size + bytes > max_shard_bytes && !shards.last().is_some_and(Vec::is_empty) {
            shards.push(Vec::new());
            size = 0;
        }
        size += bytes;
        total += bytes;
        shards.last_mut().expect("one shard").push((name, data));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    if shards.len() == 1 {
        let mut only = shards.pop().expect("one shard");
        only.sort_by(|a, b| a.0.cmp(&b.0));
        save_safetensors(&dir.join("model.safetensors"), &only, Some(metadata))?;
        return Ok(());
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    for (i, mut shard) in shards.into_iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        shard.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, _) in &shard {
            weight_map.insert(k.clone(), name.clone());
        }
        save_safetensors(&dir.join(&name), &shard, Some(metadata.clone()))?;
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    write_json(&dir.join("model.safetensors.index.json"), &index)
}

/// Pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| TrainError::Internal(format!("{}: {e}", path.display())))?;
    std::fs::write(path, text).map_err(io(path))
}

/// Reads JSON from `path`, naming the file in errors.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| {
        TrainError::File(llava_checkpoint::FileError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })
}

/// Files of a model directory a full checkpoint or merged export carries over from the base.
pub const MODEL_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
];

/// Copies `MODEL_FILES` (those present) and an original checkpoint's local vision tower
/// directory from `from` to `to`.
pub fn copy_model_files(from: &Path, to: &Path) -> Result<()> {
    for name in MODEL_FILES {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name)).map_err(io(&src))?;
        }
    }
    let tower = from.join("vision_tower");
    if tower.is_dir() {
        let dst = to.join("vision_tower");
        std::fs::create_dir_all(&dst).map_err(io(&dst))?;
        for entry in std::fs::read_dir(&tower).map_err(io(&tower))? {
            let entry = entry.map_err(io(&tower))?;
            if entry.path().is_file() {
                std::fs::copy(entry.path(), dst.join(entry.file_name()))
                    .map_err(io(entry.path()))?;
            }
        }
    }
    Ok(())
}

/// ms-swift's `configuration.json`: the model directory's, else the default, plus `adapter_cfg`
/// for an adapter checkpoint.
pub fn configuration_json(model_dir: &Path, adapter_cfg: Option<Value>) -> Value {
    let mut value: Value = std::fs::read_to_string(model_dir.join("configuration.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({"framework": "pytorch", "task": "text-generation"}));
    if let (Some(cfg), Some(obj)) = (adapter_cfg, value.as_object_mut()) {
        obj.insert("adapter_cfg".into(), cfg);
    }
    value
}

/// The generation config ms-swift writes into checkpoints (its `swift infer` defaults).
pub fn swift_generation_config(eos: Option<u32>, pad: Option<u32>) -> Value {
    json!({
        "do_sample": true,
        "eos_token_id": eos,
        "max_new_tokens": 2048,
        "num_beams": 1,
        "pad_token_id": pad,
        "repetition_penalty": 1.0,
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.7,
        "transformers_version": "4.41.2"
    })
}

/// The optimizer's state read back: moments and f32 master weights by parameter path.
pub type OptimizerState = (BTreeMap<String, Moments>, BTreeMap<String, Tensor<1>>);

/// Writes the moments of every parameter to `optimizer.safetensors` (`exp_avg.<path>`,
/// `exp_avg_sq.<path>`), and the f32 master weights of `--master-f32` (`master.<path>`).
pub fn save_moments(
    dir: &Path,
    state: &BTreeMap<String, Moments>,
    masters: &BTreeMap<String, Tensor<1>>,
) -> Result<()> {
    let mut tensors = Vec::with_capacity(state.len() * 2 + masters.len());
    for (path, m) in masters {
        tensors.push((format!("master.{path}"), m.clone().into_data()));
    }
    for (path, m) in state {
        tensors.push((format!("exp_avg.{path}"), m.exp_avg.clone().into_data()));
        tensors.push((
            format!("exp_avg_sq.{path}"),
            m.exp_avg_sq.clone().into_data(),
        ));
    }
    if tensors.is_empty() {
        return Ok(());
    }
    save_safetensors(&dir.join(OPTIMIZER_FILE), &tensors, None)?;
    Ok(())
}

/// Reads the moments and masters written by [`save_moments`] onto `device` (the inner
/// backend), checking every path of `expected` (path → elements) is there with its size.
pub fn load_moments(
    dir: &Path,
    device: &Device,
    expected: &BTreeMap<String, usize>,
) -> Result<OptimizerState> {
    let path = dir.join(OPTIMIZER_FILE);
    let bad = |message: String| TrainError::Resume {
        path: dir.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("{OPTIMIZER_FILE}: {e}")))?;
    let read = |name: &str, numel: usize| -> Result<Tensor<1>> {
        let view = file
            .tensor(name)
            .map_err(|_| bad(format!("{OPTIMIZER_FILE} has no {name}")))?;
        let shape = view.shape().to_vec();
        if shape.iter().product::<usize>() != numel {
            return Err(bad(format!(
                "{name} has shape {shape:?}, the parameter has {numel} elements"
            )));
        }
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => burn::tensor::DType::F32,
            safetensors::Dtype::BF16 => burn::tensor::DType::BF16,
            safetensors::Dtype::F16 => burn::tensor::DType::F16,
            other => return Err(bad(format!("{name}: dtype {other:?}"))),
        };
        let data = TensorData::from_bytes_vec(view.data().to_vec(), [numel], dtype);
        Ok(Tensor::<1>::from_data(data, (device, dtype)))
    };
    let names: std::collections::BTreeSet<&str> = file.names().into_iter().collect();
    let mut out = BTreeMap::new();
    let mut masters = BTreeMap::new();
    for (p, &numel) in expected {
        let master = format!("master.{p}");
        if names.contains(master.as_str()) {
            masters.insert(p.clone(), read(&master, numel)?);
        }
        let (avg, avg_sq) = (format!("exp_avg.{p}"), format!("exp_avg_sq.{p}"));
        // A parameter that never had a gradient (the tower's last layer when the features come
        // from the one before) has no moments yet, as in torch's AdamW; one moment alone is a
        // damaged file.
        if !names.contains(avg.as_str()) && !names.contains(avg_sq.as_str()) {
            continue;
        }
        out.insert(
            p.clone(),
            Moments {
                exp_avg: read(&avg, numel)?,
                exp_avg_sq: read(&avg_sq, numel)?,
            },
        );
    }
    Ok((out, masters))
}

/// Moves the finished temporary directory `tmp` to `dir` (replacing nothing: `dir` must not
/// exist).
pub fn commit(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        return Err(TrainError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "checkpoint exists"),
        });
    }
    std::fs::rename(tmp, dir).map_err(io(dir))
}

/// The temporary directory a checkpoint is written into before [`commit`].
pub fn temporary_dir(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Which checkpoints to delete: all but the latest `limit` (by step), and the best one is
/// always kept in place of the oldest kept (transformers' `_rotate_checkpoints`; with a limit
/// of 1 and a best that is not the latest, both stay).
pub fn rotation(steps: &[usize], best: Option<usize>, limit: i64) -> Vec<usize> {
    if limit < 0 {
        return Vec::new();
    }
    let mut sorted = steps.to_vec();
    sorted.sort_unstable();
    let mut limit = limit as usize;
    if let Some(b) = best {
        if limit == 1 && sorted.last() != Some(&b) {
            limit = 2;
        }
        // Move the best to the end but one, so it is deleted last.
        if let Some(pos) = sorted.iter().position(|&s| s == b) {
            let b = sorted.remove(pos);
            let at = sorted.len().saturating_sub(1);
            sorted.insert(at, b);
        }
    }
    let excess = sorted.len().saturating_sub(limit);
    sorted[..excess].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_parameters_without_gradients_are_absent_not_an_error_and_masters_come_back() {
        let device = Device::flex();
        let t = |v: &[f32]| Tensor::<1>::from_data(TensorData::from(v), &device);
        let dir = tempfile::tempdir().unwrap();
        let mut state = BTreeMap::new();
        state.insert(
            "a".to_string(),
            Moments {
                exp_avg: t(&[1.0, 2.0]),
                exp_avg_sq: t(&[3.0, 4.0]),
            },
        );
        let masters: BTreeMap<String, Tensor<1>> = [("b".to_string(), t(&[5.0, 6.0, 7.0]))].into();
        save_moments(dir.path(), &state, &masters).unwrap();
        let expected: BTreeMap<String, usize> = [("a".into(), 2), ("b".into(), 3)].into();
        let (loaded, masters) = load_moments(dir.path(), &device, &expected).unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), vec!["a"]);
        let master = masters["b"]
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(master, vec![5.0, 6.0, 7.0]);
        assert_eq!(masters.len(), 1);
        let sq = loaded["a"]
            .exp_avg_sq
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(sq, vec![3.0, 4.0]);
        // One moment without the other is a damaged file.
        let half = [("exp_avg.b".to_string(), t(&[0.0; 3]).into_data())];
        save_safetensors(&dir.path().join(OPTIMIZER_FILE), &half, None).unwrap();
        let err = load_moments(dir.path(), &device, &expected).unwrap_err();
        assert!(err.to_string().contains("exp_avg_sq.b"), "{err}");
    }

    #[test]
    fn rotation_keeps_the_best_and_the_latest() {
        assert_eq!(rotation(&[50, 100, 150], None, 2), vec![50]);
        assert_eq!(rotation(&[50, 100, 150], Some(50), 2), vec![100]);
        assert_eq!(rotation(&[50, 100, 150], Some(150), 2), vec![50]);
        assert_eq!(rotation(&[50, 100], Some(50), 1), Vec::<usize>::new());
        assert_eq!(rotation(&[50, 100, 150], Some(50), 1), vec![100]);
        assert_eq!(
            rotation(&[50, 100, 150], Some(100), -1),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn python_keys_of_both_layouts() {
        let none = HashMap::new();
        let k = |p: &str, l| python_key(p, l, &none);
        assert_eq!(
            k("language_model.lm_head.weight", Layout::LlavaHf),
            "lm_head.weight"
        );
        assert_eq!(
            k("language_model.model.norm.weight", Layout::Original),
            "model.norm.weight"
        );
        assert_eq!(
            k("multi_modal_projector.linear_2.bias", Layout::Original),
            "model.mm_projector.2.bias"
        );
        assert_eq!(k("image_newline", Layout::Original), "model.image_newline");
        assert_eq!(
            k(
                "vision_tower.vision_model.post_layernorm.weight",
                Layout::Original
            ),
            "model.vision_tower.vision_tower.vision_model.post_layernorm.weight"
        );
        let source = HashMap::from([("image_newline".to_string(), "image_newline".to_string())]);
        assert_eq!(
            python_key("image_newline", Layout::LlavaHf, &source),
            "image_newline"
        );
    }
}
