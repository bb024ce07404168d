//! `cargo xtask demo-model`: the recipe of the embedded default model (docs/demo-model.md).
//! Renders the training scenes, trains a tokenizer on their text, writes a random-initialised
//! tiny LLaVA-NeXT (llava-hf layout), trains it with the project's own `sft --sft-type full`,
//! evaluates it on held-out scenes and exports it. Every stage leaves its result under
//! `--work` and is skipped when that result is there, and training resumes from its latest
//! checkpoint, so the recipe runs as a few calls of at most `--stop-after-minutes` each.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::DType;
use llava::scenes::{eval, rows, tokenizer};
use llava::{LlavaConfig, LlavaNext, ModelKwargs, get_model_tokenizer, get_template};
use llava_llm::DeviceMap;
use llava_train::checkpoint::{ResumeState, STATE_FILE, python_key, read_json, save_sharded};
use llava_train::params::named_tensors;
use llava_train::{LrSchedulerType, SftArgs, SftType, TrainDtype};
use serde_json::{Value, json};

use crate::device::parse_device;

/// The model type the demo model is trained and shipped as (llava-hf layout, Mistral template).
pub const MODEL_TYPE: &str = "llava1_6-mistral-7b-instruct-hf";

/// The most ids its tokenizer may have; the corpus of the scenes fills fewer. The
/// embedding rounds the tokenizer's size up to a multiple of 64.
const MAX_VOCAB: usize = 1024;

/// Files of the exported model.
const EXPORTED: &[&str] = &[
    "config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// `cargo xtask demo-model` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Where the stages keep their results (data, init, run, eval).
    #[arg(long, default_value = "target/demo-model")]
    pub work: PathBuf,
    /// Seeds the scenes, the tokenizer's corpus, the initial weights and the training order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training images (one row of 3–6 questions each).
    #[arg(long, default_value_t = 60_000)]
    pub images: u64,
    /// Epochs over the rows.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Rows per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate (cosine after a 3% warm-up).
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Stop training this many minutes after the command started (rendering, loading and
    /// encoding included) with a checkpoint (run the command again to go on).
    #[arg(long)]
    pub stop_after_minutes: Option<f64>,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 500)]
    pub save_steps: usize,
    /// Seed of the evaluation scenes (never a training seed).
    #[arg(long, default_value_t = 2026)]
    pub eval_seed: u64,
    /// Evaluation scenes.
    #[arg(long, default_value_t = 300)]
    pub eval_scenes: u64,
    /// Where the trained model goes once it passes (the embedded model's directory).
    #[arg(long, default_value = "fixtures/demo-model")]
    pub export: PathBuf,
    /// Only the model's random initial checkpoint and tokenizer, then stop.
    #[arg(long)]
    pub init_only: bool,
    /// How the tower's position embedding starts (an open A/B, docs/demo-model.md):
    /// `sincos`, a 2-D sine–cosine table of the patch grid, or `random`, N(0, 0.02).
    #[arg(long, value_enum, default_value_t = PositionInit::Sincos)]
    pub position_init: PositionInit,
    /// The sine–cosine table's row norm (an open A/B, docs/demo-model.md): 8 is a table of
    /// plain sines and cosines; a larger one keeps where a patch is from being drowned by
    /// the patch embedding as that grows in training.
    #[arg(long, default_value_t = 8.0)]
    pub position_norm: f32,
    /// The training scenes: `recipe` (half shapes, half text), `text` only, `relations` only
    /// or `places` only (which half of the image one object is in) (open diagnostics: can
    /// reading, or where objects are, be learnt when every step has it; docs/demo-model.md).
    #[arg(long, value_enum, default_value_t = MixArg::Recipe)]
    pub mix: MixArg,
}

/// `--mix`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixArg {
    /// Half shape scenes, half text.
    Recipe,
    /// Text scenes only.
    Text,
    /// Shape scenes with position questions only.
    Relations,
    /// Shape scenes asked only which half of the image an object is in.
    Places,
}

impl From<MixArg> for rows::Mix {
    fn from(m: MixArg) -> Self {
        match m {
            MixArg::Recipe => rows::Mix::Recipe,
            MixArg::Text => rows::Mix::Text,
            MixArg::Relations => rows::Mix::Relations,
            MixArg::Places => rows::Mix::Places,
        }
    }
}

