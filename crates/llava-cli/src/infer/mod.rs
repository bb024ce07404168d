//! `llava infer`: the `swift infer` REPL, and a one-shot mode for scripts.

mod args;
mod dataset_eval;
mod repl;
mod result_file;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use llava::{
    GenerationConfig, ImageInput, InferArgs, ModelInfo, ModelKwargs, get_default_template_type,
    get_model_tokenizer, get_template, inference_with_info, read_sft_args,
};
use llava_checkpoint::Progress;
use serde_json::json;

pub use args::Args;

use crate::args::DtypeArg;

/// What `--ckpt-dir` and the flags resolve to.
struct Target {
    model_type: String,
    source: Option<String>,
    adapter: Option<PathBuf>,
    template_type: Option<String>,
    system: Option<String>,
    dtype: DtypeArg,
    /// Where `infer_result/` goes.
    result_base: Option<PathBuf>,
}

fn target(args: &Args) -> Result<Target> {
    let m = &args.model;
    let mut t = Target {
        model_type: String::new(),
        source: m.model_id_or_path.clone(),
        adapter: None,
        template_type: (args.template_type != "AUTO").then(|| args.template_type.clone()),
        system: args.system.clone(),
        dtype: m.dtype,
        result_base: None,
    };
    let mut model_type = m.model_type.clone();
    if let Some(ckpt) = &m.ckpt_dir {
        if !ckpt.is_dir() {
            bail!("--ckpt-dir {}: no such directory", ckpt.display());
        }
        // ms-swift reads these from the checkpoint unless given on the command line.
        if let Some(sft) = read_sft_args(ckpt)? {
            let get = |k: &str| sft.get(k).and_then(|v| v.as_str()).map(String::from);
            model_type = model_type.or(get("model_type"));
            t.source = t.source.or(get("model_id_or_path"));
            t.template_type = t
                .template_type
                .or(get("template_type").filter(|s| s != "AUTO"));
            t.system = t.system.or(get("system"));
            if t.dtype == DtypeArg::Auto
                && let Some(dtype) = get("dtype")
            {
                t.dtype = dtype.parse().with_context(|| {
                    format!("{}: key dtype", ckpt.join("sft_args.json").display())
                })?;
            }
        }
        let adapter_config = ckpt.join("adapter_config.json");
        if adapter_config.is_file() {
            t.adapter = Some(ckpt.clone());
            // The adapter's base, as ms-swift and PEFT find it, when nothing else named it.
            if t.source.is_none() {
                let text = std::fs::read_to_string(&adapter_config)
                    .with_context(|| format!("reading {}", adapter_config.display()))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{}: not JSON", adapter_config.display()))?;
                match value["base_model_name_or_path"].as_str() {
                    Some(base) if !base.is_empty() => t.source = Some(base.to_string()),
                    _ => bail!(
                        "--ckpt-dir {}: a LoRA adapter whose base model is named neither in \
                         sft_args.json (model_id_or_path) nor in adapter_config.json \
                         (base_model_name_or_path); pass --model-id-or-path",
                        ckpt.display()
                    ),
                }
            }
        } else if ckpt.join("config.json").is_file() {
            t.source = Some(ckpt.display().to_string());
        } else {
            bail!(
                "--ckpt-dir {}: neither a LoRA adapter (adapter_config.json) nor a model \
                 (config.json) is there",
                ckpt.display()
            );
        }
        t.result_base = Some(ckpt.clone());
    }
    t.model_type = match (model_type, &t.source) {
        (Some(m), _) => m,
        (None, None) => {
            let dir = crate::embedded::model_dir()?;
            t.source = Some(dir.display().to_string());
            // The embedded model's results go where the user is, never beside the model.
            t.result_base = Some(std::env::current_dir().context("reading the current directory")?);
            crate::embedded::MODEL_TYPE.to_string()
        }
        (None, Some(source)) => match ModelInfo::for_hub_id(source) {
            Some(info) => info.model_type.to_string(),
            None => ModelInfo::infer_from_dir(std::path::Path::new(source))?
                .model_type
                .to_string(),
        },
    };
    Ok(t)
}

