//! Resuming continues exactly: ten uninterrupted steps equal five, a resume from the fifth
//! step's checkpoint, and five more, bit for bit on the CPU (losses, gradient norms and the
//! adapter). A checkpoint of another model type is refused before anything is written.

use std::path::{Path, PathBuf};

use llava_testutil::{Reference, fixture};
use llava_train::{SftArgs, StepRecord, sft};

mod common;

fn args(out: &Path) -> SftArgs {
    SftArgs {
        learning_rate: Some(2e-3),
        // Dropout on: the resumed run must draw the same masks.
        lora_dropout_p: 0.1,
        save_total_limit: -1,
        ..common::tiny_run(out)
    }
}

fn adapter(dir: &Path) -> Reference {
    Reference::read(&dir.join("adapter_model.safetensors"))
}

/// The same steps, bit for bit: loss, gradient norm and rate.
fn same_steps(a: &[StepRecord], b: &[StepRecord]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.step, b.step);
        for (p, q) in [(a.loss, b.loss), (a.grad_norm, b.grad_norm), (a.lr, b.lr)] {
            assert_eq!(p.to_bits(), q.to_bits(), "step {}: {p} vs {q}", a.step);
        }
    }
}

#[test]
fn ten_steps_equal_five_and_a_resumed_five() {
    let _turn = common::one_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let whole = sft(args(out.path())).unwrap();
    assert_eq!(whole.records.len(), 10);
    let fifth: PathBuf = whole.run_dir.join("checkpoint-5");
    let tenth = whole.last_checkpoint.clone().unwrap();
    assert!(fifth.is_dir() && tenth.ends_with("checkpoint-10"));

    let resumed = sft(SftArgs {
        resume_from_checkpoint: Some(fifth),
        ..args(out.path())
    })
    .unwrap();
    assert_ne!(
        resumed.run_dir, whole.run_dir,
        "a resumed run writes a new v<N> directory"
    );
    assert_eq!(resumed.global_step, 10);
    assert_eq!(resumed.records.len(), 5);
    same_steps(&whole.records[5..], &resumed.records);
    let (x, y) = (
        adapter(&tenth),
        adapter(resumed.last_checkpoint.as_ref().unwrap()),
    );
    assert_eq!(x.keys(), y.keys());
    for k in x.keys() {
        assert_eq!(x.f32(&k), y.f32(&k), "{k}");
    }
    // The optimizer state too.
    let (x, y) = (
        Reference::read(&tenth.join("optimizer.safetensors")),
        Reference::read(
            &resumed
                .last_checkpoint
                .unwrap()
                .join("optimizer.safetensors"),
        ),
    );
    for k in x.keys() {
        assert_eq!(x.f32(&k), y.f32(&k), "{k}");
    }

    // Another model type's run cannot continue from it; nothing is written.
    let other = tempfile::tempdir().unwrap();
    let e = sft(SftArgs {
        model_type: "llava-next-72b-hf".into(),
        model_id_or_path: Some(fixture("llava/clip-qwen2/hf").display().to_string()),
        resume_from_checkpoint: Some(tenth.clone()),
        ..args(other.path())
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("llava1_6-mistral-7b-instruct-hf")
            && e.contains("llava-next-72b-hf")
            && e.contains("checkpoint-10"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
    // A run already at its last step says how to go on.
    let e = sft(SftArgs {
        resume_from_checkpoint: Some(tenth),
        ..args(other.path())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--max-steps"), "{e}");
}

/// Full fine-tuning in bf16 with `--master-f32`: the f32 masters are saved with the moments and
/// a resumed run continues from them exactly (from the bf16 weights alone it would not).
#[test]
fn full_bf16_with_master_weights_resumes_exactly() {
    let _turn = common::one_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let args = |out: &Path| SftArgs {
        sft_type: llava_train::SftType::Full,
        dtype: llava_train::TrainDtype::Bf16,
        master_f32: true,
        learning_rate: Some(1e-4),
        max_steps: 4,
        save_steps: Some(2),
        save_total_limit: -1,
        ..common::tiny_run(out)
    };
    let whole = sft(args(out.path())).unwrap();
    let second = whole.run_dir.join("checkpoint-2");
    let optimizer = Reference::read(&second.join("optimizer.safetensors"));
    let masters: Vec<String> = optimizer
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("master."))
        .collect();
    assert!(
        masters.iter().any(|k| k.ends_with("q_proj.weight")),
        "{masters:?}"
    );
    // Without the flag the f32 moments would meet bf16 gradients: refused.
    let e = sft(SftArgs {
        resume_from_checkpoint: Some(second.clone()),
        master_f32: false,
        ..args(out.path())
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("--master-f32"), "{e}");
    let resumed = sft(SftArgs {
        resume_from_checkpoint: Some(second),
        ..args(out.path())
    })
    .unwrap();
    same_steps(&whole.records[2..], &resumed.records);
    let (x, y) = (
        Reference::read(&whole.last_checkpoint.unwrap().join("optimizer.safetensors")),
        Reference::read(
            &resumed
                .last_checkpoint
                .unwrap()
                .join("optimizer.safetensors"),
        ),
    );
    assert_eq!(x.keys(), y.keys());
    for k in x.keys().iter().filter(|k| k.starts_with("master.")) {
        assert_eq!(x.f32(k), y.f32(k), "{k}");
    }
}