/// The tower's initial position embedding (`--position-init`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionInit {
    /// A 2-D sine–cosine table of the patch grid (the class position zero).
    Sincos,
    /// N(0, 0.02), as every other matrix.
    Random,
}

/// Runs the stages that have not run yet.
pub fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let data = args.work.join("data");
    let train_file = data.join("train.jsonl");
    if !train_file.is_file() {
        let started = std::time::Instant::now();
        rows::write_training_set(&data, args.seed, args.images, args.mix.into())
            .with_context(|| format!("rendering the training set into {}", data.display()))?;
        eprintln!(
            "rendered {} training scenes into {} in {:.1}s",
            args.images,
            data.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let init = args.work.join("init");
    if !init.join("model.safetensors").is_file() {
        write_initial_model(&init, args.seed, args.position_init, args.position_norm)?;
        eprintln!("initial model and tokenizer in {}", init.display());
    }
    if args.init_only {
        return Ok(());
    }
    let run_dir = args.work.join("run");
    let latest = latest_checkpoint(&run_dir)?;
    let finished = match &latest {
        Some((dir, state)) => {
            eprintln!(
                "resuming from {} (step {}/{})",
                dir.display(),
                state.global_step,
                state.total_steps
            );
            state.global_step >= state.total_steps
        }
        None => false,
    };
    let device = parse_device(&args.device)?;
    if !finished {
        let mut sft = SftArgs {
            model_type: MODEL_TYPE.to_string(),
            model_id_or_path: Some(init.display().to_string()),
            dtype: TrainDtype::F32,
            device: Some(device.clone()),
            sft_type: SftType::Full,
            freeze_vit: false,
            output_dir: run_dir.clone(),
            add_output_dir_suffix: false,
            seed: args.seed,
            dataset: vec![train_file.display().to_string()],
            dataset_test_ratio: 0.0,
            batch_size: args.batch_size,
            num_train_epochs: args.epochs,
            learning_rate: Some(args.learning_rate),
            lr_scheduler_type: LrSchedulerType::Cosine,
            warmup_ratio: 0.03,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            gradient_accumulation_steps: Some(1),
            logging_steps: 25,
            save_steps: Some(args.save_steps),
            save_total_limit: 2,
            stop_after_minutes: args
                .stop_after_minutes
                .map(|m| (m - started.elapsed().as_secs_f64() / 60.0).max(0.0)),
            resume_from_checkpoint: latest.as_ref().map(|(d, _)| d.clone()),
            ..SftArgs::default()
        };
        sft.max_length = Some(1024);
        let out = llava_train::sft(sft).context("training the demo model")?;
        if let Some(last) = out.records.last() {
            eprintln!(
                "step {}: loss {:.4}, token accuracy {:.4}",
                last.step, last.loss, last.acc
            );
        }
    }
    let Some((checkpoint, state)) = latest_checkpoint(&run_dir)? else {
        bail!("no checkpoint under {}", run_dir.display());
    };
    if state.global_step < state.total_steps {
        eprintln!(
            "stopped at step {}/{}: run the same command again to go on",
            state.global_step, state.total_steps
        );
        return Ok(());
    }
    let table = evaluate(&checkpoint, &args)?;
    println!("{table}");
    std::fs::write(args.work.join("eval.md"), table.to_string())?;
    let failures = table.failures();
    export(&checkpoint, &state, &table, &args)?;
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|g| g.name()).collect();
        bail!(
            "exported to {}, but under the thresholds: {}",
            args.export.display(),
            names.join(", ")
        );
    }
    Ok(())
}

