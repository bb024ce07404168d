//! `--stop-after-minutes` counts from the command's start: a limit spent before training
//! stops the run at its first step with a checkpoint, and resuming from it goes on to the end.
//! (Its own test binary: the resume test beside it compares runs bit for bit, and two runs in
//! one process share the device's random generator.)

use llava_testutil::fixture;
use llava_train::{SftArgs, sft};

fn args(out: &std::path::Path) -> SftArgs {
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

#[test]
fn a_time_limit_spent_before_training_stops_at_the_first_step_with_a_checkpoint() {
    // Zero minutes are over before the first step ends, so the run saves there and stops.
    let out = tempfile::tempdir().unwrap();
    let cut = sft(SftArgs {
        stop_after_minutes: Some(0.0),
        ..args(out.path())
    })
    .unwrap();
    assert_eq!(cut.global_step, 1);
    assert_eq!(cut.records.len(), 1);
    let first = cut.last_checkpoint.clone().unwrap();
    assert!(first.ends_with("checkpoint-1"), "{}", first.display());
    let rest = sft(SftArgs {
        resume_from_checkpoint: Some(first),
        ..args(out.path())
    })
    .unwrap();
    assert_eq!(rest.global_step, 10);
    assert_eq!(rest.records.len(), 9);
}
