//! A short LoRA run on the tiny clip-mistral fixture and dataset, shared by the tests that
//! stop and resume it.

use std::path::Path;

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