/// The config of the model (`docs/demo-model.md` gives the sizes): a 6-layer CLIP tower of
/// width 128 on 112-pixel tiles of 14-pixel patches, anyres grids of 1×2, 2×1 and 2×2 tiles,
/// and a 4-layer Mistral decoder of width 192 with one key-value head.
pub fn model_config(vocab_size: usize, image_token: u32) -> Value {
    json!({
        "architectures": ["LlavaNextForConditionalGeneration"],
        "model_type": "llava_next",
        "image_grid_pinpoints": [[112, 224], [224, 112], [224, 224]],
        "image_seq_length": 64,
        "image_token_index": image_token,
        "multimodal_projector_bias": true,
        "projector_hidden_act": "gelu",
        "tie_word_embeddings": false,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "torch_dtype": "float32",
        "text_config": {
            "model_type": "mistral",
            "vocab_size": vocab_size,
            "hidden_size": 192,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 3,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "hidden_act": "silu",
            "max_position_embeddings": 1024,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 3,
            "sliding_window": null,
            "attention_dropout": 0.0,
            "tie_word_embeddings": false
        },
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 6,
            "num_attention_heads": 4,
            "num_channels": 3,
            "image_size": 112,
            "patch_size": 14,
            "projection_dim": 128,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "attention_dropout": 0.0
        }
    })
}

/// transformers' `LlavaNextImageProcessor` settings for the model's geometry (CLIP's
/// normalisation, bicubic resampling).
pub fn preprocessor_config() -> Value {
    json!({
        "image_processor_type": "LlavaNextImageProcessor",
        "crop_size": {"height": 112, "width": 112},
        "size": {"shortest_edge": 112},
        "image_grid_pinpoints": [[112, 224], [224, 112], [224, 224]],
        "do_resize": true,
        "do_center_crop": true,
        "do_rescale": true,
        "rescale_factor": 0.00392156862745098,
        "do_normalize": true,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "do_pad": true,
        "do_convert_rgb": true,
        "resample": 3
    })
}

/// Tokenizer, configs and random weights of the untrained model in `dir` (written to a
/// temporary directory, then renamed).
fn write_initial_model(
    dir: &Path,
    seed: u64,
    position_init: PositionInit,
    position_norm: f32,
) -> Result<()> {
    let tmp = dir.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let corpus = tokenizer::corpus(seed, 40_000);
    let tok = tokenizer::train(&corpus, MAX_VOCAB)?;
    let image_token = tok
        .token_to_id(tokenizer::IMAGE_TOKEN)
        .context("the tokenizer has no <image>")?;
    let vocab_size = tok.get_vocab_size(true).div_ceil(64) * 64;
    std::fs::write(
        tmp.join("tokenizer.json"),
        tok.to_string(true).map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    let write = |name: &str, value: &Value| -> Result<()> {
        std::fs::write(tmp.join(name), serde_json::to_string_pretty(value)?)?;
        Ok(())
    };
    write(
        "tokenizer_config.json",
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "model_max_length": 1024,
            "clean_up_tokenization_spaces": false
        }),
    )?;
    write("config.json", &model_config(vocab_size, image_token))?;
    write("preprocessor_config.json", &preprocessor_config())?;
    let config = LlavaConfig::from_dir(&tmp)?;
    let cpu = burn::tensor::Device::flex();
    let model = LlavaNext::random(
        &config,
        &DeviceMap::single(&cpu, config.text.num_hidden_layers),
        DType::F32,
        seed,
    );
    let empty = Default::default();
    let vision = &config.vision;
    let tensors = named_tensors(&model)
        .into_iter()
        .map(|(path, data)| {
            let key = python_key(&path, llava::Layout::LlavaHf, &empty);
            let data = if key == POSITION_EMBEDDING && position_init == PositionInit::Sincos {
                let grid = vision.image_size / vision.patch_size;
                let table = sincos_positions(grid, vision.hidden_size, position_norm);
                burn::tensor::TensorData::new(table, [grid * grid + 1, vision.hidden_size])
            } else {
                data
            };
            (key, data)
        })
        .collect();
    save_sharded(&tmp, tensors, usize::MAX)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&tmp, dir)?;
    Ok(())
}

/// The tower's position embedding in the llava-hf layout.
const POSITION_EMBEDDING: &str = "vision_tower.vision_model.embeddings.position_embedding.weight";

