//! `sft`: a model type, its checkpoint and datasets → a run directory with checkpoints, the way
//! `swift sft` goes about it (`../shared/spec/swift-llava.md` §5).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{DType, Device};
use llava_data::{DataOptions, DatasetSpec, Encoder, ImageCache, encode_rows, load_datasets};
use llava_model::{ModelInfo, ModelKwargs, get_model_tokenizer};
use llava_nn::PeftAdapter;
use llava_template::get_template;
use llava_vision::FetchOptions;

use crate::args::{SftArgs, SftType, TrainDtype};
use crate::checkpoint::{self, ResumeState, STATE_FILE};
use crate::error::{Result, TrainError};
use crate::output::make_run_dir;
use crate::targets::select_targets;
use crate::trainer::{EvalRecord, StepRecord, Trainer, TrainerParts, attach_lora, unfreeze_full};

/// What a run produced.
#[derive(Debug, Clone)]
pub struct SftOutput {
    /// `output/<model_type>/v<N>-<timestamp>/`.
    pub run_dir: PathBuf,
    /// The last checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// The checkpoint with the lowest evaluation loss.
    pub best_checkpoint: Option<PathBuf>,
    /// Optimizer steps done (including resumed ones).
    pub global_step: usize,
    /// Every step of this process.
    pub records: Vec<StepRecord>,
    /// Every evaluation of this process.
    pub evals: Vec<EvalRecord>,
}

/// The cache of shipped datasets and fetched images: `$XDG_CACHE_HOME/llava-rs`, else
/// `~/.cache/llava-rs`, else the temporary directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("llava-rs")
}

