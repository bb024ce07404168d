//! `cargo xtask bench-sft`: seconds per fine-tuning step and device memory on full-size shapes
//! with random weights, the twin of `benches/transformers_sft.py` (transformers + PEFT) with
//! the same work: one 640×480 image a sample, a 15-token question, a 15-token caption trained,
//! AdamW lr 1e-4 and weight decay 0.1, clipping at 0.5, LoRA r 8, α 32, dropout 0.05. The step
//! is the trainer's own (`Trainer::step`: forward, backward, clipping, AdamW). One JSON object
//! a variant on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Parser;
use llava::{IMAGE_SENTINEL, Layout, LlavaConfig, LlavaNext};
use llava_data::{ImageCache, ImageRef, Origin, Sample, row::Place};
use llava_llm::DeviceMap;
use llava_template::IGNORE_INDEX;
use llava_train::targets::select_targets;
use llava_train::trainer::{attach_lora, peak_memory_gib, unfreeze_full};
use llava_train::{LrSchedulerType, SftArgs, SftType, Trainer, TrainerParts};
use llava_vision::FetchOptions;
use serde_json::json;

use crate::device::{parse_device, parse_dtype};

#[derive(Parser)]
pub struct Args {
    /// Directory with the model's `config.json`, e.g. benches/configs/llava-v1.6-mistral-7b-hf.
    #[arg(long)]
    pub config: PathBuf,
    /// `cuda`, `cuda:N` or `cpu`.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Parameter and activation dtype.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// What to train, as `benches/transformers_sft.py` names it: `lora-qkv`, `lora-all` or
    /// `full`, then `:gc` (per-layer recompute) or `:nogc`, then `:bN` (rows a step).
    #[arg(long, num_args = 1.., default_values_t = vec!["lora-qkv:gc:b1".to_string()])]
    pub variant: Vec<String>,
    /// Timed steps after the warmup (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps first (kernels compile and autotune in the first).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Keep only this many decoder layers (per-layer costs from a short model).
    #[arg(long)]
    pub num_layers: Option<usize>,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One variant: what trains, whether layers are recomputed, rows a step.
#[derive(Debug, Clone, PartialEq)]
struct Variant {
    name: String,
    sft_type: SftType,
    targets: Option<&'static str>,
    recompute: bool,
    batch: usize,
}

impl Variant {
    fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let [kind, gc, b] = parts[..] else {
            bail!("--variant {s}: expected KIND:gc|nogc:bN, e.g. lora-qkv:gc:b1");
        };
        let (sft_type, targets) = match kind {
            "lora-qkv" => (SftType::Lora, Some("DEFAULT")),
            "lora-all" => (SftType::Lora, Some("ALL")),
            "full" => (SftType::Full, None),
            other => bail!("--variant {s}: {other:?} is not lora-qkv, lora-all or full"),
        };
        let recompute = match gc {
            "gc" => true,
            "nogc" => false,
            other => bail!("--variant {s}: {other:?} is not gc or nogc"),
        };
        let batch = b
            .strip_prefix('b')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .with_context(|| format!("--variant {s}: {b:?} is not bN with N ≥ 1"))?;
        Ok(Self {
            name: s.to_string(),
            sft_type,
            targets,
            recompute,
            batch,
        })
    }
}

