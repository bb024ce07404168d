//! `--dataset` / `--val-dataset` entries → training and validation rows → samples, every row
//! and image checked before the first step.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::encode::{Encoder, Sample};
use crate::error::{DataError, Problem, Result};
use crate::images::ImageCache;
use crate::read::read_file_with;
use crate::registry;
use crate::row::Row;
use crate::spec::{DatasetSpec, Source};
use crate::split::{sample, train_validation_split};

/// What to read and how to split it.
#[derive(Debug, Clone)]
pub struct DataOptions {
    /// Training entries.
    pub dataset: Vec<DatasetSpec>,
    /// Validation entries; when given, nothing is split off the training rows.
    pub val_dataset: Vec<DatasetSpec>,
    /// Share of each training dataset held out for validation (ms-swift: 0.01).
    pub dataset_test_ratio: f64,
    /// Seed of sampling and of the split (ms-swift: 42).
    pub dataset_seed: u64,
    /// Where shipped datasets are written out and URL images cached.
    pub cache_dir: PathBuf,
    /// Directories holding mirrors of registered datasets (`<dir>/<name>/`).
    pub dataset_dirs: Vec<PathBuf>,
    /// The hf-hub cache, where registered hub datasets are looked for last.
    pub hub_cache: Option<PathBuf>,
}

/// Training and validation rows.
#[derive(Debug, Clone, Default)]
pub struct Datasets {
    /// Rows trained on.
    pub train: Vec<Row>,
    /// Rows evaluated on.
    pub validation: Vec<Row>,
}

/// Reads every entry. Problems of all files are reported together.
pub fn load_datasets(options: &DataOptions) -> Result<Datasets> {
    if options.dataset.is_empty() {
        return Err(DataError::Spec(
            "no --dataset given: name a .jsonl/.json/.csv file or a registered dataset".into(),
        ));
    }
    if !(0.0..1.0).contains(&options.dataset_test_ratio) {
        return Err(DataError::Spec(format!(
            "--dataset-test-ratio {} must be in [0, 1)",
            options.dataset_test_ratio
        )));
    }
    let mut problems = Vec::new();
    let mut out = Datasets::default();
    let split = options.val_dataset.is_empty();
    for spec in &options.dataset {
        let rows = read_spec(spec, options, &mut problems)?;
        if split {
            let (t, v) =
                train_validation_split(rows, options.dataset_test_ratio, options.dataset_seed);
            out.train.extend(t);
            out.validation.extend(v);
        } else {
            out.train.extend(rows);
        }
    }
    for spec in &options.val_dataset {
        let rows = read_spec(spec, options, &mut problems)?;
        out.validation.extend(rows);
    }
    if !problems.is_empty() {
        return Err(DataError::Rows(problems));
    }
    Ok(out)
}

/// One entry's rows (sampled), its problems added to `problems`.
fn read_spec(
    spec: &DatasetSpec,
    options: &DataOptions,
    problems: &mut Vec<Problem>,
) -> Result<Vec<Row>> {
    let files = match &spec.source {
        Source::File(path) => vec![path.clone()],
        Source::Name(name) => registry::find(name)?.files(
            &options.cache_dir,
            &options.dataset_dirs,
            options.hub_cache.as_deref(),
        )?,
    };
    let mut rows = Vec::new();
    for file in &files {
        let (good, bad) = read_file_with(file, &options.cache_dir.join("parquet-images"))?;
        rows.extend(good);
        problems.extend(bad);
    }
    Ok(match spec.sample {
        Some(n) => sample(rows, n, options.dataset_seed),
        None => rows,
    })
}

/// How [`encode_rows`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncodeReport {
    /// Rows kept.
    pub kept: usize,
    /// Rows dropped as longer than `max_length`.
    pub too_long: usize,
}

/// Checks every image of `rows` (each distinct one decoded once) and encodes every row. All bad
/// rows are reported in one error; rows too long are dropped as the strategy says. `what`
/// names the split in messages ("training", "validation").
pub fn encode_rows(
    encoder: &Encoder,
    cache: &ImageCache,
    rows: &[Row],
    what: &str,
) -> Result<(Vec<Sample>, EncodeReport)> {
    let (sizes, mut problems) = cache.check_rows(rows);
    // Rows encode independently (hundreds of thousands for the demo model): in parallel, then
    // gathered in row order so that kept rows and problems come out as a sequential pass gives.
    let encoded: Vec<Option<Result<Option<Sample>>>> = rows
        .par_iter()
        .zip(&sizes)
        .map(|(row, sizes)| sizes.as_ref().map(|sizes| encoder.encode(row, sizes)))
        .collect();
    let mut samples = Vec::with_capacity(rows.len());
    let mut report = EncodeReport::default();
    for outcome in encoded {
        let Some(outcome) = outcome else { continue };
        match outcome {
            Ok(Some(s)) => samples.push(s),
            Ok(None) => report.too_long += 1,
            Err(DataError::Rows(mut p)) => problems.append(&mut p),
            Err(DataError::Template { origin, source }) => problems.push(Problem {
                origin,
                field: None,
                message: source.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    if !problems.is_empty() {
        return Err(DataError::Rows(problems));
    }
    report.kept = samples.len();
    if report.too_long > 0 {
        tracing::warn!(
            dropped = report.too_long,
            max_length = ?encoder.max_length,
            "{what} rows longer than --max-length (images expanded) dropped"
        );
    }
    if samples.is_empty() && !rows.is_empty() {
        return Err(DataError::Empty(format!(
            "no {what} row is left: all {} are longer than --max-length {} (images expanded); raise it or use --truncation-strategy truncation_left",
            rows.len(),
            encoder.max_length.unwrap_or(0)
        )));
    }
    Ok((samples, report))
}
