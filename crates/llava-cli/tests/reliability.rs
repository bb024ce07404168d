//! Bad input and shared resources as users meet them (issue 25's battery): each case asserts
//! the exit status and the key words of the message.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn llava_infer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llava"));
    c.arg("infer");
    c
}

/// Four REPLs started together with one `--result-dir`, 200 turns each: every turn is one
/// valid JSON line, and none is lost or interleaved with another run's.
#[test]
fn parallel_repls_share_a_result_directory_safely() {
    const RUNS: usize = 4;
    const TURNS: usize = 200;
    let results = tempfile::tempdir().unwrap();
    let mut script = String::new();
    for i in 0..TURNS {
        script.push_str(&format!("turn {i}\n\nclear\n"));
    }
    script.push_str("quit\n");
    let children: Vec<_> = (0..RUNS)
        .map(|_| {
            let mut child = repl(results.path(), Stdio::null());
            let mut stdin = child.stdin.take().unwrap();
            let script = script.clone();
            std::thread::spawn(move || stdin.write_all(script.as_bytes()).unwrap());
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut queries = Vec::new();
    let files = std::fs::read_dir(results.path()).unwrap();
    let mut n_files = 0;
    for file in files.flatten() {
        n_files += 1;
        let text = std::fs::read_to_string(file.path()).unwrap();
        for (i, line) in text.lines().enumerate() {
            let row: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{} line {}: {e}: {line:?}", file.path().display(), i + 1)
            });
            queries.push(row["query"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(n_files, RUNS, "one result file per run");
    assert_eq!(queries.len(), RUNS * TURNS);
    for i in 0..TURNS {
        let n = queries
            .iter()
            .filter(|q| **q == format!("turn {i}"))
            .count();
        assert_eq!(n, RUNS, "turn {i}");
    }
}

/// A copy of the llava-hf clip-mistral fixture in a directory of its own, to damage.
fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = llava_testutil::fixtures().join("llava/clip-mistral/hf");
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// A REPL writing its results to `results`, its stdin, stdout and stderr piped.
fn repl(results: &Path, stdout: Stdio) -> std::process::Child {
    llava_infer()
        .args(["--do-sample", "false", "--max-new-tokens", "2"])
        .arg("--result-dir")
        .arg(results)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn config_with(dir: &Path, key: &str, value: Value) {
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config[key] = value;
    std::fs::write(&path, config.to_string()).unwrap();
}

/// Pinpoints with a zero side, or sides that are not whole tiles, are refused at load with the
/// key named (they used to panic in the resampler or leak a layout dump).
#[test]
fn bad_pinpoints_are_refused_naming_the_key() {
    for pinpoints in [
        serde_json::json!([[0, 30], [30, 0]]),
        serde_json::json!([[100, 100]]),
    ] {
        let dir = fixture_copy();
        config_with(dir.path(), "image_grid_pinpoints", pinpoints.clone());
        let out = llava_infer()
            .args(["--model-type", "llava1_6-mistral-7b-instruct-hf"])
            .arg("--model-id-or-path")
            .arg(dir.path())
            .args(["--query", "hi", "--max-new-tokens", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{pinpoints}: {stderr}");
        assert!(stderr.contains("image_grid_pinpoints[0]"), "{stderr}");
        assert!(stderr.contains("config.json"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `llava infer --list-models | head -1`: the closed pipe ends the program quietly.
#[test]
#[cfg(unix)]
fn a_closed_stdout_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = llava_infer()
        .arg("--list-models")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    // Killed by SIGPIPE as `ls | head` is, or done before the pipe closed.
    assert!(
        out.status.signal() == Some(13) || out.status.success(),
        "{:?}",
        out.status
    );
}

/// Settings that can only give nothing or nonsense are refused before any loading.
#[test]
fn empty_or_impossible_generation_settings_are_refused() {
    for (flag, words) in [
        ("--max-new-tokens=0", "at least 1"),
        ("--temperature=-1", "not a temperature"),
        ("--temperature=NaN", "not a temperature"),
    ] {
        let out = llava_infer()
            .args(["--query", "hi", flag])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(words), "{flag}: {stderr}");
    }
}

/// One-shot mode honours `--result-dir` (one line, as a REPL turn), and `--images` takes a
/// path with a comma in it, space separated or repeated.
#[test]
fn one_shot_saves_its_result_and_images_may_hold_commas() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("a,b.png");
    std::fs::copy(
        llava_testutil::fixtures().join("vision/images/tie_300x200.png"),
        &image,
    )
    .unwrap();
    let results = dir.path().join("results");
    let out = llava_infer()
        .args(["--query", "What is it?", "--max-new-tokens", "2"])
        .args(["--do-sample", "false", "--images"])
        .arg(&image)
        .arg(&image)
        .arg("--result-dir")
        .arg(&results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let files: Vec<_> = std::fs::read_dir(&results).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(rows[0]["query"], "What is it?");
    let images = rows[0]["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{text}");
    assert!(images[0].as_str().unwrap().ends_with("a,b.png"), "{text}");
}

/// A line that is not UTF-8 is refused and the session goes on; an unfinished multi-line
/// input at the end of the input is dropped, not answered or recorded.
#[test]
fn odd_repl_input_is_refused_line_by_line() {
    let results = tempfile::tempdir().unwrap();
    let mut child = repl(results.path(), Stdio::piped());
    let mut input = b"bad \xff\xfe line\nfirst\n\n".to_vec();
    input.extend_from_slice(b"multi-line\nnever\nfinished");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
    let files: Vec<_> = std::fs::read_dir(results.path())
        .unwrap()
        .flatten()
        .collect();
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    let queries: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["query"].to_string())
        .collect();
    assert_eq!(queries, vec!["\"first\"".to_string()], "{text}");
}

/// A model type of another decoder family than the checkpoint's is refused with the types
/// that fit listed (it used to run with the wrong template).
#[test]
fn a_model_type_of_another_family_is_refused() {
    let fixtures = llava_testutil::fixtures();
    for (model_type, dir, fits) in [
        (
            "llava-next-72b-hf",
            "llava/clip-mistral/hf",
            "llava1_6-mistral-7b-instruct-hf",
        ),
        (
            "llava1_6-mistral-7b-instruct-hf",
            "llava/clip-qwen2/hf",
            "llava-next-72b-hf",
        ),
    ] {
        let out = llava_infer()
            .args(["--model-type", model_type, "--model-id-or-path"])
            .arg(fixtures.join(dir))
            .args(["--query", "hi", "--max-new-tokens", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{model_type}: {stderr}");
        assert!(
            stderr.contains(model_type) && stderr.contains(fits),
            "{model_type}: {stderr}"
        );
    }
}

/// `--ckpt-dir ADAPTER` alone finds the base in `adapter_config.json` as PEFT does (it used
/// to answer from the embedded model); an adapter with no base named, or a directory that
/// is neither an adapter nor a model, is refused saying what was looked for.
#[test]
fn ckpt_dir_alone_reads_the_adapters_base() {
    let fixtures = llava_testutil::fixtures();
    let base = fixtures.join("llava/clip-mistral/hf");
    let adapter = |base_name: Value| {
        let dir = tempfile::tempdir().unwrap();
        let src = fixtures.join("training/clip-mistral/ours");
        std::fs::copy(
            src.join("adapter_model.safetensors"),
            dir.path().join("adapter_model.safetensors"),
        )
        .unwrap();
        let mut config: Value = serde_json::from_str(
            &std::fs::read_to_string(src.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        config["base_model_name_or_path"] = base_name;
        std::fs::write(dir.path().join("adapter_config.json"), config.to_string()).unwrap();
        dir
    };
    let answer = |extra: &[&std::ffi::OsStr]| {
        let out = llava_infer()
            .args(extra)
            .args([
                "--query",
                "hi",
                "--max-new-tokens",
                "6",
                "--do-sample",
                "false",
            ])
            .args(["--output-format", "json"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let named = adapter(Value::from(base.display().to_string()));
    let alone = answer(&["--ckpt-dir".as_ref(), named.path().as_os_str()]);
    assert_eq!(alone.0, Some(0), "{}", alone.2);
    let explicit = answer(&[
        "--ckpt-dir".as_ref(),
        named.path().as_os_str(),
        "--model-id-or-path".as_ref(),
        base.as_os_str(),
    ]);
    assert_eq!(explicit.0, Some(0), "{}", explicit.2);
    let ids = |s: &str| serde_json::from_str::<Value>(s.trim()).unwrap()["token_ids"].clone();
    assert_eq!(ids(&alone.1), ids(&explicit.1));
    let embedded = answer(&[]);
    assert_ne!(
        ids(&alone.1),
        ids(&embedded.1),
        "the adapter's base, not the embedded model"
    );

    let unnamed = adapter(Value::Null);
    let (code, _, stderr) = answer(&["--ckpt-dir".as_ref(), unnamed.path().as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("base_model_name_or_path"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = answer(&["--ckpt-dir".as_ref(), empty.path().as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("adapter_config.json") && stderr.contains("config.json"),
        "{stderr}"
    );
}

/// An I/O error prints as one line with its cause once (anyhow's `Caused by:` used to repeat
/// the OS error our message already holds).
#[test]
fn errors_are_one_line_with_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), "{ not json").unwrap();
    let out = llava_infer()
        .args([
            "--model-type",
            "llava1_6-mistral-7b-instruct-hf",
            "--model-id-or-path",
        ])
        .arg(&model)
        .args(["--query", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("config.json"), "{stderr}");
    assert!(!stderr.contains("Caused by"), "{stderr}");
    let missing = dir.path().join("absent.png");
    let out = llava_infer()
        .args(["--query", "hi", "--max-new-tokens", "1", "--images"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("absent.png"), "{stderr}");
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

/// Silent garbage made loud: a checkpoint with NaN weights and a temperature that is 0 in f32
/// stop with an error instead of answering token 0 over and over with exit 0.
#[test]
fn nan_weights_and_a_vanishing_temperature_are_errors() {
    let dir = fixture_copy();
    // The LM head's weights (f32) overwritten with NaN, in place.
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let entry = &header["language_model.lm_head.weight"];
    assert_eq!(entry["dtype"], "F32");
    let offsets = entry["data_offsets"].as_array().unwrap();
    let (start, end) = (
        8 + n + offsets[0].as_u64().unwrap() as usize,
        8 + n + offsets[1].as_u64().unwrap() as usize,
    );
    for chunk in bytes[start..end].chunks_exact_mut(4) {
        chunk.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    let fails = |args: &[&std::ffi::OsStr]| {
        let out = llava_infer()
            .args(args)
            .args(["--query", "hi", "--max-new-tokens", "4"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        stderr
    };
    let stderr = fails(&[
        "--model-type".as_ref(),
        "llava1_6-mistral-7b-instruct-hf".as_ref(),
        "--model-id-or-path".as_ref(),
        dir.path().as_os_str(),
        "--do-sample".as_ref(),
        "false".as_ref(),
    ]);
    assert!(stderr.contains("not finite"), "{stderr}");
    let stderr = fails(&["--temperature".as_ref(), "1e-300".as_ref()]);
    assert!(stderr.contains("temperature 1e-300"), "{stderr}");
}

/// `--max-image-pixels` lowers the decoding limit: an image over it is refused naming the
/// image and the limit, before any pixel is decoded.
#[test]
fn the_image_pixel_limit_is_a_flag() {
    let image = llava_testutil::fixtures().join("vision/images/tie_300x200.png");
    let run = |limit: &str| {
        llava_infer()
            .args([
                "--query",
                "hi",
                "--max-new-tokens",
                "1",
                "--do-sample",
                "false",
            ])
            .args(["--max-image-pixels", limit, "--images"])
            .arg(&image)
            .output()
            .unwrap()
    };
    let out = run("50000");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tie_300x200.png") && stderr.contains("50000"),
        "{stderr}"
    );
    let out = run("60000");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = llava_infer()
        .args([
            "--query",
            "hi",
            "--max-new-tokens",
            "1",
            "--max-image-side",
            "299",
        ])
        .arg("--images")
        .arg(&image)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tie_300x200.png") && stderr.contains("299"),
        "{stderr}"
    );
}

/// Damaged checkpoints through the binary: an empty config.json, a missing tokenizer and a
/// truncated weights file each end with exit 1 and the file named.
#[test]
fn damaged_checkpoints_name_the_file() {
    let damaged = |damage: &dyn Fn(&Path)| {
        let dir = fixture_copy();
        damage(dir.path());
        let out = llava_infer()
            .args([
                "--model-type",
                "llava1_6-mistral-7b-instruct-hf",
                "--model-id-or-path",
            ])
            .arg(dir.path())
            .args(["--query", "hi", "--max-new-tokens", "1"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stderr) = damaged(&|d| std::fs::write(d.join("config.json"), "").unwrap());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("config.json"), "{stderr}");
    let (code, stderr) = damaged(&|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("tokenizer"), "{stderr}");
    let (code, stderr) = damaged(&|d| {
        let path = d.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Warnings carry no colour codes when stderr is not a terminal, and the prompt-too-long
/// message is one clean line (no doubled spaces).
#[test]
fn messages_are_plain_text_in_pipes() {
    // An original-layout model type on the llava-hf checkpoint: loaded as it is, with a warning.
    let out = llava_infer()
        .args([
            "--model-type",
            "llava1d6-mistral-7b-instruct",
            "--model-id-or-path",
        ])
        .arg(llava_testutil::fixtures().join("llava/clip-mistral/hf"))
        .args(["--query", "hi", "--max-new-tokens", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("layout"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    let out = llava_infer()
        .args(["--query", &"word ".repeat(10_000), "--max-new-tokens", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("Error: ")).unwrap();
    assert!(
        line.contains("tokens long") && line.contains("context"),
        "{line}"
    );
    assert!(!line.contains("  "), "{line:?}");
}