/// A `[grid² + 1, width]` position table (row-major): row 0, the class position, is zero;
/// row `1 + r·grid + c` holds sines and cosines of the patch's row `r` in its first half and of
/// its column `c` in its second, at `width / 4` frequencies from 1 down to 1/100 per patch
/// (a grid of 8 needs no slower ones; MAE's table goes to 1/10⁴ for grids of 14 and more).
/// A random table gives a tower trained from scratch no sense of where a patch is, and it
/// has to learn one before it can read a glyph made of patches or say what is left of what.
/// Each patch's row is scaled to norm `norm` (plain sines and cosines have √(width / 2)).
fn sincos_positions(grid: usize, width: usize, norm: f32) -> Vec<f32> {
    let quarter = width / 4;
    let scale = norm / ((2 * quarter) as f32).sqrt();
    let mut out = vec![0f32; (grid * grid + 1) * width];
    for r in 0..grid {
        for c in 0..grid {
            let row = &mut out[(1 + r * grid + c) * width..][..width];
            for (half, coord) in [(0, r), (1, c)] {
                for i in 0..quarter {
                    let omega = 100f64.powf(-(i as f64) / (quarter.max(2) - 1) as f64);
                    let angle = coord as f64 * omega;
                    row[half * 2 * quarter + i] = angle.sin() as f32 * scale;
                    row[half * 2 * quarter + quarter + i] = angle.cos() as f32 * scale;
                }
            }
        }
    }
    out
}

/// The checkpoint of `run_dir` with the most steps, and its state.
fn latest_checkpoint(run_dir: &Path) -> Result<Option<(PathBuf, ResumeState)>> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Ok(None);
    };
    let mut best: Option<(PathBuf, ResumeState)> = None;
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_checkpoint = entry
            .file_name()
            .to_string_lossy()
            .strip_prefix("checkpoint-")
            .is_some_and(|n| n.parse::<usize>().is_ok());
        if !is_checkpoint || !dir.join(STATE_FILE).is_file() {
            continue;
        }
        let state: ResumeState = read_json(&dir.join(STATE_FILE))?;
        if best
            .as_ref()
            .is_none_or(|(_, s)| state.global_step > s.global_step)
        {
            best = Some((dir, state));
        }
    }
    Ok(best)
}

/// The held-out table of the model in `dir`.
fn evaluate(dir: &Path, args: &Args) -> Result<eval::Table> {
    let device = parse_device(&args.device)?;
    let (model, tok) = get_model_tokenizer(
        MODEL_TYPE,
        Some(DType::F32),
        ModelKwargs {
            model_id_or_path: Some(dir.display().to_string()),
            device,
            ..ModelKwargs::default()
        },
    )?;
    let template = get_template(llava::get_default_template_type(MODEL_TYPE)?, tok)?;
    let cases = eval::cases(args.eval_seed, args.eval_scenes);
    let started = std::time::Instant::now();
    let table = llava::evaluate_scenes(&model, &template, &cases, 32, |n| {
        eprint!("\revaluated {n}/{}", cases.len());
    })?;
    eprintln!(" in {:.1}s", started.elapsed().as_secs_f64());
    Ok(table)
}

/// Copies the model files of `checkpoint` to `args.export` with `FIXTURE.json` (how it was
/// made and how it scored).
fn export(checkpoint: &Path, state: &ResumeState, table: &eval::Table, args: &Args) -> Result<()> {
    let tmp = args.export.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    for name in EXPORTED {
        std::fs::copy(checkpoint.join(name), tmp.join(name))
            .with_context(|| format!("copying {name} from {}", checkpoint.display()))?;
    }
    let accuracy: serde_json::Map<String, Value> = table
        .groups
        .iter()
        .map(|(g, &(right, asked))| {
            (
                g.name().to_string(),
                json!({"asked": asked, "right": right, "accuracy": right as f64 / asked.max(1) as f64,
                       "threshold": g.threshold()}),
            )
        })
        .collect();
    let fixture = json!({
        "made_by": "cargo xtask demo-model (xtask/src/demo_model.rs); docs/demo-model.md",
        "model_type": MODEL_TYPE,
        "seed": args.seed,
        "training_images": args.images,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "steps": state.global_step,
        "device": args.device,
        "eval_seed": args.eval_seed,
        "eval_scenes": args.eval_scenes,
        "accuracy": accuracy,
    });
    std::fs::write(
        tmp.join("FIXTURE.json"),
        serde_json::to_string_pretty(&fixture)?,
    )?;
    write_examples(&tmp.join("examples"))?;
    if args.export.exists() {
        std::fs::remove_dir_all(&args.export)?;
    }
    std::fs::rename(&tmp, &args.export)?;
    eprintln!("exported to {}", args.export.display());
    Ok(())
}

