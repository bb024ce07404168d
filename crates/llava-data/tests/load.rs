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
        hub_cache: None,
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

/// Parquet shards with the images inside (the hub's form): the same rows and pixels as the
/// `.jsonl` and its files; a caption table reads as ms-swift's COCO conversion.
#[test]
fn parquet_shards_with_image_bytes() {
    let cache = tempfile::tempdir().unwrap();
    let images = cache.path().join("parquet-images");
    let jsonl =
        llava_data::read::read_file(&llava_testutil::fixture("datasets/llava-tiny/train.jsonl"))
            .unwrap();
    let (rows, problems) = llava_data::read::read_file_with(
        &llava_testutil::fixture("datasets/parquet/swift.parquet"),
        &images,
    )
    .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(rows.len(), 3);
    let decode = llava_vision::DecodeOptions::default();
    for (p, j) in rows.iter().zip(&jsonl) {
        assert_eq!((&p.query, &p.response), (&j.query, &j.response));
        assert_eq!(p.images.len(), 1);
        let ours = llava_vision::open_image(std::path::Path::new(&p.images[0]), &decode).unwrap();
        let file = llava_testutil::fixture("datasets/llava-tiny").join(&j.images[0]);
        assert_eq!(ours, llava_vision::open_image(&file, &decode).unwrap());
    }
    assert!(
        rows[1]
            .origin
            .to_string()
            .ends_with("swift.parquet: element 1")
    );
    let (captions, problems) = llava_data::read::read_file_with(
        &llava_testutil::fixture("datasets/parquet/captions.parquet"),
        &images,
    )
    .unwrap();
    assert!(problems.is_empty());
    assert_eq!(captions[0].query, llava_data::parquet_rows::CAPTION_QUERY);
    assert_eq!(
        captions[0].response, jsonl[0].response,
        "the caption is cut at `&&`"
    );
    assert_eq!(
        captions[0].images, rows[0].images,
        "the same bytes are written once"
    );
    // Through --dataset, with #N, as any file.
    let spec = format!(
        "{}#2",
        llava_testutil::fixture("datasets/parquet/swift.parquet").display()
    );
    let mut o = options(&[&spec], &[], cache.path().into());
    o.dataset_test_ratio = 0.0;
    assert_eq!(load_datasets(&o).unwrap().train.len(), 2);
    // Not a parquet file.
    let bad = cache.path().join("bad.parquet");
    std::fs::write(&bad, b"PAR1 nothing").unwrap();
    let e = llava_data::read::read_file(&bad).unwrap_err().to_string();
    assert!(
        e.contains("bad.parquet") && e.contains("not a parquet file"),
        "{e}"
    );
}
