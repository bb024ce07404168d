//! Model files from a local directory or the Hugging Face hub, the way transformers finds
//! them: a hub id is resolved through the hf-hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`,
//! else `~/.cache/huggingface/hub`), downloading what is missing from `HF_ENDPOINT` with a
//! progress bar, unless `HF_HUB_OFFLINE` is set. No git, no Python.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hf_hub::api::sync::{ApiBuilder, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::{LlavaError, Result};

/// Files a LLaVA checkpoint needs besides its weights and tokenizer.
const REQUIRED: &[&str] = &["config.json"];
/// The tokenizer: a fast tokenizer's file, else a slow one's (converted when loaded).
const TOKENIZER: &[&[&str]] = &[
    &["tokenizer.json"],
    &["tokenizer.model"],
    &["vocab.json", "merges.txt"],
];
/// Files read when the repository has them.
const OPTIONAL: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "preprocessor_config.json",
    "added_tokens.json",
];
/// Gets one file of the repository, or why it cannot.
type Fetch = Box<dyn Fn(&str) -> std::result::Result<PathBuf, Unavailable>>;

/// Why a hub file could not be had (the cache's or the client's words).
#[derive(Debug, Default)]
struct Unavailable(String);

const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";

/// Where and how hub files are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Branch, tag or commit (`main` when unset).
    pub revision: Option<String>,
    /// The hf-hub cache directory.
    pub cache_dir: PathBuf,
    /// Only the cache is read (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// The hub's address (`HF_ENDPOINT`), `https://huggingface.co` when unset.
    pub endpoint: Option<String>,
    /// Progress bars while downloading.
    pub progress: bool,
    /// A download that receives nothing for this long is abandoned with an error (hf-hub's
    /// client has no read timeout, so a stalled endpoint would hang the run);
    /// `HF_HUB_DOWNLOAD_TIMEOUT` (seconds, huggingface_hub's variable), else 60 s.
    pub stall_timeout: Duration,
}

impl HubOptions {
    /// Options from the environment, as huggingface_hub reads it.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| Path::new(&h).join("hub")))
            .unwrap_or_else(|| Cache::default().path().clone());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        Self {
            revision: None,
            cache_dir,
            offline,
            endpoint: var("HF_ENDPOINT"),
            progress: true,
            stall_timeout: stall_timeout(var("HF_HUB_DOWNLOAD_TIMEOUT").as_deref()),
        }
    }

    fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

/// The directory holding the checkpoint: `id_or_path` itself when it is a directory, else the
/// hub snapshot of that repository id (downloaded unless offline).
pub fn resolve_model_dir(id_or_path: &str, options: &HubOptions) -> Result<PathBuf> {
    let path = Path::new(id_or_path);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if !looks_like_repo_id(id_or_path) {
        return Err(LlavaError::Input(format!(
            "{id_or_path}: no such directory, and not a hub id (`owner/name`)"
        )));
    }
    let repo = Repo::with_revision(
        id_or_path.to_string(),
        RepoType::Model,
        options.revision().to_string(),
    );
    let fetch: Fetch = if options.offline {
        let cache = Cache::new(options.cache_dir.clone());
        Box::new(move |file: &str| {
            cached_file(&cache, &repo, file).ok_or_else(|| Unavailable("not in the cache".into()))
        })
    } else {
        let mut builder = ApiBuilder::from_cache(Cache::new(options.cache_dir.clone()))
            .with_progress(options.progress);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder
            .build()
            .map_err(|e| hub_error(id_or_path, "", &e.to_string(), options))?;
        let cache = Cache::new(options.cache_dir.clone());
        let api_repo = Arc::new(api.repo(repo.clone()));
        let (stall, progress) = (options.stall_timeout, options.progress);
        Box::new(move |file: &str| match cached_file(&cache, &repo, file) {
            Some(path) => Ok(path),
            None => watched_download(&api_repo, file, stall, progress),
        })
    };
    let mut dir = None;
    for file in REQUIRED {
        let got = fetch(file).map_err(|why| hub_error(id_or_path, file, &why.0, options))?;
        dir.get_or_insert_with(|| got.parent().map(Path::to_path_buf).unwrap_or_default());
    }
    let tokenizer = TOKENIZER
        .iter()
        .find(|files| files.iter().all(|f| fetch(f).is_ok()));
    if tokenizer.is_none() {
        let why = fetch("tokenizer.json").err().unwrap_or_default();
        return Err(hub_error(
            id_or_path,
            "tokenizer.json (or tokenizer.model, or vocab.json + merges.txt)",
            &why.0,
            options,
        ));
    }
    for file in OPTIONAL {
        // Absent from the repository is fine; nothing else reads them.
        let _ = fetch(file);
    }
    match fetch(INDEX) {
        Ok(index) => {
            for shard in shard_names(&index)? {
                fetch(&shard).map_err(|why| hub_error(id_or_path, &shard, &why.0, options))?;
            }
        }
        Err(_) => {
            fetch(SINGLE).map_err(|why| {
                hub_error(id_or_path, &format!("{INDEX} or {SINGLE}"), &why.0, options)
            })?;
        }
    }
    Ok(dir.expect("REQUIRED is not empty"))
}

