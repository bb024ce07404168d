//! A short LoRA run on the tiny clip-mistral fixture and dataset, shared by the tests that
//! stop and resume it.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use llava_testutil::fixture;
use llava_train::SftArgs;

/// Ten steps of batch 2, a checkpoint every five, into `out`.
pub fn tiny_run(out: &Path) -> SftArgs {
    SftArgs {
        model_type: "llava1_6-mistral-7b-instruct-hf".into(),
        model_id_or_path: Some(fixture("llava/clip-mistral/hf").display().to_string()),
        dataset: vec![
            fixture("datasets/llava-tiny/train.jsonl")
                .display()
                .to_string(),
        ],
        dataset_test_ratio: 0.0,
        batch_size: 2,
        gradient_accumulation_steps: Some(1),
        max_steps: 10,
        save_steps: Some(5),
        output_dir: out.to_path_buf(),
        ..SftArgs::default()
    }
}

/// The device's random generator is shared by the process and every step reseeds it (dropout):
/// tests of one binary that train take turns, or one run's reseeding would land between the
/// other's seed and its dropout.
#[allow(dead_code)] // a binary with one training test has no one to wait for
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}
