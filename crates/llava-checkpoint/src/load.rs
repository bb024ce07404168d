use std::collections::BTreeSet;
use std::sync::Arc;

use burn::module::Module;
use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot};
use burn::tensor::DType;

use crate::files::check_header;
use crate::mapped::mapped_tensors;
use crate::progress::ProgressAdapter;
use crate::{CheckpointError, CheckpointFiles, KeyMap, Progress, Result};

/// How to load a checkpoint into a module.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Checkpoint key → module path renames.
    pub key_map: KeyMap,
    /// Cast every float tensor to this dtype while loading (on the host, tensor by tensor);
    /// `None` keeps the dtype stored in the file.
    pub dtype: Option<DType>,
    /// Whether to draw a progress bar.
    pub progress: Progress,
}

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Number of module parameters filled.
    pub applied: usize,
    /// Checkpoint keys (after renaming) that no module parameter took, sorted. A decoder
    /// loaded from a LLaVA checkpoint leaves the vision tower and projector keys here.
    pub unused: Vec<String>,
}

/// Loads every shard of `files` into `module`.
///
/// Each shard's header is checked first. Shape or dtype-kind mismatches are errors naming the
/// shard and the tensor; a module parameter that no shard provides is an error listing every
/// such parameter. Keys the module does not use are returned in the report.
pub fn load_module<M: Module>(
    module: &mut M,
    files: &CheckpointFiles,
    options: &LoadOptions,
) -> Result<LoadReport> {
    for shard in &files.shards {
        check_header(shard)?;
    }
    let bar = Arc::new(options.progress.bar(files.total_bytes(), "loading weights"));
    let cast: Option<Arc<dyn burn::store::ModuleAdapter + Send + Sync>> = options
        .dtype
        .map(|dtype| Arc::new(FloatCastAdapter::to(dtype)) as Arc<_>);

    let remapper = options.key_map.to_remapper();
    let mut missing: Option<BTreeSet<String>> = None;
    let mut unused = Vec::new();
    let mut applied = 0;
    for shard in &files.shards {
        let adapter = ProgressAdapter {
            bar: bar.clone(),
            inner: cast.clone(),
        };
        let (tensors, _) = remapper.remap(mapped_tensors(shard)?);
        let adapter: Box<dyn ModuleAdapter> = Box::new(adapter);
        let result = module.apply(tensors, None, Some(adapter), false);
        if !result.errors.is_empty() {
            let message = result
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(CheckpointError::BadTensor {
                file: shard.clone(),
                message,
            });
        }
        applied += result.applied.len();
        unused.extend(result.unused);
        let shard_missing: BTreeSet<String> = result.missing.into_iter().map(|(p, _)| p).collect();
        missing = Some(match missing {
            None => shard_missing,
            Some(prev) => prev.intersection(&shard_missing).cloned().collect(),
        });
    }
    bar.finish_and_clear();
    let missing = missing.unwrap_or_default();
    if !missing.is_empty() {
        return Err(CheckpointError::MissingTensors {
            dir: files.origin.clone(),
            names: missing.into_iter().collect(),
        });
    }
    unused.sort();
    tracing::debug!(applied, unused = unused.len(), "checkpoint loaded");
    Ok(LoadReport { applied, unused })
}
