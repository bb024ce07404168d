//! `llava infer` on a dataset (ms-swift's dataset mode, `../shared/spec/swift-llava.md` §4.5):
//! the validation rows of the training run's split (`--load-dataset-config true`) or of given
//! datasets, answered in batches, each printed with its `[LABELS]` and written to
//! `infer_result/<timestamp>.jsonl`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use llava::{ImageInput, InferArgs, Model, Template, Turn, inference_batch};
use llava_data::rng::permutation;
use llava_data::{DataOptions, DatasetSpec, ImageCache, ImageRef, Row, load_datasets};
use llava_train::SftArgs;
use serde_json::json;

use super::Args;
use super::result_file::ResultFile;

/// Whether the flags ask for dataset mode.
pub fn wanted(args: &Args) -> bool {
    args.load_dataset_config || !args.dataset.is_empty() || !args.val_dataset.is_empty()
}

/// The rows to answer: the validation split, then `--show-dataset-sample` of them.
pub fn rows(args: &Args) -> Result<Vec<Row>> {
    let trained: Option<SftArgs> = match (&args.model.ckpt_dir, args.load_dataset_config) {
        (Some(ckpt), true) => {
            let path = ckpt.join("sft_args.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("--load-dataset-config needs {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
        }
        (None, true) => bail!("--load-dataset-config true needs --ckpt-dir"),
        _ => None,
    };
    let pick = |ours: &[String], theirs: Option<&Vec<String>>| -> Vec<String> {
        if ours.is_empty() {
            theirs.cloned().unwrap_or_default()
        } else {
            ours.to_vec()
        }
    };
    let dataset = pick(&args.dataset, trained.as_ref().map(|t| &t.dataset));
    let val_dataset = pick(&args.val_dataset, trained.as_ref().map(|t| &t.val_dataset));
    let seed = args
        .dataset_seed
        .or(trained.as_ref().map(|t| t.dataset_seed))
        .unwrap_or(42);
    let ratio = args
        .dataset_test_ratio
        .or(trained.as_ref().map(|t| t.dataset_test_ratio))
        .unwrap_or(0.01);
    let mut dataset_dirs = args.dataset_dir.clone();
    if let Some(t) = &trained {
        dataset_dirs.extend(t.dataset_dir.iter().cloned());
    }
    let options = DataOptions {
        // Only validation rows are answered: a --val-dataset alone is read whole.
        dataset: DatasetSpec::parse_list(&dataset)?,
        val_dataset: DatasetSpec::parse_list(&val_dataset)?,
        dataset_test_ratio: ratio,
        dataset_seed: seed,
        cache_dir: llava_train::cache_dir().join("datasets"),
        dataset_dirs,
        hub_cache: Some(llava::HubOptions::from_env().cache_dir),
    };
    let validation = if options.dataset.is_empty() {
        let mut only_val = options.clone();
        only_val.dataset = only_val.val_dataset.clone();
        only_val.val_dataset.clear();
        only_val.dataset_test_ratio = 0.0;
        load_datasets(&only_val)?.train
    } else {
        load_datasets(&options)?.validation
    };
    if validation.is_empty() {
        bail!(
            "no validation row: the split holds none out (--dataset-test-ratio 0?) and no --val-dataset is given"
        );
    }
    let n = args.show_dataset_sample;
    if n >= 0 && (n as usize) < validation.len() {
        let mut keep = permutation(validation.len(), seed)[..n as usize].to_vec();
        keep.sort_unstable();
        let shown = keep.into_iter().map(|i| validation[i].clone()).collect();
        if n == 10 {
            eprintln!(
                "You can set `--show-dataset-sample -1` to perform inference on the entire dataset."
            );
        }
        return Ok(shown);
    }
    Ok(validation)
}

/// Answers `rows` in batches, printing each with its label and writing the result file.
pub fn run(
    args: &Args,
    model: &Model,
    template: &Template,
    base: InferArgs,
    rows: &[Row],
    result_dir: &Path,
) -> Result<()> {
    let cache = ImageCache {
        dir: llava_train::cache_dir().join("images"),
        fetch: base.fetch.clone(),
        decode: base
            .decode
            .unwrap_or_else(|| model.llava.processor().decode_options()),
    };
    let mut results = ResultFile::create(result_dir)?;
    let mut out = std::io::stdout().lock();
    for chunk in rows.chunks(args.eval_batch_size.max(1)) {
        let mut queries = Vec::with_capacity(chunk.len());
        for row in chunk {
            let images = ImageRef::of_row(row)
                .iter()
                .map(|r| cache.local_path(r).map(ImageInput::Path))
                .collect::<std::result::Result<Vec<_>, _>>()
                .with_context(|| format!("{}: images", row.origin))?;
            let history = row
                .history
                .iter()
                .map(|(q, r)| Turn {
                    query: q.clone(),
                    response: r.clone(),
                    images: Vec::new(),
                })
                .collect();
            queries.push((
                row.query.clone(),
                InferArgs {
                    images,
                    history,
                    system: row.system.clone().or(base.system.clone()),
                    ..base.clone()
                },
            ));
        }
        let answers = inference_batch(model, template, &queries)
            .with_context(|| format!("answering from {}", chunk[0].origin))?;
        for (row, (response, _)) in chunk.iter().zip(answers) {
            writeln!(out, "[QUERY] {}", row.query)?;
            writeln!(out, "[RESPONSE] {response}")?;
            writeln!(out, "[LABELS] {}", row.response)?;
            writeln!(out, "[IMAGES] {:?}", row.images)?;
            writeln!(out, "{}", "-".repeat(50))?;
            results.append_value(&json!({
                "system": row.system,
                "query": row.query,
                "response": response,
                "label": row.response,
                "history": row.history.iter().map(|(q, r)| [q, r]).collect::<Vec<_>>(),
                "images": row.images,
            }))?;
        }
    }
    eprintln!("save_result_path: {}", results.path().display());
    Ok(())
}
