//! `cargo xtask bench`: time to first token, decode speed, load time and device memory of the
//! full LLaVA-NeXT path (image preprocessing, vision tower, projector, packing, prefill,
//! greedy decode) on full-size shapes with random weights, as `benches/transformers_llava.py`
//! measures transformers on the same GPUs. One JSON object per measured run on stdout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Parser;
use llava::{IMAGE_SENTINEL, LlavaConfig, LlavaNext, Prompt, RgbImage};
use llava_checkpoint::Progress;
use llava_llm::{DeviceMap, GenerateOptions, LoadOptions};
use serde_json::json;

use crate::device::{parse_dtype, parse_placement, parse_sizes};

#[derive(Parser)]
pub struct Args {
    /// Directory with the model's `config.json` (either layout), e.g. benches/configs/NAME.
    #[arg(long)]
    pub config: PathBuf,
    /// `cuda`, `cuda:N`, or a comma-separated list with `--device-map`.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// `auto` or layer ranges (`0-39:cuda:0,40-79:cuda:1`), as in `cargo xtask infer`.
    #[arg(long)]
    pub device_map: Option<String>,
    /// Parameter and activation dtype.
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Side of the square test image (a colour gradient), in pixels; 0 for a text-only prompt.
    #[arg(long, default_value_t = 672)]
    pub image_size: u32,
    /// Text tokens of the question (random ids, seeded).
    #[arg(long, default_value_t = 30)]
    pub prompt_tokens: usize,
    /// New tokens per run, greedy, end-of-sequence ignored.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Batch sizes to measure, comma-separated (the same prompt repeated).
    #[arg(long, default_value = "1")]
    pub batch: String,
    /// Untimed runs of each batch size before the timed one (the first compiles and autotunes
    /// the kernels; its times are reported as `cold`).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Keep only this many decoder layers (per-layer costs from a short model; the shapes stay).
    #[arg(long)]
    pub num_layers: Option<usize>,
    /// Seed of the weights and the prompt.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Load these weights (a checkpoint directory, e.g. the one
    /// `benches/transformers_llava.py --save-weights` writes) instead of random ones.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Write the prefill logits of the batch-1 prompt here (f32, little-endian, row-major
    /// `[positions, vocab]`), for `benches/transformers_llava.py --compare-logits`.
    #[arg(long)]
    pub dump_logits: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let mut config = LlavaConfig::from_dir(&args.config)?;
    if let Some(n) = args.num_layers {
        config.text.num_hidden_layers = n;
    }
    let dtype = parse_dtype(&args.dtype)?;
    let (devices, spec) = parse_placement(&args.device, args.device_map.as_deref())?;
    let map = match &spec {
        Some(spec) => spec.resolve(&config, dtype)?,
        None => DeviceMap::single(&devices[0], config.text.num_hidden_layers),
    };
    let batches = parse_sizes("--batch", &args.batch)?;
    if batches.contains(&0) {
        bail!("--batch: sizes must be at least 1");
    }
    eprintln!("placement: {}", llava::describe_device_map(&map));

    let start = Instant::now();
    let model = match &args.weights {
        Some(dir) => {
            let options = LoadOptions {
                dtype,
                progress: Progress::Auto,
                device_map: Some(map.clone()),
            };
            LlavaNext::from_pretrained(dir, &devices[0], &options)
                .with_context(|| format!("loading {}", dir.display()))?
        }
        None => LlavaNext::random(&config, &map, dtype, args.seed),
    };
    sync_all(&map)?;
    let load = start.elapsed();
    eprintln!("weights ready in {:.1} s", load.as_secs_f64());
    let weights = memory(&map);

    let prompt = test_prompt(&model, &args)?;
    if let Some(path) = &args.dump_logits {
        dump_logits(&model, &prompt, path)?;
    }
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
        ..GenerateOptions::default()
    };
    let common = json!({
        "config": args.config.display().to_string(),
        "dtype": args.dtype,
        "device_map": llava::describe_device_map(&map),
        "image_size": args.image_size,
        "prompt_tokens": args.prompt_tokens,
        "num_layers": config.text.num_hidden_layers,
        "max_new_tokens": args.max_new_tokens,
        "load_s": load.as_secs_f64(),
        "weights_reserved_gib": weights,
    });
    for &batch in &batches {
        let prompts = vec![prompt.clone(); batch];
        let mut cold = None;
        for i in 0..args.warmup {
            let timing = time_generation(&model, &prompts, &options)?;
            eprintln!("batch {batch}, warm-up {i}: {}", timing.summary());
            cold.get_or_insert(timing);
        }
        #[cfg(feature = "cuda")]
        let _ = llava_ops::cuda::report(); // the timed run's statistics alone
        let timing = time_generation(&model, &prompts, &options)?;
        eprintln!("batch {batch}: {}", timing.summary());
        let mut record = common.clone();
        let fields = json!({
            "batch": batch,
            "prompt_len": timing.prompt_len,
            "ttft_ms": timing.ttft.as_secs_f64() * 1e3,
            "decode_tok_s": timing.decode_tokens_per_s(),
            "decode_ms_per_step": timing.ms_per_step(),
            "first_decode_step_ms": timing.first_step.as_secs_f64() * 1e3,
            "graph_replay": timing.graph,
            "new_tokens": timing.steps,
            "cold_ttft_ms": cold.as_ref().map(|c| c.ttft.as_secs_f64() * 1e3),
            "cold_total_s": cold.as_ref().map(|c| (c.ttft + c.decode).as_secs_f64()),
            "reserved_gib": memory(&map),
        });
        merge(&mut record, fields);
        println!("{record}");
        #[cfg(feature = "cuda")]
        if std::env::var_os("LLAVA_OPS_STATS").is_some() {
            eprintln!(
                "llava-ops route, batch {batch}:\n{}",
                llava_ops::cuda::report()
            );
        }
    }
    Ok(())
}

