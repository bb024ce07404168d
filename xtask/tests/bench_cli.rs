//! `cargo xtask bench` on a tiny fixture config (random weights, CPU): one JSON record per
//! batch size with the prompt the benchmark promises and every requested token generated.

mod common;

use std::process::Command;

#[test]
fn bench_reports_each_batch_with_the_full_prompt_and_all_tokens() {
    let config = llava_testutil::fixture("llava/clip-mistral/hf");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--device", "cpu", "--dtype", "f32", "--config"])
        .arg(&config)
        .args(["--image-size", "336", "--prompt-tokens", "7"])
        .args(["--max-new-tokens", "5", "--batch", "1,2", "--warmup", "0"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let records: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for (record, batch) in records.iter().zip([1, 2]) {
        assert_eq!(record["batch"], batch);
        // A 336×336 image takes the 336×672 grid, unpadded back to 24×24 feature rows plus 24
        // newlines, after the 24·24 rows of the base image: 1176, then 7 question ids.
        assert_eq!(record["prompt_len"], 1176 + 7);
        assert_eq!(record["new_tokens"], 5, "EOS is ignored");
        assert!(record["decode_tok_s"].as_f64().unwrap() > 0.0);
        assert!(record["cold_ttft_ms"].is_null(), "no warm-up was asked for");
    }
}

#[test]
fn bench_rejects_an_empty_batch_size() {
    let config = llava_testutil::fixture("llava/clip-mistral/hf");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--device", "cpu", "--config"])
        .arg(&config)
        .args(["--batch", "1,0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch"));
}

#[test]
fn bench_loads_saved_weights_and_dumps_the_prefill_logits() {
    let dir = llava_testutil::fixture("llava/clip-mistral/hf");
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("logits.f32");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--device", "cpu", "--dtype", "f32", "--config"])
        .arg(&dir)
        .arg("--weights")
        .arg(&dir)
        .arg("--dump-logits")
        .arg(&dump)
        .args(["--image-size", "336", "--prompt-tokens", "7"])
        .args(["--max-new-tokens", "2", "--warmup", "0"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let vocab = config["text_config"]["vocab_size"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(&dump).unwrap();
    assert_eq!(
        bytes.len(),
        (1176 + 7) * vocab * 4,
        "[positions, vocab] f32"
    );
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(values.iter().all(|v| v.is_finite()));
    assert!(values.iter().any(|&v| v != 0.0));
}