/// Fine-tunes as `args` says, on `args.device` (the CPU when unset; autodiff is switched on
/// here).
pub fn sft(mut args: SftArgs) -> Result<SftOutput> {
    let started = std::time::Instant::now();
    args.check()?;
    let device = &args.device.clone().unwrap_or_else(Device::flex);
    let info = ModelInfo::find(&args.model_type)?;
    let resume = match &args.resume_from_checkpoint {
        Some(dir) => Some(read_resume(dir, &args)?),
        None => None,
    };
    let dtype = match args.dtype {
        TrainDtype::Auto if *device == Device::flex() => Some(DType::F32),
        TrainDtype::Auto => Some(DType::BF16),
        TrainDtype::F32 => Some(DType::F32),
        TrainDtype::Bf16 => Some(DType::BF16),
        TrainDtype::F16 => Some(DType::F16),
    };
    let full_resume = args.sft_type == SftType::Full && resume.is_some();
    let source = match (&resume, full_resume) {
        (Some((dir, _)), true) => Some(dir.display().to_string()),
        _ => args.model_id_or_path.clone(),
    };
    let (model, tokenizer) = get_model_tokenizer(
        info.model_type,
        dtype,
        ModelKwargs {
            model_id_or_path: source,
            device: device.clone().autodiff(),
            ..ModelKwargs::default()
        },
    )?;
    if args.model_id_or_path.is_none() {
        args.model_id_or_path = Some(model.model_dir.display().to_string());
    }
    let eos = tokenizer.eos_token_id();
    let mut template = get_template(
        args.template_type.as_deref().unwrap_or(info.template_type),
        tokenizer,
    )?;
    if let Some(system) = &args.system {
        template = template.with_default_system(system.clone())?;
    }
    args.template_type = Some(template.name().to_string());
    let processor = model.llava.image_processor();
    let max_length = match args.max_length {
        None => Some(model.max_model_len),
        Some(n) if n <= 0 => None,
        Some(n) => Some(n as usize),
    };

    let data = load_datasets(&DataOptions {
        dataset: DatasetSpec::parse_list(&args.dataset)?,
        val_dataset: DatasetSpec::parse_list(&args.val_dataset)?,
        dataset_test_ratio: args.dataset_test_ratio,
        dataset_seed: args.dataset_seed,
        cache_dir: cache_dir().join("datasets"),
        dataset_dirs: args.dataset_dir.clone(),
        hub_cache: Some(llava_model::HubOptions::from_env().cache_dir),
    })?;
    let cache = ImageCache {
        dir: cache_dir().join("images"),
        fetch: FetchOptions::default(),
        decode: processor.decode_options(),
    };
    let encoder = Encoder {
        template,
        processor: processor.clone(),
        max_length,
        truncation: args.truncation_strategy,
    };
    let (train, _) = encode_rows(&encoder, &cache, &data.train, "training")?;
    let validation = if data.validation.is_empty() {
        Vec::new()
    } else {
        encode_rows(&encoder, &cache, &data.validation, "validation")?.0
    };
    tracing::info!(
        train = train.len(),
        validation = validation.len(),
        "dataset rows checked and encoded"
    );

    let mut llava = model.llava;
    let mut lora_targets = Vec::new();
    match args.sft_type {
        SftType::Lora => {
            if let Some((dir, _)) = &resume {
                let adapter = PeftAdapter::load(dir)?;
                llava = llava.no_grad();
                llava.attach_adapter(&adapter)?;
                lora_targets = llava
                    .linears_mut()
                    .into_iter()
                    .filter(|(_, l)| l.lora.is_some())
                    .map(|(p, _)| p)
                    .collect();
            } else {
                let all: Vec<String> = llava.linears_mut().into_iter().map(|(p, _)| p).collect();
                lora_targets = select_targets(
                    &all,
                    &args.lora_target_modules,
                    info.lora_target_modules,
                    args.freeze_vit,
                )?;
                llava = attach_lora(llava, &args, &lora_targets);
            }
        }
        SftType::Full => llava = unfreeze_full(llava, args.freeze_vit),
    }
    let run_dir = make_run_dir(
        &args.output_dir,
        info.model_type,
        args.add_output_dir_suffix,
    )?;
    checkpoint::write_json(&run_dir.join("sft_args.json"), &args)?;
    tracing::info!(run = %run_dir.display(), "training");
    let resume_state = match (&resume, args.resume_only_model) {
        (Some((dir, Some(state))), false) => Some((dir.clone(), state.clone())),
        _ => None,
    };
    let parts = TrainerParts {
        args,
        layout: llava.layout(),
        model_dir: model.model_dir,
        processor,
        cache,
        train,
        validation,
        run_dir: run_dir.clone(),
        eos_pad: (eos, eos),
        lora_targets,
        resume: resume_state,
        started,
    };
    let mut trainer = Trainer::new(llava, parts)?;
    trainer.run()?;
    Ok(SftOutput {
        run_dir,
        last_checkpoint: trainer.last_checkpoint(),
        best_checkpoint: trainer.best_checkpoint(),
        global_step: trainer.global_step(),
        records: trainer.records.clone(),
        evals: trainer.evals.clone(),
    })
}

/// The checkpoint to resume from and its state (absent only for a weights-only resume from a
/// directory of weights, such as a PEFT adapter). Another model type or sft type is refused.
fn read_resume(dir: &Path, args: &SftArgs) -> Result<(PathBuf, Option<ResumeState>)> {
    let bad = |message: String| TrainError::Resume {
        path: dir.to_path_buf(),
        message,
    };
    if !dir.is_dir() {
        return Err(bad("no such directory".into()));
    }
    let path = dir.join(STATE_FILE);
    if !path.is_file() {
        if args.resume_only_model {
            return Ok((dir.to_path_buf(), None));
        }
        return Err(bad(format!(
            "no {STATE_FILE} (not a llava-rs checkpoint, or an unfinished one); --resume-only-model true takes its weights alone"
        )));
    }
    let state: ResumeState = checkpoint::read_json(&path)?;
    if state.model_type != args.model_type {
        return Err(bad(format!(
            "it is a checkpoint of model type {}, this run trains {}",
            state.model_type, args.model_type
        )));
    }
    if state.sft_type != args.sft_type {
        return Err(bad(format!(
            "it is a {:?} checkpoint, this run's --sft-type is {:?}",
            state.sft_type, args.sft_type
        )));
    }
    Ok((dir.to_path_buf(), Some(state)))
}
