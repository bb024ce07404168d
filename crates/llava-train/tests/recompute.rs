//! Per-layer recompute (`--gradient-checkpointing`, on by default) trains exactly as one graph
//! does, images and dropout included: the same losses, gradient norms and weights after a few
//! steps on the CPU.

use std::path::Path;

use llava_testutil::{Reference, relative_error_l2};
use llava_train::{SftArgs, SftOutput, SftType, sft};

mod common;

fn run(args: &SftArgs, recompute: bool, out: &Path) -> SftOutput {
    sft(SftArgs {
        gradient_checkpointing: recompute,
        output_dir: out.to_path_buf(),
        ..args.clone()
    })
    .unwrap()
}

fn tensors(dir: &Path, lora: bool) -> Reference {
    if lora {
        Reference::read(&dir.join("adapter_model.safetensors"))
    } else {
        let files = llava_checkpoint::CheckpointFiles::discover(dir).unwrap();
        assert_eq!(files.shards.len(), 1);
        Reference::read(&files.shards[0])
    }
}

fn check(args: SftArgs, lora: bool) {
    let _turn = common::one_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (run(&args, false, out.path()), run(&args, true, out.path()));
    assert_eq!(a.records.len(), args.max_steps as usize);
    assert_eq!(a.records.len(), b.records.len());
    let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12);
    for (x, y) in a.records.iter().zip(&b.records) {
        for (what, p, q) in [
            ("loss", x.loss, y.loss),
            ("grad norm", x.grad_norm, y.grad_norm),
        ] {
            assert!(rel(p, q) < 1e-5, "step {}: {what} {p} vs {q}", x.step);
        }
    }
    let (x, y) = (
        tensors(a.last_checkpoint.as_ref().unwrap(), lora),
        tensors(b.last_checkpoint.as_ref().unwrap(), lora),
    );
    let keys = x.keys();
    assert!(!keys.is_empty());
    assert_eq!(keys, y.keys());
    for key in &keys {
        let (e, g) = (x.f32(key).1, y.f32(key).1);
        let err = relative_error_l2(&g, &e);
        assert!(err < 1e-5, "{key} differs by {err:.3e}");
    }
}

#[test]
fn lora_with_dropout_trains_the_same_with_and_without_recompute() {
    let out = Path::new("unused");
    check(
        SftArgs {
            lora_dropout_p: 0.1,
            max_steps: 4,
            save_steps: Some(4),
            learning_rate: Some(2e-3),
            ..common::tiny_run(out)
        },
        true,
    );
}

#[test]
fn full_with_the_tower_trains_the_same_with_and_without_recompute() {
    let out = Path::new("unused");
    check(
        SftArgs {
            sft_type: SftType::Full,
            freeze_vit: false,
            max_steps: 3,
            save_steps: Some(3),
            learning_rate: Some(1e-3),
            ..common::tiny_run(out)
        },
        false,
    );
}
