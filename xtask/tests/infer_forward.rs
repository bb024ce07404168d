//! `cargo xtask infer` forwards to `llava infer` (crates/llava-cli's tests cover the command):
//! the README's command answers with the embedded model, and answers right.

mod common;

use serde_json::Value;

#[test]
fn xtask_infer_answers_with_the_embedded_model() {
    let dir = llava_testutil::fixture("demo-model/examples");
    let examples: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("examples.json")).unwrap()).unwrap();
    let readme = &examples[0];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "infer",
            "--query",
            readme["question"].as_str().unwrap(),
            "--images",
        ])
        .arg(dir.join(readme["image"].as_str().unwrap()))
        .output()
        .unwrap();
    common::assert_success(&out);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        readme["answer"].as_str().unwrap()
    );
}
