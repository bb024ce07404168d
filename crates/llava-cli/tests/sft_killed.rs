//! A training process killed while it writes a checkpoint leaves every earlier checkpoint
//! whole, and the run resumes from the latest one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn llava() -> Command {
    Command::new(env!("CARGO_BIN_EXE_llava"))
}

fn train_args(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "sft",
        "--dataset",
        "llava-tiny",
        "--dataset-test-ratio",
        "0",
        "--batch-size",
        "1",
        "--gradient-accumulation-steps",
        "1",
        "--save-steps",
        "1",
        "--save-total-limit",
        "-1",
        "--add-output-dir-suffix",
        "false",
        "--output-dir",
    ]
    .map(String::from)
    .to_vec();
    v.push(out.display().to_string());
    v
}

/// The unfinished checkpoint directories in `dir`.
fn partial(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

fn committed(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut v: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let step = p
                .file_name()?
                .to_str()?
                .strip_prefix("checkpoint-")?
                .parse()
                .ok()?;
            Some((step, p))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_kill_during_a_save_leaves_the_previous_checkpoints_and_the_run_resumes() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_path_buf();
    let mut caught = false;
    for _attempt in 0..5 {
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = llava()
            .args(train_args(&dir))
            .args(["--max-steps", "12"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        // Wait for a save after the first one, then kill the process while it writes.
        while started.elapsed() < Duration::from_secs(120) {
            let tmp = partial(&dir);
            if !tmp.is_empty() && dir.join("checkpoint-1").is_dir() {
                child.kill().unwrap();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        child.wait().unwrap();
        if !partial(&dir).is_empty() {
            caught = true;
            break;
        }
    }
    assert!(caught, "never killed the process in the middle of a save");
    let done = committed(&dir);
    assert!(!done.is_empty());
    for (_, ckpt) in &done {
        llava_nn::PeftAdapter::load(ckpt).unwrap();
        for f in [
            "llava_state.json",
            "optimizer.safetensors",
            "trainer_state.json",
            "sft_args.json",
        ] {
            assert!(ckpt.join(f).is_file(), "{} lacks {f}", ckpt.display());
        }
    }
    let (step, latest) = done.last().unwrap().clone();
    let resumed = tempfile::tempdir().unwrap();
    let out = llava()
        .args(train_args(resumed.path()))
        .args(["--max-steps", "12", "--resume-from-checkpoint"])
        .arg(&latest)
        .output()
        .unwrap();
    common::assert_success(&out);
    // The resumed run continues from the checkpoint to the end.
    assert!(committed(resumed.path()).iter().any(|(s, _)| *s == 12));
    assert!(committed(resumed.path()).iter().all(|(s, _)| *s > step));
}