/// The prompt: `<image>` then `prompt_tokens` random text ids (no template: the shapes are
/// what is measured).
fn test_prompt(model: &LlavaNext, args: &Args) -> Result<Prompt> {
    let vocab = model.config().text.vocab_size as u64;
    let mut state = args.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut ids: Vec<i64> = Vec::with_capacity(args.prompt_tokens + 1);
    let mut images = Vec::new();
    if args.image_size > 0 {
        ids.push(IMAGE_SENTINEL);
        images.push(model.process_image(&gradient(args.image_size))?);
    }
    for _ in 0..args.prompt_tokens {
        // A linear congruential stream: reproducible without another dependency.
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ids.push(((state >> 33) % (vocab.min(30000) - 100) + 100) as i64);
    }
    Ok(Prompt { ids, images })
}

/// A square RGB gradient (content does not change the work).
fn gradient(side: u32) -> RgbImage {
    let mut pixels = Vec::with_capacity((side * side * 3) as usize);
    for y in 0..side {
        for x in 0..side {
            pixels.extend([
                (x * 255 / side) as u8,
                (y * 255 / side) as u8,
                ((x + y) * 127 / side) as u8,
            ]);
        }
    }
    RgbImage::new(side, side, pixels).expect("side × side × 3 bytes")
}

struct Timing {
    prompt_len: usize,
    ttft: Duration,
    decode: Duration,
    /// The first decode step alone (it records the CUDA graph where one is used).
    first_step: Duration,
    /// Whether decode steps replayed a recorded CUDA graph.
    graph: bool,
    steps: usize,
    batch: usize,
}

impl Timing {
    /// Tokens per second per row after the first token.
    fn decode_tokens_per_s(&self) -> f64 {
        if self.steps <= 1 {
            return 0.0;
        }
        (self.steps - 1) as f64 / self.decode.as_secs_f64()
    }

    fn ms_per_step(&self) -> f64 {
        if self.steps <= 1 {
            return 0.0;
        }
        self.decode.as_secs_f64() * 1e3 / (self.steps - 1) as f64
    }

    fn summary(&self) -> String {
        format!(
            "prompt {} positions, first token {:.1} ms, {} steps at {:.1} tok/s per row ({:.1} tok/s in all; first decode step {:.1} ms, it records the graph where one is replayed; graph replay {})",
            self.prompt_len,
            self.ttft.as_secs_f64() * 1e3,
            self.steps,
            self.decode_tokens_per_s(),
            self.decode_tokens_per_s() * self.batch as f64,
            self.first_step.as_secs_f64() * 1e3,
            if self.graph { "on" } else { "off" }
        )
    }
}

/// From the preprocessed prompt to the first sampled token (vision tower, projector, packing,
/// prefill, sampling), then every further step; each step reads its token ids back, so the
/// clock sees finished GPU work.
fn time_generation(
    model: &LlavaNext,
    prompts: &[Prompt],
    options: &GenerateOptions,
) -> Result<Timing> {
    let start = Instant::now();
    let mut generator = model.generator(prompts, options.clone())?;
    let first = generator.step()?;
    let ttft = start.elapsed();
    let mut steps = usize::from(first.is_some());
    let decode_start = Instant::now();
    let mut first_step = Duration::ZERO;
    while generator.step()?.is_some() {
        steps += 1;
        if steps == 2 {
            first_step = decode_start.elapsed();
        }
    }
    let decode = decode_start.elapsed();
    let prompt_len = generator.prompt_len();
    Ok(Timing {
        prompt_len,
        ttft,
        decode,
        first_step,
        graph: generator.graph_replay(),
        steps,
        batch: prompts.len(),
    })
}

/// The prefill logits of `prompt` as raw little-endian f32, `[positions, vocab]`.
fn dump_logits(model: &LlavaNext, prompt: &Prompt, path: &std::path::Path) -> Result<()> {
    let (logits, _) = model.forward(std::slice::from_ref(prompt))?;
    let [_, positions, vocab] = logits.dims();
    let values = logits
        .cast(burn::tensor::DType::F32)
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the logits back: {e:?}"))?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "prefill logits [{positions}, {vocab}] written to {}",
        path.display()
    );
    Ok(())
}

fn sync_all(map: &DeviceMap) -> Result<()> {
    for device in map.devices() {
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("synchronising {device:?}: {e:?}"))?;
    }
    Ok(())
}

/// GiB the allocator of each device holds (reserved pages, as `torch.cuda.memory_reserved`).
fn memory(map: &DeviceMap) -> Vec<Option<f64>> {
    map.devices()
        .iter()
        .map(|d: &Device| {
            d.memory_pool_usage()
                .map(|u| u.bytes_reserved as f64 / (1u64 << 30) as f64)
        })
        .collect()
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
