//! Fine-tuning equal to a plain PyTorch loop with PEFT and transformers
//! (`scripts/fixtures/make_training_fixtures.py`): for LoRA on the LLM's q/k/v, LoRA on every
//! linear of the LLM and the projector, and full fine-tuning, on both decoder families (and
//! full fine-tuning with the vision tower trained too, `--freeze-vit false`), ten
//! optimizer steps of batch 2 with gradient accumulation 2 and clipping active give the same
//! per-step loss, gradient norm and learning rate (1e-4 relative), the same trained tensors
//! (1e-4 relative, ‖ours − reference‖ / ‖reference‖ per tensor), and the same logits (1e-4 of
//! the largest; LoRA: PEFT's final adapter loaded by us; full: our saved checkpoint loaded back).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::DType;
use llava_data::{Encoder, ImageCache, TruncationStrategy};
use llava_model::{ModelKwargs, Prompt, get_model_tokenizer, llava_key_map};
use llava_testutil::{Reference, fixture, relative_error, relative_error_l2};
use llava_train::{SftArgs, SftType, TrainDtype, sft};
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn tiny_dataset() -> PathBuf {
    fixture("datasets/llava-tiny/train.jsonl")
}

/// Safetensors of a checkpoint directory (all shards) by module path.
fn tensors_by_path(files: &[PathBuf]) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let map = llava_key_map();
    let mut out = HashMap::new();
    for f in files {
        let r = Reference::read(f);
        for k in r.keys() {
            out.insert(map.map(&k), r.f32(&k));
        }
    }
    out
}

/// The logits rows the reference kept, of `model_dir` (+ `adapter`) on the dataset's first row.
fn logits_rows(
    model_type: &str,
    model_dir: &Path,
    adapter: Option<PathBuf>,
    rows: &[i64],
) -> Vec<f32> {
    let (model, tokenizer) = get_model_tokenizer(
        model_type,
        Some(DType::F32),
        ModelKwargs {
            model_id_or_path: Some(model_dir.display().to_string()),
            adapter,
            ..ModelKwargs::default()
        },
    )
    .unwrap();
    let template = llava_template::get_template(model.info.template_type, tokenizer).unwrap();
    let processor = model.llava.image_processor();
    let cache = ImageCache {
        dir: std::env::temp_dir(),
        fetch: Default::default(),
        decode: processor.decode_options(),
    };
    let data = llava_data::read::read_file(&tiny_dataset()).unwrap();
    let (sizes, problems) = cache.check_rows(&data[..1]);
    assert!(problems.is_empty());
    let encoder = Encoder {
        template,
        processor: processor.clone(),
        max_length: None,
        truncation: TruncationStrategy::Delete,
    };
    let sample = encoder
        .encode(&data[0], sizes[0].as_ref().unwrap())
        .unwrap()
        .unwrap();
    let images: Vec<_> = sample
        .images
        .iter()
        .map(|i| cache.load(i).unwrap())
        .collect();
    let prompt = Prompt {
        ids: sample.input_ids.clone(),
        images: processor.process(&images).unwrap(),
    };
    let (logits, _) = model.llava.forward(&[prompt]).unwrap();
    let [_, len, vocab] = logits.dims();
    let all = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    assert!(rows.iter().all(|&r| (r as usize) < len));
    rows.iter()
        .flat_map(|&r| all[r as usize * vocab..(r as usize + 1) * vocab].to_vec())
        .collect()
}