/// The seed of the committed example scenes.
pub const EXAMPLES_SEED: u64 = 77;

/// The example scenes as `NN.png` with `examples.json` (image, question, true answer): the
/// README's image, and what `scripts/fixtures/check_demo_model.py` asks transformers.
fn write_examples(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut listed = Vec::new();
    for (i, case) in eval::examples(EXAMPLES_SEED).iter().enumerate() {
        let name = format!("{i:02}.png");
        case.scene.render().save(dir.join(&name))?;
        listed.push(json!({
            "image": name,
            "question": case.qa.question,
            "answer": case.qa.answer,
            "family": case.qa.family,
            "held_out": case.qa.held_out,
        }));
    }
    std::fs::write(
        dir.join("examples.json"),
        serde_json::to_string_pretty(&listed)?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use llava::scenes::scene::SIZES;
    use llava_vision::Size;

    /// The sine–cosine table: the class row zero, every patch its own row, and along a row
    /// or a column of the grid nearer patches more alike than farther ones.
    #[test]
    fn the_position_table_knows_where_each_patch_is() {
        let (grid, width) = (8, 128);
        let table = sincos_positions(grid, width, 8.0);
        assert_eq!(table.len(), 65 * width);
        let row = |r: usize, c: usize| &table[(1 + r * grid + c) * width..][..width];
        assert!(table[..width].iter().all(|&x| x == 0.0));
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        // Every entry is a sine or cosine: a patch's row has norm √(width / 2).
        assert!((dot(row(3, 5), row(3, 5)) - 64.0).abs() < 1e-3);
        assert_eq!(row(0, 0)[0], 0.0);
        assert_eq!(row(0, 0)[32], 1.0);
        assert!((row(2, 0)[0] - 2f32.sin()).abs() < 1e-6);
        assert!((row(0, 2)[64] - 2f32.sin()).abs() < 1e-6);
        assert!((row(0, 2)[127] - (0.02f32).cos()).abs() < 1e-6);
        for a in 0..grid * grid {
            for b in 0..a {
                let (p, q) = (row(a / grid, a % grid), row(b / grid, b % grid));
                assert!(dot(p, q) < 64.0 - 0.1, "patches {a} and {b} alike");
            }
        }
        for d in 1..grid - 1 {
            assert!(dot(row(0, 0), row(0, d)) > dot(row(0, 0), row(0, d + 1)));
            assert!(dot(row(0, 0), row(d, 0)) > dot(row(0, 0), row(d + 1, 0)));
        }
        // A larger norm scales every patch's row, the class row still zero.
        let big = sincos_positions(grid, width, 40.0);
        assert!(big[..width].iter().all(|&x| x == 0.0));
        for (b, t) in big.iter().zip(&table) {
            assert!((b - 5.0 * t).abs() < 1e-5);
        }
    }

    /// Image tokens per image size: transformers 5.25's `LlavaNextImageProcessor` and
    /// `get_image_features` on these configs give 336, 200, 208, 268 and 176 rows
    /// (scripts/fixtures/make_demo_model_check.py checks it again on the exported model).
    #[test]
    fn the_geometry_is_transformers_and_every_scene_size_splits() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, v: Value| std::fs::write(dir.path().join(name), v.to_string());
        write("config.json", model_config(704, 685)).unwrap();
        write("preprocessor_config.json", preprocessor_config()).unwrap();
        let config = LlavaConfig::from_dir(dir.path()).unwrap();
        let sizes = [(224, 224), (224, 112), (112, 224), (640, 480), (100, 300)]
            .map(|(width, height)| Size { width, height });
        let layouts = config.image_processor().layouts(&sizes);
        let tokens: Vec<u32> = layouts.iter().map(|l| l.tokens).collect();
        assert_eq!(tokens, [336, 200, 208, 268, 176]);
        for (l, (w, h)) in layouts.iter().zip(SIZES) {
            assert_eq!(l.grid, (h / 112, w / 112), "{w}×{h}");
        }
    }
}
