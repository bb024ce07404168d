//! `cargo xtask generate`: prompt → token ids and text, for a decoder checkpoint on disk.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use llava_checkpoint::Progress;
use llava_llm::sampling::SamplingParams;
use llava_llm::{CausalLm, GenerateOptions, GenerationConfig, LoadOptions, generate};
use tokenizers::Tokenizer;

use crate::device::{parse_device, parse_dtype};

/// The embedded default model: a committed tiny Llama 3 fixture.
const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/decoders/llama3");
const DEFAULT_PROMPT: &str = "The quick brown fox jumps over the lazy dog, then rests.";

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory: config.json, model.safetensors or shards, tokenizer.json for
    /// --prompt, generation_config.json for defaults.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model_dir: PathBuf,
    /// Text prompt (tokenised with the directory's tokenizer.json, special tokens added).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompt: Option<String>,
    /// Prompt as token ids, comma separated.
    #[arg(long, value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// Tokens to generate (default: generation_config.json's, else 32).
    #[arg(long, value_parser = llava_cli::args::at_least_one)]
    max_new_tokens: Option<usize>,
    /// A PEFT LoRA adapter directory to apply.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Fold the adapter into the weights before generating.
    #[arg(long, requires = "adapter")]
    merge_lora: bool,
    /// Greedy decoding (overrides generation_config.json).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    greedy: bool,
    /// Sample with this temperature (0 means greedy, as ms-swift treats it).
    #[arg(long, value_parser = llava_cli::args::temperature)]
    temperature: Option<f64>,
    /// Keep the k most likely tokens when sampling (transformers' default 50; 0 disables).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus mass when sampling.
    #[arg(long)]
    top_p: Option<f64>,
    /// Penalty on tokens already in the sequence.
    #[arg(long)]
    repetition_penalty: Option<f64>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep generating past end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Parameter dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Print `{"token_ids": [...], "text": "..."}`.
    #[arg(long)]
    json: bool,
}

fn sampling(args: &Args, defaults: &GenerationConfig) -> SamplingParams {
    let mut params = defaults.sampling();
    if args.greedy || args.temperature == Some(0.0) {
        params.do_sample = false;
    } else if args.temperature.is_some() || args.top_k.is_some() || args.top_p.is_some() {
        params.do_sample = true;
    }
    if let Some(t) = args.temperature.filter(|&t| t > 0.0) {
        params.temperature = t;
    }
    if let Some(k) = args.top_k {
        params.top_k = k;
    }
    if let Some(p) = args.top_p {
        params.top_p = p;
    }
    if let Some(r) = args.repetition_penalty {
        params.repetition_penalty = r;
    }
    params
}

pub fn run(args: Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let dir = &args.model_dir;
    let tokenizer_path = dir.join("tokenizer.json");
    let tokenizer = tokenizer_path
        .is_file()
        .then(|| Tokenizer::from_file(&tokenizer_path))
        .transpose()
        .map_err(|e| anyhow::anyhow!("{}: {e}", tokenizer_path.display()))?;
    let prompt_ids: Vec<u32> = match (&args.prompt_ids, &args.prompt, &tokenizer) {
        (Some(ids), _, _) => ids.clone(),
        (None, prompt, Some(tok)) => {
            let text = prompt.as_deref().unwrap_or(DEFAULT_PROMPT);
            tok.encode(text, true)
                .map_err(|e| anyhow::anyhow!("tokenizing the prompt: {e}"))?
                .get_ids()
                .to_vec()
        }
        (None, _, None) => bail!(
            "{} has no tokenizer.json: pass --prompt-ids instead of --prompt",
            dir.display()
        ),
    };

    let started = Instant::now();
    let options = LoadOptions {
        dtype,
        progress: Progress::Auto,
        ..Default::default()
    };
    let mut model = CausalLm::from_pretrained(dir, &device, &options)
        .with_context(|| format!("loading {}", dir.display()))?;
    if let Some(adapter) = &args.adapter {
        let n = model
            .load_adapter(adapter)
            .with_context(|| format!("applying {}", adapter.display()))?;
        tracing::info!(layers = n, "adapter attached");
        if args.merge_lora {
            model.merge_lora();
        }
    }
    let load_time = started.elapsed();

    let defaults = GenerationConfig::from_model_dir(dir)?;
    let mut eos = defaults.eos_token_ids();
    if eos.is_empty() {
        eos = model.config().eos_token_ids();
    }
    let options = GenerateOptions {
        max_new_tokens: args
            .max_new_tokens
            .or(defaults.max_new_tokens)
            .unwrap_or(32),
        sampling: sampling(&args, &defaults),
        seed: args.seed,
        eos_token_ids: if args.ignore_eos { vec![] } else { eos },
    };
    let started = Instant::now();
    let ids = generate(&model, &[prompt_ids], options)?
        .pop()
        .unwrap_or_default();
    let gen_time = started.elapsed();
    let text = match &tokenizer {
        Some(tok) => tok
            .decode(&ids, true)
            .map_err(|e| anyhow::anyhow!("decoding: {e}"))?,
        None => String::new(),
    };
    if args.json {
        println!("{}", serde_json::json!({"token_ids": ids, "text": text}));
    } else {
        println!("token_ids: {ids:?}");
        println!("text: {text}");
    }
    tracing::info!(
        load_s = load_time.as_secs_f64(),
        generate_s = gen_time.as_secs_f64(),
        tokens = ids.len(),
        "done"
    );
    Ok(())
}
