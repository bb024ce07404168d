//! Bad input stops `sft` before the first step with an error naming the file, line and field
//! (every bad row at once), and writes nothing.

use std::path::Path;

use llava_testutil::fixture;
use llava_train::{SftArgs, sft};

fn args(dataset: &str, out: &Path) -> SftArgs {
    SftArgs {
        model_type: "llava1_6-mistral-7b-instruct-hf".into(),
        model_id_or_path: Some(fixture("llava/clip-mistral/hf").display().to_string()),
        dataset: vec![dataset.to_string()],
        dataset_test_ratio: 0.0,
        max_steps: 1,
        output_dir: out.to_path_buf(),
        ..SftArgs::default()
    }
}

/// Runs `sft` and returns its error; the output directory must stay empty.
fn fails(args: SftArgs) -> String {
    let out = args.output_dir.clone();
    let e = sft(args).expect_err("sft should fail").to_string();
    let written = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0, "something was written for: {e}");
    e
}

#[test]
fn bad_rows_and_images_are_all_reported_with_line_and_field() {
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    let good = fixture("datasets/llava-tiny/images/0_red_circle_300x200.png");
    std::fs::copy(&good, d.join("good.png")).unwrap();
    std::fs::write(d.join("broken.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    let rows = [
        r#"{"query": "q", "response": "fine", "images": ["good.png"]}"#,
        r#"{"query": "q", "response": "r", "images": ["good.png"]"#,
        r#"{"query": "no answer", "images": ["good.png"]}"#,
        r#"{"query": "q", "response": "r", "images": ["missing.png"]}"#,
        r#"{"query": "q", "response": "r", "images": ["broken.png"]}"#,
    ];
    let data = d.join("train.jsonl");
    std::fs::write(&data, rows.join("\n")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = fails(args(data.to_str().unwrap(), out.path()));
    let file = data.display().to_string();
    // Malformed JSON and the missing response are found while reading.
    assert!(e.contains(&format!("{file}:2: invalid JSON")), "{e}");
    assert!(
        e.contains(&format!("{file}:3, field `response`: missing")),
        "{e}"
    );

    // With the rows fixed, the images are checked: both bad ones, with their lines.
    let rows = [rows[0], rows[3], rows[4]];
    std::fs::write(&data, rows.join("\n")).unwrap();
    let e = fails(args(data.to_str().unwrap(), out.path()));
    assert!(e.starts_with("2 bad dataset row(s)"), "{e}");
    assert!(
        e.contains(&format!(
            "{file}:2, field `images`: image 0: cannot read image"
        )) && e.contains("missing.png"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{file}:3, field `images`: image 0: cannot decode image"
        )) && e.contains("broken.png"),
        "{e}"
    );
}

#[test]
fn empty_after_filtering_unknown_targets_and_unknown_names() {
    let out = tempfile::tempdir().unwrap();
    let tiny = fixture("datasets/llava-tiny/train.jsonl")
        .display()
        .to_string();
    let e = fails(SftArgs {
        max_length: Some(100),
        ..args(&tiny, out.path())
    });
    assert!(
        e.contains("no training row is left") && e.contains("--max-length 100"),
        "{e}"
    );

    let e = fails(SftArgs {
        lora_target_modules: vec!["q_proj".into(), "qkv_proj".into()],
        ..args(&tiny, out.path())
    });
    assert!(
        e.contains("qkv_proj") && e.contains("o_proj") && e.contains("DEFAULT, ALL"),
        "{e}"
    );

    let e = fails(args("coco-fr#10", out.path()));
    assert!(
        e.contains("coco-fr") && e.contains("llava-tiny, coco-en-2-mini, coco-en-2"),
        "{e}"
    );

    let e = fails(args("coco-en-2-mini", out.path()));
    assert!(
        e.contains("coco-en-2-mini") && e.contains("--dataset-dir"),
        "{e}"
    );
}
