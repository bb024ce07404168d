//! `--dataset` / `--val-dataset` entries end to end: registered names with `#N`, files, the
//! split, and problems of several files reported together.

use std::path::PathBuf;

use llava_data::{DataOptions, DatasetSpec, load_datasets};

fn options(dataset: &[&str], val: &[&str], cache: PathBuf) -> DataOptions {
    DataOptions {
        dataset: dataset
            .iter()
            .map(|d| DatasetSpec::parse(d).unwrap())
            .collect(),
        val_dataset: val.iter().map(|d| DatasetSpec::parse(d).unwrap()).collect(),
        dataset_test_ratio: 0.25,
        dataset_seed: 42,
        cache_dir: cache,
        dataset_dirs: vec![],
    }
}

#[test]
fn names_files_sampling_and_the_split() {
    let cache = tempfile::tempdir().unwrap();
    let tiny = llava_testutil::fixture("datasets/llava-tiny/train.jsonl");
    let tiny = tiny.to_str().unwrap();
    let d = load_datasets(&options(&["llava-tiny"], &[], cache.path().into())).unwrap();
    assert_eq!((d.train.len(), d.validation.len()), (6, 2));
    // The same rows from the shipped copy and from the fixture file.
    let f = load_datasets(&options(&[tiny], &[], cache.path().into())).unwrap();
    let answers =
        |rows: &[llava_data::Row]| rows.iter().map(|r| r.response.clone()).collect::<Vec<_>>();
    assert_eq!(answers(&d.validation), answers(&f.validation));
    // A validation dataset: nothing is split off; `#N` samples (with replacement past the size).
    let v = load_datasets(&options(
        &["llava-tiny#3"],
        &[&format!("{tiny}#10")],
        cache.path().into(),
    ))
    .unwrap();
    assert_eq!((v.train.len(), v.validation.len()), (3, 10));
}

#[test]
fn problems_of_every_file_come_together() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.csv");
    std::fs::write(&a, "{\"query\": \"q\"}\n").unwrap();
    std::fs::write(&b, "query,response\nq,r,extra\n").unwrap();
    let e = load_datasets(&options(
        &[a.to_str().unwrap(), b.to_str().unwrap()],
        &[],
        dir.path().join("cache"),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("2 bad dataset row(s)"), "{e}");
    assert!(e.contains("a.jsonl:1, field `response`: missing"), "{e}");
    assert!(e.contains("b.csv:2: invalid CSV"), "{e}");
    let e = load_datasets(&options(&[], &[], dir.path().join("cache")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no --dataset"), "{e}");
}