fn check(name: &str, fixture_name: &str, mode: &str) {
    let dir = fixture(&format!("training/{fixture_name}/{mode}"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("FIXTURE.json")).unwrap()).unwrap();
    let reference = Reference::read(&dir.join("reference.safetensors"));
    let model_type = meta["model_type"].as_str().unwrap().to_string();
    let model_dir = fixture(&format!("llava/{fixture_name}/hf"));
    let out = tempfile::tempdir().unwrap();
    let lora = mode.starts_with("lora");
    let args = SftArgs {
        model_type: model_type.clone(),
        model_id_or_path: Some(model_dir.display().to_string()),
        dtype: TrainDtype::F32,
        sft_type: if lora { SftType::Lora } else { SftType::Full },
        freeze_vit: mode != "full-vit",
        dataset: vec![tiny_dataset().display().to_string()],
        dataset_test_ratio: 0.0,
        batch_size: 2,
        gradient_accumulation_steps: Some(2),
        max_steps: 10,
        learning_rate: meta["lr"].as_f64(),
        warmup_ratio: meta["warmup_ratio"].as_f64().unwrap(),
        weight_decay: meta["weight_decay"].as_f64().unwrap(),
        max_grad_norm: meta["max_grad_norm"].as_f64().unwrap(),
        seed: meta["seed"].as_u64().unwrap(),
        lora_dropout_p: 0.0,
        // One graph: the recomputed path is held to it in tests/recompute.rs.
        gradient_checkpointing: false,
        resume_from_checkpoint: lora.then(|| dir.join("init")),
        resume_only_model: lora,
        save_steps: Some(10),
        output_dir: out.path().to_path_buf(),
        ..SftArgs::default()
    };
    let result = sft(args).unwrap();

    // Per step: loss, grad norm before clipping (clipping is active: all are above 0.5), lr.
    let (loss, norm, lr) = (
        reference.f64("loss"),
        reference.f64("grad_norm"),
        reference.f64("lr"),
    );
    assert_eq!(result.records.len(), 10);
    assert!(
        norm.iter().all(|&n| n > 0.5),
        "{name}: clipping must be active: {norm:?}"
    );
    for (i, r) in result.records.iter().enumerate() {
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-12);
        assert!(
            rel(r.loss, loss[i]) < 1e-4,
            "{name} step {}: loss {} vs {}",
            i + 1,
            r.loss,
            loss[i]
        );
        assert!(
            rel(r.grad_norm, norm[i]) < 1e-4,
            "{name} step {}: grad norm {} vs {}",
            i + 1,
            r.grad_norm,
            norm[i]
        );
        assert!(
            (r.lr - lr[i]).abs() <= 1e-4 * lr[i].abs() + 1e-15,
            "{name} step {}: lr {} vs {}",
            i + 1,
            r.lr,
            lr[i]
        );
    }

    // Every trained tensor after ten steps.
    let ckpt = result.last_checkpoint.clone().unwrap();
    let ours = if lora {
        tensors_by_path(&[ckpt.join("adapter_model.safetensors")])
    } else {
        let files = llava_checkpoint::CheckpointFiles::discover(&ckpt).unwrap();
        tensors_by_path(&files.shards)
    };
    let map = llava_key_map();
    let finals: Vec<String> = reference
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("final."))
        .collect();
    assert!(!finals.is_empty());
    let mut failures = Vec::new();
    for key in &finals {
        let python = key.trim_start_matches("final.").replace(".default.", ".");
        let python = python
            .strip_prefix("base_model.model.")
            .map(|p| format!("base_model.model.{p}"))
            .unwrap_or(python);
        let path = map.map(&python);
        let (shape, expected) = reference.f32(key);
        let (our_shape, got) = ours
            .get(&path)
            .unwrap_or_else(|| panic!("{name}: our checkpoint has no {path} (reference {key})"));
        assert_eq!(*our_shape, shape, "{name}: {path}");
        let e = relative_error_l2(got, &expected);
        let worst = relative_error(got, &expected);
        // A key bias's gradient is zero in exact arithmetic (softmax ignores the q·b shift
        // every key shares), so AdamW's normalised step follows rounding noise on both sides.
        let tolerance = if path.ends_with("self_attn.k_proj.bias") {
            1e-3
        } else {
            f64::from(TOLERANCE)
        };
        if e >= tolerance {
            failures.push(format!(
                "{path} differs by {e:.3e} (worst element {worst:.3e} of the largest)"
            ));
        }
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    if lora {
        // Exactly the reference's adapted modules are in our file.
        assert_eq!(ours.len(), finals.len(), "{name}: adapter tensors");
    }

    // Logits: PEFT's final adapter loaded by us, or our full checkpoint loaded back.
    let rows = reference.i64("logits_rows");
    let (_, expected) = reference.f32("logits");
    let got = if lora {
        logits_rows(&model_type, &model_dir, Some(dir.join("final")), &rows)
    } else {
        logits_rows(&model_type, &ckpt, None, &rows)
    };
    let e = relative_error(&got, &expected);
    assert!(e < TOLERANCE, "{name}: logits differ by {e}");
}

#[test]
fn lora_default_mistral() {
    check("mistral lora DEFAULT", "clip-mistral", "lora-default");
}

#[test]
fn lora_all_mistral() {
    check("mistral lora ALL", "clip-mistral", "lora-all");
}

#[test]
fn full_mistral() {
    check("mistral full", "clip-mistral", "full");
}

/// The tower trained too (`--freeze-vit false`), as the demo model is: its backward (patch
/// embedding, CLIP attention and MLP, the anyres packing) against torch's.
#[test]
fn full_vit_mistral() {
    check("mistral full with the tower", "clip-mistral", "full-vit");
}

#[test]
fn lora_default_qwen2() {
    check("qwen2 lora DEFAULT", "clip-qwen2", "lora-default");
}

#[test]
fn lora_all_qwen2() {
    check("qwen2 lora ALL", "clip-qwen2", "lora-all");
}

#[test]
fn full_qwen2() {
    check("qwen2 full", "clip-qwen2", "full");
}

/// An adapter `llava sft` wrote (committed by the fixture script), loaded by PEFT onto
/// transformers' model there and by us here: the same logits, and not the base model's.
fn peft_reads_ours(fixture_name: &str, model_type: &str) {
    let dir = fixture(&format!("training/{fixture_name}/ours"));
    let reference = Reference::read(&dir.join("reference.safetensors"));
    let rows = reference.i64("logits_rows");
    let (_, expected) = reference.f32("logits");
    let model_dir = fixture(&format!("llava/{fixture_name}/hf"));
    let got = logits_rows(model_type, &model_dir, Some(dir.clone()), &rows);
    let e = relative_error(&got, &expected);
    assert!(
        e < TOLERANCE,
        "{fixture_name}: logits with our adapter differ from PEFT's by {e}"
    );
    let base = logits_rows(model_type, &model_dir, None, &rows);
    assert!(
        relative_error(&base, &expected) > 1e-3,
        "{fixture_name}: the adapter changes nothing"
    );
}

#[test]
fn peft_reads_our_adapter_mistral() {
    peft_reads_ours("clip-mistral", "llava1_6-mistral-7b-instruct-hf");
}

#[test]
fn peft_reads_our_adapter_qwen2() {
    peft_reads_ours("clip-qwen2", "llava-next-72b-hf");
}
