//! `llava sft`: ms-swift's `swift sft` (`../shared/spec/swift-llava.md` §5) with its flags in
//! kebab case. Without a model the embedded tiny model trains, so the README's command runs with
//! no download.

use anyhow::{Context, Result};
use llava::ModelInfo;
use llava_train::{SftArgs, TrainDtype};

use crate::args::{DtypeArg, ModelArgs};

/// `llava sft` flags: the shared model flags and every training option.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The model (shared with every command).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Training options.
    #[command(flatten)]
    pub train: SftArgs,
}

/// The model type and source the flags name (the embedded model when they name none).
fn model_of(m: &ModelArgs) -> Result<(String, Option<String>)> {
    if m.ckpt_dir.is_some() {
        anyhow::bail!("llava sft takes --resume-from-checkpoint, not --ckpt-dir");
    }
    Ok(match (&m.model_type, &m.model_id_or_path) {
        (Some(t), source) => (t.clone(), source.clone()),
        (None, None) => (
            crate::embedded::MODEL_TYPE.to_string(),
            Some(crate::embedded::model_dir()?.display().to_string()),
        ),
        (None, Some(source)) => {
            let info = match ModelInfo::for_hub_id(source) {
                Some(info) => info,
                None => ModelInfo::infer_from_dir(std::path::Path::new(source))?,
            };
            (info.model_type.to_string(), Some(source.clone()))
        }
    })
}

/// Trains and prints where the run went.
pub fn run(args: Args) -> Result<()> {
    if args.model.quant_method()? != llava::QuantMethod::None {
        anyhow::bail!(
            "--quant-method / --quant-bits: training on a quantized base (QLoRA) is not built yet; \
             train on the checkpoint's weights"
        );
    }
    let (model_type, source) = model_of(&args.model)?;
    let mut train = args.train;
    train.model_type = model_type;
    train.model_id_or_path = source;
    train.dtype = match args.model.dtype {
        DtypeArg::Auto => TrainDtype::Auto,
        DtypeArg::F32 => TrainDtype::F32,
        DtypeArg::Bf16 => TrainDtype::Bf16,
        DtypeArg::F16 => TrainDtype::F16,
    };
    train.device = Some(args.model.device.device()?);
    let out = llava_train::sft(train).context("fine-tuning failed")?;
    if let Some(last) = out.records.last() {
        println!(
            "step {}: loss {:.4}, token accuracy {:.3}",
            last.step, last.loss, last.acc
        );
    }
    println!("run directory: {}", out.run_dir.display());
    if let Some(p) = &out.last_checkpoint {
        println!("last checkpoint: {}", p.display());
    }
    if let Some(p) = &out.best_checkpoint {
        println!("best checkpoint: {}", p.display());
    }
    Ok(())
}
