//! `--stop-after-minutes` counts from the command's start: a limit spent before training
//! stops the run at its first step with a checkpoint, and resuming from it goes on to the end.
//! (Its own test binary: the resume test beside it compares runs bit for bit, and two runs in
//! one process share the device's random generator.)

mod common;

use llava_train::{SftArgs, sft};

use common::tiny_run as args;

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
