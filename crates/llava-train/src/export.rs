//! `export --merge-lora`: a LoRA checkpoint folded into its base model and written as a model
//! directory transformers loads, `<ckpt>-merged/` (`../shared/spec/swift-llava.md` §7). The
//! merge is `W + s·B·A` computed in f32 and rounded once to the saved dtype (ms-swift rounds
//! `B·A` in bf16 first; docs/training.md).

use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device};
use llava_model::{LlavaConfig, ModelKwargs, get_model_tokenizer};

use crate::args::{SftArgs, SftType};
use crate::checkpoint::{
    self, copy_model_files, python_key, save_sharded, source_keys, write_json,
};
use crate::error::{Result, TrainError, io};
use crate::params::named_tensors;

/// Options of `export`.
#[derive(Debug, Clone, Default)]
pub struct ExportArgs {
    /// A LoRA checkpoint written by `sft`.
    pub ckpt_dir: PathBuf,
    /// Fold the adapter into the base weights (the only export there is for now).
    pub merge_lora: bool,
    /// Where the merge runs (the CPU when unset).
    pub device: Option<Device>,
}

/// The directory `export` writes for `ckpt_dir`: `<parent>/<name>-merged`.
pub fn merged_dir(ckpt_dir: &Path) -> PathBuf {
    let name = ckpt_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "checkpoint".into());
    ckpt_dir.with_file_name(format!("{name}-merged"))
}

/// Merges `args.ckpt_dir`'s adapter into its base and writes `<ckpt>-merged/` (atomically;
/// an existing one is kept, as ms-swift does). Returns the merged directory.
pub fn export(args: &ExportArgs) -> Result<PathBuf> {
    if !args.merge_lora {
        return Err(TrainError::Args(
            "export does one thing for now: --merge-lora true".into(),
        ));
    }
    let ckpt = &args.ckpt_dir;
    let bad = |m: String| TrainError::Args(format!("--ckpt-dir {}: {m}", ckpt.display()));
    if !ckpt.is_dir() {
        return Err(bad("no such directory".into()));
    }
    if !ckpt.join(llava_nn::lora::CONFIG_FILE).is_file() {
        return Err(bad("no adapter_config.json: not a LoRA checkpoint".into()));
    }
    let sft_args_path = ckpt.join("sft_args.json");
    if !sft_args_path.is_file() {
        return Err(bad("no sft_args.json: the base model is not known".into()));
    }
    let sft: SftArgs = checkpoint::read_json(&sft_args_path)?;
    if sft.sft_type != SftType::Lora {
        return Err(bad(format!("its sft_type is {:?}, not lora", sft.sft_type)));
    }
    let target = merged_dir(ckpt);
    if target.exists() {
        tracing::warn!(merged = %target.display(), "already merged; kept as it is");
        return Ok(target);
    }
    let device = args.device.clone().unwrap_or_else(Device::flex);
    let (mut model, _) = get_model_tokenizer(
        &sft.model_type,
        Some(DType::F32),
        ModelKwargs {
            model_id_or_path: sft.model_id_or_path.clone(),
            device,
            adapter: Some(ckpt.clone()),
            ..ModelKwargs::default()
        },
    )?;
    let base_dir = model.model_dir.clone();
    let config = LlavaConfig::from_dir(&base_dir)?;
    let saved = config.torch_dtype.unwrap_or(DType::F32);
    model.llava.merge_lora();
    let keys = source_keys(&base_dir)?;
    let layout = model.llava.layout();
    let tensors: Vec<_> = named_tensors(&model.llava)
        .into_iter()
        .map(|(p, d)| (python_key(&p, layout, &keys), d.convert_dtype(saved)))
        .collect();
    let tmp = checkpoint::temporary_dir(&target);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    save_sharded(&tmp, tensors, 5 << 30)?;
    copy_model_files(&base_dir, &tmp)?;
    // The training-time generation config wins over the base model's, as in ms-swift.
    for name in ["generation_config.json", "preprocessor_config.json"] {
        let from = ckpt.join(name);
        if from.is_file() {
            std::fs::copy(&from, tmp.join(name)).map_err(io(&from))?;
        }
    }
    let mut configuration = checkpoint::configuration_json(ckpt, None);
    if let Some(obj) = configuration.as_object_mut() {
        obj.remove("adapter_cfg");
    }
    write_json(&tmp.join("configuration.json"), &configuration)?;
    let merged_args = SftArgs {
        sft_type: SftType::Full,
        ..sft
    };
    write_json(&tmp.join("sft_args.json"), &merged_args)?;
    checkpoint::commit(&tmp, &target)?;
    tracing::info!(merged = %target.display(), "LoRA merged");
    Ok(target)
}