/// `HF_HUB_DOWNLOAD_TIMEOUT`'s seconds (a positive number), else 60 s.
fn stall_timeout(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

/// Downloads `file` on a thread of its own and waits while bytes keep coming: a download
/// that receives nothing for `stall` (the metadata request included) is abandoned with an
/// error; its thread is left to the process's end.
fn watched_download(
    api_repo: &Arc<ApiRepo>,
    file: &str,
    stall: Duration,
    progress: bool,
) -> std::result::Result<PathBuf, Unavailable> {
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let watch = Watch {
        start,
        last: last.clone(),
        bar: progress.then(indicatif::ProgressBar::hidden),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let (repo, name) = (api_repo.clone(), file.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(repo.download_with_progress(&name, watch));
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => return result.map_err(|e| Unavailable(e.to_string())),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Unavailable(
                    "the download thread ended without a result".into(),
                ));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let quiet = start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if quiet > stall {
                    return Err(Unavailable(format!(
                        "{}: the download stalled (nothing received for {stall:?})",
                        api_repo.url(file)
                    )));
                }
            }
        }
    }
}

/// hf-hub's progress callbacks: when bytes last came (for the stall watchdog), and a bar.
struct Watch {
    start: Instant,
    last: Arc<AtomicU64>,
    bar: Option<indicatif::ProgressBar>,
}

impl Watch {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl hf_hub::api::Progress for Watch {
    fn init(&mut self, size: usize, filename: &str) {
        self.touch();
        if let Some(bar) = &mut self.bar {
            *bar = indicatif::ProgressBar::new(size as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(filename.to_string());
        }
    }

    fn update(&mut self, size: usize) {
        self.touch();
        if let Some(bar) = &self.bar {
            bar.inc(size as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// A file of the cached snapshot for the repository's revision (a branch or tag through
/// `refs/`, or a commit hash directly).
fn cached_file(cache: &Cache, repo: &Repo, file: &str) -> Option<PathBuf> {
    if let Some(path) = cache.repo(repo.clone()).get(file) {
        return Some(path);
    }
    let snapshot = cache
        .path()
        .join(repo.folder_name())
        .join("snapshots")
        .join(repo.revision())
        .join(file);
    snapshot.is_file().then_some(snapshot)
}

fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|source| {
        LlavaError::File(llava_checkpoint::FileError::Io {
            path: index.to_path_buf(),
            source,
        })
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        LlavaError::File(llava_checkpoint::FileError::Config {
            path: index.to_path_buf(),
            message: e.to_string(),
        })
    })?;
    let map = value
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            LlavaError::File(llava_checkpoint::FileError::Config {
                path: index.to_path_buf(),
                message: "missing field `weight_map`".into(),
            })
        })?;
    let mut names: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn hub_error(id: &str, file: &str, why: &str, options: &HubOptions) -> LlavaError {
    let what = if options.offline {
        format!(
            "HF_HUB_OFFLINE is set and the cache {} lacks it: download it while online \
             (unset HF_HUB_OFFLINE), or pass a local directory",
            options.cache_dir.display()
        )
    } else {
        format!(
            "{why}; check the id and the network (HF_ENDPOINT {}), or set HF_HUB_OFFLINE=1 to \
             use the cache {} only",
            options.endpoint.as_deref().unwrap_or("unset"),
            options.cache_dir.display()
        )
    };
    LlavaError::Hub {
        repo: id.to_string(),
        file: file.to_string(),
        message: what,
    }
}

fn looks_like_repo_id(id: &str) -> bool {
    let mut parts = id.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_timeout_reads_huggingface_hubs_variable() {
        assert_eq!(stall_timeout(None), Duration::from_secs(60));
        assert_eq!(stall_timeout(Some(" 2.5 ")), Duration::from_millis(2500));
        assert_eq!(stall_timeout(Some("0")), Duration::from_secs(60));
        assert_eq!(stall_timeout(Some("soon")), Duration::from_secs(60));
    }
}
