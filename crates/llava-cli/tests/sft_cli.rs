//! The fine-tuning workflow through the `llava` binary on the embedded model and the shipped
//! dataset: `sft` (LoRA on every linear), `export --merge-lora`, `infer --ckpt-dir` on the
//! adapter and on the merged model (the same greedy tokens), and `infer --load-dataset-config`
//! answering exactly the rows the training split held out.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn llava(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llava"));
    c.current_dir(dir);
    c
}

fn greedy(dir: &Path, ckpt: &Path, image: &Path) -> Value {
    let out = llava(dir)
        .args(["infer", "--ckpt-dir"])
        .arg(ckpt)
        .args(["--query", "What is in the image?", "--images"])
        .arg(image)
        .args([
            "--do-sample",
            "false",
            "--max-new-tokens",
            "12",
            "--output-format",
            "json",
        ])
        .output()
        .unwrap();
    common::assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sft_export_and_infer_on_the_embedded_model() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = llava(dir)
        .args([
            "sft",
            "--dataset",
            "llava-tiny",
            "--dataset-test-ratio",
            "0.25",
        ])
        .args(["--lora-target-modules", "ALL", "--learning-rate", "1e-2"])
        .args([
            "--batch-size",
            "2",
            "--gradient-accumulation-steps",
            "1",
            "--max-steps",
            "3",
        ])
        .args(["--eval-steps", "3", "--logging-steps", "1"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ckpt: PathBuf = stdout
        .lines()
        .find_map(|l| l.strip_prefix("last checkpoint: "))
        .map(|p| dir.join(p))
        .unwrap_or_else(|| panic!("no checkpoint in {stdout}"));
    assert!(ckpt.ends_with("checkpoint-3"), "{}", ckpt.display());
    let run = ckpt.parent().unwrap();
    let log = std::fs::read_to_string(run.join("logging.jsonl")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = lines
        .iter()
        .filter(|l| l.get("loss").is_some())
        .map(|l| l["global_step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3]);
    assert!(
        lines[0]["memory(GiB)"].as_f64().is_some_and(|m| m > 0.0),
        "{}",
        lines[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.get("eval_loss").is_some() && l.get("eval_acc").is_some())
    );
    let adapter: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(adapter["r"], 8);
    let configuration: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("configuration.json")).unwrap())
            .unwrap();
    assert_eq!(configuration["adapter_cfg"]["sft_type"], "lora");

    let out = llava(dir)
        .args(["export", "--merge-lora", "true", "--ckpt-dir"])
        .arg(&ckpt)
        .output()
        .unwrap();
    common::assert_success(&out);
    let merged = ckpt.with_file_name("checkpoint-3-merged");
    assert!(merged.join("model.safetensors").is_file());
    assert!(merged.join("config.json").is_file() && merged.join("tokenizer.json").is_file());
    let merged_args: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("sft_args.json")).unwrap())
            .unwrap();
    assert_eq!(merged_args["sft_type"], "full");
    let merged_cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("configuration.json")).unwrap())
            .unwrap();
    assert!(merged_cfg.get("adapter_cfg").is_none());

    let image = llava_testutil::fixture("datasets/llava-tiny/images/0_red_circle_300x200.png");
    let a = greedy(dir, &ckpt, &image);
    let b = greedy(dir, &merged, &image);
    assert_eq!(a["token_ids"], b["token_ids"], "adapter {a} vs merged {b}");
    let n = a["token_ids"].as_array().unwrap().len();
    assert!((1..=12).contains(&n), "{a}");

    // The validation rows the split held out, answered with their labels.
    let out = llava(dir)
        .args([
            "infer",
            "--load-dataset-config",
            "true",
            "--do-sample",
            "false",
            "--max-new-tokens",
            "4",
            "--ckpt-dir",
        ])
        .arg(&ckpt)
        .output()
        .unwrap();
    common::assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut labels: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[LABELS] ").map(str::to_string))
        .collect();
    let cache = tempfile::tempdir().unwrap();
    let held_out = llava_data::load_datasets(&llava_data::DataOptions {
        dataset: vec![llava_data::DatasetSpec::parse("llava-tiny").unwrap()],
        val_dataset: vec![],
        dataset_test_ratio: 0.25,
        dataset_seed: 42,
        cache_dir: cache.path().to_path_buf(),
        dataset_dirs: vec![],
        hub_cache: None,
    })
    .unwrap()
    .validation;
    let mut expected: Vec<String> = held_out.iter().map(|r| r.response.clone()).collect();
    labels.sort();
    expected.sort();
    assert_eq!(expected.len(), 2);
    assert_eq!(labels, expected);
    let results: Vec<PathBuf> = std::fs::read_dir(ckpt.join("infer_result"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(results.len(), 1);
    let rows = std::fs::read_to_string(&results[0]).unwrap();
    assert_eq!(rows.lines().count(), 2);
    let first: Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert!(first["label"].is_string() && first["response"].is_string());
}
