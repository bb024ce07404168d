//! A short LoRA run on the shipped tiny dataset: the run directory has what ms-swift writes.

use llava_train::{SftArgs, sft};

#[test]
fn a_short_lora_run_writes_a_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let args = SftArgs {
        model_type: "llava1_6-mistral-7b-instruct-hf".into(),
        model_id_or_path: Some(
            llava_testutil::fixture("llava/clip-mistral/hf")
                .display()
                .to_string(),
        ),
        dataset: vec!["llava-tiny".into()],
        dataset_test_ratio: 0.25,
        batch_size: 2,
        gradient_accumulation_steps: Some(1),
        max_steps: 2,
        eval_steps: 1,
        lora_dropout_p: 0.0,
        output_dir: out.path().to_path_buf(),
        ..SftArgs::default()
    };
    let started = std::time::Instant::now();
    let result = sft(args).unwrap();
    eprintln!("took {:?}: {:#?}", started.elapsed(), result.records);
    let ckpt = result.last_checkpoint.unwrap();
    for f in [
        "adapter_model.safetensors",
        "adapter_config.json",
        "configuration.json",
        "sft_args.json",
        "trainer_state.json",
        "generation_config.json",
        "llava_state.json",
        "optimizer.safetensors",
    ] {
        assert!(ckpt.join(f).is_file(), "{f}");
    }
    assert_eq!(result.records.len(), 2);
    assert_eq!(result.evals.len(), 2);
}
