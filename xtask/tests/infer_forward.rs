//! `cargo xtask infer` forwards to `llava infer` (crates/llava-cli's tests cover the command):
//! the README's command answers with the embedded model.

mod common;

use serde_json::Value;

#[test]
fn xtask_infer_answers_with_the_embedded_model() {
    let case: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(llava_testutil::fixture(
            "llava/clip-mistral/original/inference.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let case = case.iter().find(|c| c["case"] == "text_only").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "infer",
            "--query",
            case["query"].as_str().unwrap(),
            "--system",
            "",
        ])
        .args(["--temperature", "0", "--max-new-tokens", "24"])
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end_matches('\n'),
        case["response"].as_str().unwrap()
    );
}