pub fn run(args: Args) -> Result<()> {
    let variants = args
        .variant
        .iter()
        .map(|v| Variant::parse(v))
        .collect::<Result<Vec<_>>>()?;
    let mut config = LlavaConfig::from_dir(&args.config)?;
    if let Some(n) = args.num_layers {
        config.text.num_hidden_layers = n;
    }
    let device = parse_device(&args.device)?;
    let work = std::env::temp_dir().join(format!("llava-bench-sft-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let image = work.join("gradient-640x480.png");
    gradient(640, 480)
        .save(&image)
        .with_context(|| format!("writing {}", image.display()))?;
    let model_dir = stand_in_checkpoint(&args.config, &work)?;
    for variant in &variants {
        let line = match measure(&args, &config, &device, variant, &image, &model_dir, &work) {
            Ok(line) => line,
            // Out of memory and the like: reported, the next variant still runs.
            Err(e) => json!({"variant": variant.name, "error": format!("{e:#}")}),
        };
        println!("{line}");
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    args: &Args,
    config: &LlavaConfig,
    device: &Device,
    variant: &Variant,
    image: &Path,
    model_dir: &Path,
    work: &Path,
) -> Result<serde_json::Value> {
    let dtype = parse_dtype(&args.dtype)?;
    let ad = device.clone().autodiff();
    let map = DeviceMap::single(&ad, config.text.num_hidden_layers);
    let started = Instant::now();
    let model = LlavaNext::random(config, &map, dtype, args.seed);
    let sft_args = SftArgs {
        model_type: "bench".into(),
        sft_type: variant.sft_type,
        batch_size: variant.batch,
        gradient_accumulation_steps: Some(1),
        max_steps: (args.warmup + args.steps) as i64,
        learning_rate: Some(1e-4),
        weight_decay: 0.1,
        max_grad_norm: 0.5,
        // The twin's rate is constant.
        lr_scheduler_type: LrSchedulerType::Constant,
        warmup_ratio: 0.0,
        lora_rank: 8,
        lora_alpha: 32.0,
        lora_dropout_p: 0.05,
        gradient_checkpointing: variant.recompute,
        seed: args.seed,
        ..SftArgs::default()
    };
    let (model, targets) = match variant.targets {
        Some(spec) => {
            let mut model = model;
            let all: Vec<String> = model.linears_mut().into_iter().map(|(p, _)| p).collect();
            let targets = select_targets(
                &all,
                &[spec.to_string()],
                &["q_proj", "k_proj", "v_proj"],
                true,
            )?;
            (attach_lora(model, &sft_args, &targets), targets)
        }
        None => (unfreeze_full(model, true), Vec::new()),
    };
    let processor = model.image_processor();
    let cache = ImageCache {
        dir: work.join("cache"),
        fetch: FetchOptions::default(),
        decode: processor.decode_options(),
    };
    let picture = ImageRef::Path(image.to_path_buf());
    let loaded = cache.load(&picture)?;
    let image_tokens = processor.process(&[loaded])?[0].layout.tokens as usize;
    let sample = sample(picture, image_tokens, config.text.vocab_size);
    let seq_len = sample.expanded_len();
    let run_dir = work.join(format!("run-{}", variant.name.replace(':', "-")));
    std::fs::create_dir_all(&run_dir)?;
    let parts = TrainerParts {
        args: sft_args,
        layout: Layout::LlavaHf,
        model_dir: model_dir.to_path_buf(),
        processor,
        cache,
        train: vec![sample; variant.batch],
        validation: Vec::new(),
        run_dir,
        eos_pad: (Some(2), None),
        lora_targets: targets,
        resume: None,
        started: Instant::now(),
    };
    let mut trainer = Trainer::new(model, parts)?;
    let ready = started.elapsed().as_secs_f64();
    let trainable = trainer.trainable_elements();
    let mut times = Vec::with_capacity(args.steps);
    let mut prepares = Vec::with_capacity(args.steps);
    let mut loss = f64::NAN;
    for step in 0..args.warmup + args.steps {
        let clock = Instant::now();
        let record = trainer.step()?;
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("synchronising {device:?}: {e:?}"))?;
        if step >= args.warmup {
            // The twin builds its pixel values once, outside its timed steps: the image
            // loading and tiling of ours is reported apart.
            times.push(clock.elapsed().as_secs_f64() - record.prepare_s);
            prepares.push(record.prepare_s);
        }
        loss = record.loss;
    }
    let s = median(&mut times);
    let reserved = device
        .memory_pool_usage()
        .map(|u| u.bytes_reserved as f64 / (1u64 << 30) as f64);
    Ok(json!({
        "engine": "llava-rs sft step",
        "variant": variant.name,
        "config": args.config.display().to_string(),
        "layers": config.text.num_hidden_layers,
        "dtype": args.dtype,
        "seq_len": seq_len,
        "image_tokens": image_tokens,
        "trainable_params": trainable,
        "s_per_step": round4(s),
        "samples_per_s": round4(variant.batch as f64 / s),
        "tokens_per_s": round4((variant.batch * seq_len) as f64 / s),
        "loss": loss,
        "reserved_gib": reserved.map(round4),
        // The allocator's pages and the process's high-water mark both keep what earlier
        // variants took: compare variants run in separate processes.
        "peak_rss_gib": peak_memory_gib().map(round4),
        "prepare_s": round4(median(&mut prepares)),
        "setup_s": round4(ready),
    }))
}

/// The benchmark's row: `<s>` + 5 question tokens + the image + 10 question tokens + the
/// 15-token caption + `</s>`, the caption and `</s>` trained. The ids are the twin's
/// (1000–1014, 2000–2014), wrapped into a vocabulary smaller than 2,018 (tiny fixtures).
fn sample(image: ImageRef, image_tokens: usize, vocab: usize) -> Sample {
    let wrap = |id: i64| (id - 3) % (vocab as i64 - 3) + 3;
    let question: Vec<i64> = (1000..1015).map(wrap).collect();
    let caption: Vec<i64> = (2000..2015).map(wrap).collect();
    let mut ids = vec![1];
    ids.extend(&question[..5]);
    ids.push(IMAGE_SENTINEL);
    ids.extend(&question[5..]);
    let prompt = ids.len();
    ids.extend(&caption);
    ids.push(2);
    let mut labels = vec![IGNORE_INDEX; prompt];
    labels.extend(&ids[prompt..]);
    Sample {
        input_ids: ids,
        labels,
        images: vec![image],
        image_tokens: vec![image_tokens],
        origin: Origin {
            file: Arc::new(PathBuf::from("bench")),
            place: Place::Line(1),
        },
    }
}

/// A directory with the model's `config.json` and a safetensors file holding no tensors: what
/// the trainer reads of a checkpoint (full fine-tuning asks it for the names its tensors had;
/// with none, ours are used). Nothing is saved in a benchmark.
fn stand_in_checkpoint(config_dir: &Path, work: &Path) -> Result<PathBuf> {
    let dir = work.join("checkpoint");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(config_dir.join("config.json"), dir.join("config.json"))
        .with_context(|| format!("copying {}/config.json", config_dir.display()))?;
    let empty: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
    safetensors::serialize_to_file(empty, None, &dir.join("model.safetensors"))?;
    Ok(dir)
}

/// A colour gradient (content does not change the work).
fn gradient(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width) as u8,
            (y * 255 / height) as u8,
            ((x + y) * 127 / width.max(height)) as u8,
        ])
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_as_the_transformers_twin_names_them() {
        let v = Variant::parse("lora-all:nogc:b4").unwrap();
        assert_eq!(
            (v.sft_type, v.targets, v.recompute, v.batch),
            (SftType::Lora, Some("ALL"), false, 4)
        );
        let v = Variant::parse("full:gc:b1").unwrap();
        assert_eq!(
            (v.sft_type, v.targets, v.recompute),
            (SftType::Full, None, true)
        );
        for bad in [
            "lora",
            "lora-qkv:gc",
            "lora-qkv:maybe:b1",
            "qlora:gc:b1",
            "full:gc:b0",
        ] {
            assert!(Variant::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sample_trains_the_caption_and_the_end_only() {
        let s = sample(ImageRef::Path("x.png".into()), 100, 32064);
        assert_eq!(s.input_ids.len(), 1 + 15 + 1 + 15 + 1);
        assert_eq!(s.expanded_len(), 1 + 15 + 100 + 15 + 1);
        assert_eq!(s.trained_tokens(), 16);
        let trained: Vec<i64> = s
            .labels
            .iter()
            .copied()
            .filter(|&l| l != IGNORE_INDEX)
            .collect();
        assert_eq!(trained.first(), Some(&2000));
        assert_eq!(trained.last(), Some(&2));
        let tiny = sample(ImageRef::Path("x.png".into()), 100, 576);
        assert!(
            tiny.input_ids
                .iter()
                .all(|&id| id < 576 || id == IMAGE_SENTINEL)
        );
    }
}
