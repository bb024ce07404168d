//! `cargo xtask generate` on every fixture reproduces transformers' greedy tokens.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    llava_testutil::fixture("decoders").join(name)
}

fn reference_ids(name: &str, key: &str) -> Vec<u32> {
    let bytes = std::fs::read(fixture(name).join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(key)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect()
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("generate")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    common::assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn prompt_ids_reproduce_the_reference_greedy_tokens() {
    for name in ["mistral", "llama3", "yi", "qwen2"] {
        let prompt: Vec<String> = reference_ids(name, "input_ids")
            .iter()
            .map(u32::to_string)
            .collect();
        let dir = fixture(name);
        let out = run(&[
            "--model-dir",
            dir.to_str().unwrap(),
            "--prompt-ids",
            &prompt.join(","),
            "--max-new-tokens",
            "32",
            "--greedy",
        ]);
        assert_eq!(ids(&out), reference_ids(name, "greedy_ids"), "{name}");
        assert!(out["text"].is_string());
    }
}

#[test]
fn a_text_prompt_is_tokenised_like_the_reference() {
    // The default prompt is the fixtures' prompt; the tokenizer adds <s> as the reference did.
    let dir = fixture("mistral");
    let out = run(&[
        "--model-dir",
        dir.to_str().unwrap(),
        "--max-new-tokens",
        "32",
    ]);
    assert_eq!(ids(&out), reference_ids("mistral", "greedy_ids"));
    assert!(!out["text"].as_str().unwrap().is_empty());
}

#[test]
fn a_bad_model_dir_fails_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "generate",
            "--model-dir",
            "/nonexistent/ckpt",
            "--prompt-ids",
            "1,2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ckpt"), "{err}");
}
