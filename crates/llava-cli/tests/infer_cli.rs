//! `llava infer` through its stdin and stdout: the one-shot JSON mode against the
//! transformers reference, and a REPL session (two turns with an image, `clear`,
//! `multi-line`, an empty media answer) with its jsonl result file.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    llava_testutil::fixtures()
}

fn reference(case: &str) -> Value {
    let text =
        std::fs::read_to_string(root().join("llava/clip-mistral/original/inference.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    cases.into_iter().find(|c| c["case"] == case).unwrap()
}

/// Runs `command` with `input` on its stdin (a REPL session) and waits for it.
fn with_stdin(mut command: Command, input: &[u8]) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn llava_infer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llava"));
    c.arg("infer");
    c
}

/// `llava infer` on the random clip-mistral fixture, whose transformers references the
/// answers are compared with (the embedded model is the trained demo model).
fn clip_mistral() -> Command {
    let mut c = llava_infer();
    c.args([
        "--model-type",
        "llava1d6-mistral-7b-instruct",
        "--model-id-or-path",
    ])
    .arg(root().join("llava/clip-mistral/original"));
    c
}

#[test]
fn one_shot_json_equals_transformers() {
    let case = reference("one_image");
    let image = root()
        .join("vision/images")
        .join(case["images"][0].as_str().unwrap());
    let out = llava_infer()
        .args([
            "--model-type",
            "llava1d6-mistral-7b-instruct",
            "--model-id-or-path",
            root().join("llava/clip-mistral/original").to_str().unwrap(),
            "--query",
            case["query"].as_str().unwrap(),
            "--images",
            image.to_str().unwrap(),
            "--do-sample",
            "false",
            "--max-new-tokens",
            "24",
            "--output-format",
            "json",
        ])
        .output()
        .unwrap();
    common::assert_success(&out);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["response"], case["response"]);
    assert_eq!(got["token_ids"], case["token_ids"]);
    assert_eq!(got["prompt_tokens"], case["prompt_tokens"]);
    assert_eq!(got["image_tokens"], case["image_tokens"]);
}