fn generation_config(args: &Args) -> GenerationConfig {
    let greedy = !args.do_sample || args.temperature == 0.0;
    GenerationConfig {
        max_new_tokens: Some(args.max_new_tokens),
        do_sample: !greedy,
        temperature: if greedy { 1.0 } else { args.temperature },
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        seed: Some(args.seed),
        ..GenerationConfig::default()
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.list_models {
        for m in llava::MODELS {
            println!(
                "{:36} {:24} {}",
                m.model_type, m.template_type, m.hf_model_id
            );
        }
        return Ok(());
    }
    let t = target(&args)?;
    let (devices, device_map) = args
        .model
        .device
        .placement(args.model.device_map.as_deref())?;
    let (model, tokenizer) = get_model_tokenizer(
        &t.model_type,
        t.dtype.dtype(),
        ModelKwargs {
            model_id_or_path: t.source.clone(),
            device: devices[0].clone(),
            device_map,
            revision: args.model.model_revision.clone(),
            progress: Progress::Auto,
            adapter: t.adapter.clone(),
            quant_method: args.model.quant_method()?,
            ..ModelKwargs::default()
        },
    )?;
    let template_type = match &t.template_type {
        Some(name) => name.clone(),
        None => get_default_template_type(&t.model_type)?.to_string(),
    };
    let template = get_template(&template_type, tokenizer)?;
    let base = InferArgs {
        system: t.system.clone(),
        generation_config: Some(generation_config(&args)),
        stop_words: args.stop_words.clone(),
        fetch: llava::FetchOptions {
            timeout: std::time::Duration::from_secs_f64(args.image_timeout),
            deadline: std::time::Duration::from_secs_f64(args.image_deadline),
            max_bytes: (args.image_max_mib as u64) << 20,
        },
        decode: (args.max_image_pixels.is_some() || args.max_image_side.is_some()).then(|| {
            let own = model.llava.processor().decode_options();
            llava::DecodeOptions {
                max_pixels: args.max_image_pixels.unwrap_or(own.max_pixels),
                max_side: args.max_image_side.unwrap_or(own.max_side),
                ..own
            }
        }),
        ..InferArgs::default()
    };
    if let Some(query) = &args.query {
        return one_shot(&args, &model, &template, query, base);
    }
    if dataset_eval::wanted(&args) {
        let rows = dataset_eval::rows(&args)?;
        let dir = args.result_dir.clone().unwrap_or_else(|| {
            t.result_base
                .clone()
                .unwrap_or_else(|| model.model_dir.clone())
                .join("infer_result")
        });
        return dataset_eval::run(&args, &model, &template, base, &rows, &dir);
    }
    let results = if args.save_result {
        let dir = args.result_dir.clone().unwrap_or_else(|| {
            t.result_base
                .clone()
                .unwrap_or_else(|| model.model_dir.clone())
                .join("infer_result")
        });
        Some(result_file::ResultFile::create(&dir)?)
    } else {
        None
    };
    let mut session = repl::Session {
        model: &model,
        template: &template,
        base,
        stream: args.stream,
        results,
    };
    let stdin = std::io::stdin();
    repl::run(
        &mut session,
        &mut stdin.lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

fn one_shot(
    args: &Args,
    model: &llava::Model,
    template: &llava::Template,
    query: &str,
    base: InferArgs,
) -> Result<()> {
    let images: Vec<ImageInput> = args.images.iter().map(|i| ImageInput::parse(i)).collect();
    let system = base.system.clone();
    let inputs = InferArgs {
        images: images.clone(),
        ..base
    };
    let (response, _, info) = inference_with_info(model, template, query, inputs)?;
    if let (true, Some(dir)) = (args.save_result, &args.result_dir) {
        let mut results = result_file::ResultFile::create(dir)?;
        results.append(
            system.as_deref(),
            query,
            &response,
            &llava::History::default(),
            &images,
        )?;
        eprintln!("save_result_path: {}", results.path().display());
    }
    let mut out = std::io::stdout().lock();
    if args.output_format == "json" {
        let value = json!({
            "response": response,
            "token_ids": info.token_ids,
            "prompt_tokens": info.prompt_tokens,
            "image_tokens": info.image_tokens,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{response}")?;
    }
    Ok(())
}