#[test]
fn temperature_zero_is_greedy() {
    let case = reference("text_only");
    let out = clip_mistral()
        .args(["--query", case["query"].as_str().unwrap(), "--system", ""])
        .args(["--temperature", "0", "--max-new-tokens", "24"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim_end_matches('\n'),
        case["response"].as_str().unwrap()
    );
}

#[test]
fn repl_session_through_pipes() {
    let results = tempfile::tempdir().unwrap();
    let first = reference("one_image");
    let image = root()
        .join("vision/images")
        .join(first["images"][0].as_str().unwrap());
    let script = format!(
        "{q}\n{img}\n\
         Tell me more.\n\n\
         clear\n\
         multi-line\n\
         first line\nsecond line#\n\n\
         single-line#\n\
         exit\n",
        q = first["query"].as_str().unwrap(),
        img = image.display(),
    );
    let mut command = clip_mistral();
    command
        .args([
            "--do-sample",
            "false",
            "--max-new-tokens",
            "24",
            "--stream",
            "true",
        ])
        .arg("--result-dir")
        .arg(results.path());
    let out = with_stdin(command, script.as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stderr.contains("Input `exit` or `quit` to exit the conversation."),
        "{stderr}"
    );
    assert!(
        stderr.contains("End multi-line input with `#`."),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    // Prompts, the streamed first answer (equal to transformers'), separators.
    assert!(
        stdout.starts_with("<<< Input a media path or URL <<< "),
        "{stdout}"
    );
    assert!(
        stdout.contains(first["response"].as_str().unwrap()),
        "{stdout}"
    );
    assert_eq!(stdout.matches(&"-".repeat(50)).count(), 3, "{stdout}");
    assert!(stdout.contains("<<<[M] "), "{stdout}");

    let files: Vec<_> = std::fs::read_dir(results.path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().into_string().unwrap();
    assert!(
        name.ends_with(".jsonl") && name.len() == "20261130-120000.jsonl".len(),
        "{name}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(files[0].path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["query"], first["query"]);
    assert_eq!(lines[0]["response"], first["response"]);
    assert_eq!(lines[0]["history"], serde_json::json!([]));
    assert_eq!(lines[0]["images"][0], image.display().to_string());
    // Second turn: text only (empty media answer), with the first turn as history.
    assert_eq!(lines[1]["query"], "Tell me more.");
    assert_eq!(lines[1]["images"], serde_json::json!([]));
    assert_eq!(lines[1]["history"][0][0], first["query"]);
    assert_eq!(lines[1]["history"][0][1], first["response"]);
    // After `clear`: no history; the multi-line query joined with a newline.
    assert_eq!(lines[2]["query"], "first line\nsecond line");
    assert_eq!(lines[2]["history"], serde_json::json!([]));
    assert!(stderr.contains("save_result_path:"), "{stderr}");
}

#[test]
fn a_missing_image_is_reported_and_the_session_goes_on() {
    let results = tempfile::tempdir().unwrap();
    let mut command = llava_infer();
    command
        .args(["--do-sample", "false", "--max-new-tokens", "4"])
        .arg("--result-dir")
        .arg(results.path());
    let out = with_stdin(command, b"Look\n/nonexistent/dog.png\nHello\n\nquit\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("/nonexistent/dog.png"), "{stderr}");
    let files: Vec<_> = std::fs::read_dir(results.path())
        .unwrap()
        .flatten()
        .collect();
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

/// `--ckpt-dir` as ms-swift reads it: `sft_args.json` names the model type and base model, and
/// the PEFT adapter in the directory is applied (the Mistral decoder fixture's adapter fits the
/// clip-mistral LLaVA decoder: same widths and heads). The answer changes with the adapter and
/// equals the library's with the same adapter.
#[test]
fn ckpt_dir_applies_its_adapter() {
    let ckpt = tempfile::tempdir().unwrap();
    let adapter = root().join("decoders/mistral/adapter");
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(adapter.join(f), ckpt.path().join(f)).unwrap();
    }
    let base = root().join("llava/clip-mistral/original");
    let sft_args = serde_json::json!({
        "model_type": "llava1d6-mistral-7b-instruct",
        "model_id_or_path": base.display().to_string(),
        "sft_type": "lora",
        "template_type": "AUTO",
        "dtype": "AUTO",
    });
    std::fs::write(ckpt.path().join("sft_args.json"), sft_args.to_string()).unwrap();
    let run = |extra: &[&str]| -> Value {
        let out = llava_infer()
            .args(extra)
            .args(["--query", "Hello there", "--do-sample", "false"])
            .args(["--max-new-tokens", "12", "--output-format", "json"])
            .output()
            .unwrap();
        common::assert_success(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let tuned = run(&["--ckpt-dir", ckpt.path().to_str().unwrap()]);
    let plain = run(&[
        "--model-id-or-path",
        base.to_str().unwrap(),
        "--model-type",
        "llava1d6-mistral-7b-instruct",
    ]);
    assert_ne!(
        tuned["token_ids"], plain["token_ids"],
        "the adapter changed nothing"
    );

    let (model, tokenizer) = llava::get_model_tokenizer(
        "llava1d6-mistral-7b-instruct",
        None,
        llava::ModelKwargs {
            model_id_or_path: Some(base.display().to_string()),
            adapter: Some(adapter),
            progress: llava_checkpoint::Progress::Hidden,
            ..llava::ModelKwargs::default()
        },
    )
    .unwrap();
    let template = llava::get_template("llava-mistral-instruct", tokenizer).unwrap();
    let args = llava::InferArgs {
        generation_config: Some(llava::GenerationConfig {
            max_new_tokens: Some(12),
            seed: Some(42),
            ..llava::GenerationConfig::default()
        }),
        ..llava::InferArgs::default()
    };
    let (response, _, info) =
        llava::inference_with_info(&model, &template, "Hello there", args).unwrap();
    assert_eq!(tuned["response"], response.as_str());
    assert_eq!(tuned["token_ids"], serde_json::json!(info.token_ids));
}

/// The embedded model runs from a directory outside the checkout, and its REPL results go to
/// that directory's `infer_result/`, not into the source tree.
#[test]
fn the_embedded_model_runs_anywhere_and_writes_results_where_it_runs() {
    let cwd = tempfile::tempdir().unwrap();
    let image = root().join("vision/images/coco_640x480.png");
    let out = llava_infer()
        .current_dir(cwd.path())
        .args(["--query", "Describe the image.", "--images"])
        .arg(&image)
        .args(["--output-format", "json", "--max-new-tokens", "4"])
        .output()
        .unwrap();
    common::assert_success(&out);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["token_ids"].as_array().unwrap().len(), 4);
    assert_eq!(got["image_tokens"], serde_json::json!([2340]), "{got}");

    let mut command = llava_infer();
    command
        .current_dir(cwd.path())
        .args(["--do-sample", "false", "--max-new-tokens", "2"]);
    let out = with_stdin(command, b"hello\n\nexit\n");
    common::assert_success(&out);
    let results: Vec<_> = std::fs::read_dir(cwd.path().join("infer_result"))
        .unwrap()
        .collect();
    assert_eq!(results.len(), 1, "one result file in the current directory");
    assert!(
        !root()
            .join("llava/clip-mistral/original/infer_result")
            .exists()
            || std::fs::read_dir(root().join("llava/clip-mistral/original/infer_result"))
                .unwrap()
                .next()
                .is_none(),
        "nothing written beside the fixture"
    );
}

/// A kernel option that does not exist stops the command before anything loads, listing the
/// valid names.
#[test]
fn an_unknown_kernel_option_fails_at_start_with_the_valid_names() {
    let out = llava_infer()
        .env("LLAVA_OPS_OFF", "nonsense")
        .args(["--query", "hi", "--max-new-tokens", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"nonsense\""), "{err}");
    assert!(
        err.contains("flash_prefill") && err.contains("gemv_qkv"),
        "{err}"
    );
    let out = llava_infer()
        .env("LLAVA_FLASH_BK", "64")
        .args(["--query", "hi", "--max-new-tokens", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LLAVA_FLASH_BK") && err.contains("LLAVA_OPS_OFF"),
        "{err}"
    );
}

/// `--model-id-or-path DIR` alone: the model type comes from `config.json` (here the llava-hf
/// Qwen fixture), and the answer is the one that type gives.
#[test]
fn the_model_type_is_inferred_from_the_checkpoint() {
    let dir = root().join("llava/clip-qwen2/hf");
    let run = |extra: &[&str]| {
        let out = llava_infer()
            .arg("--model-id-or-path")
            .arg(&dir)
            .args(extra)
            .args([
                "--query",
                "hi",
                "--do-sample",
                "false",
                "--max-new-tokens",
                "5",
            ])
            .args(["--output-format", "json"])
            .output()
            .unwrap();
        common::assert_success(&out);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let inferred = run(&[]);
    let named = run(&["--model-type", "llava-next-72b-hf"]);
    assert_eq!(inferred, named);
}

#[test]
fn a_checkpoint_of_no_known_type_lists_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    // A Mistral decoder behind OneVision's SigLIP tower: no registered type has both.
    let config = std::fs::read_to_string(root().join("llava/siglip-qwen2/hf/config.json")).unwrap();
    let config = config.replace("\"qwen2\"", "\"mistral\"");
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let out = llava_infer()
        .arg("--model-id-or-path")
        .arg(dir.path())
        .args(["--query", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--model-type") && err.contains("llava-onevision-qwen2-0_5b-ov"),
        "{err}"
    );
}
