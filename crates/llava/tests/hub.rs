//! Hub resolution without the network: a cache laid out as hf-hub lays it out (offline), the
//! errors that name the missing file, and a download from a loopback stand-in for the hub.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::http::{Response, serve};
use llava::{HubOptions, LlavaError, resolve_model_dir};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture() -> PathBuf {
    llava_testutil::fixture("llava/clip-mistral/hf")
}

fn options(cache: &Path, offline: bool) -> HubOptions {
    HubOptions {
        revision: None,
        cache_dir: cache.to_path_buf(),
        offline,
        endpoint: None,
        progress: false,
        stall_timeout: std::time::Duration::from_secs(30),
    }
}

/// `models--org--name/{blobs,refs/main,snapshots/<commit>/<file> → ../../blobs/<hash>}`.
fn lay_out_cache(cache: &Path, repo: &str, files: &[&str]) {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    let snapshot = root.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(root.join("refs/main"), COMMIT).unwrap();
    for (i, file) in files.iter().enumerate() {
        let blob = root.join("blobs").join(format!("blob{i}"));
        std::fs::copy(fixture().join(file), &blob).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(format!("blob{i}")),
            snapshot.join(file),
        )
        .unwrap();
        #[cfg(not(unix))]
        std::fs::copy(&blob, snapshot.join(file)).unwrap();
    }
}

#[test]
fn offline_resolution_finds_the_cached_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let files = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ];
    lay_out_cache(cache.path(), "llava-hf/tiny-test", &files);
    let dir = resolve_model_dir("llava-hf/tiny-test", &options(cache.path(), true)).unwrap();
    assert!(
        dir.ends_with(format!("snapshots/{COMMIT}")),
        "{}",
        dir.display()
    );
    // A commit hash as the revision reads the snapshot directly.
    let mut by_commit = options(cache.path(), true);
    by_commit.revision = Some(COMMIT.into());
    assert_eq!(
        resolve_model_dir("llava-hf/tiny-test", &by_commit).unwrap(),
        dir
    );
    // The snapshot loads as a model.
    let config = llava::LlavaConfig::from_dir(&dir).unwrap();
    assert_eq!(config.layout, llava::Layout::LlavaHf);
}

#[test]
fn offline_errors_name_the_missing_file_and_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    lay_out_cache(
        cache.path(),
        "llava-hf/no-weights",
        &["config.json", "tokenizer.json"],
    );
    let err = resolve_model_dir("llava-hf/no-weights", &options(cache.path(), true)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LlavaError::Hub { .. }), "{text}");
    assert!(text.contains("model.safetensors"), "{text}");
    assert!(text.contains("HF_HUB_OFFLINE"), "{text}");
    let err = resolve_model_dir("llava-hf/absent", &options(cache.path(), true)).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    let err = resolve_model_dir("not a/valid id", &options(cache.path(), true)).unwrap_err();
    assert!(err.to_string().contains("not a hub id"), "{err}");
}

#[test]
fn a_local_directory_is_used_as_it_is() {
    let cache = tempfile::tempdir().unwrap();
    let dir = fixture();
    let got = resolve_model_dir(dir.to_str().unwrap(), &options(cache.path(), true)).unwrap();
    assert_eq!(got, dir);
}

#[test]
fn downloads_from_the_endpoint_into_the_cache() {
    let files: BTreeMap<String, Vec<u8>> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(fixture().join(f)).unwrap()))
        .collect();
    let endpoint = serve(move |r| {
        let Some(file) = r.path.strip_prefix("/llava-hf/tiny-online/resolve/main/") else {
            return Response::status(404);
        };
        let Some(body) = files.get(file) else {
            return Response::status(404);
        };
        // hf-hub asks with a byte range: the metadata probe (bytes=0-0), then the body.
        let range = r.headers.get("range").cloned().unwrap_or_default();
        let (start, end) = range
            .strip_prefix("bytes=")
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| {
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = b.parse().unwrap_or(body.len() - 1);
                (a, b.min(body.len() - 1))
            })
            .unwrap_or((0, body.len() - 1));
        Response {
            status: 206,
            headers: vec![
                ("Content-Type".into(), "application/octet-stream".into()),
                ("ETag".into(), format!("\"etag-{file}\"")),
                ("X-Repo-Commit".into(), COMMIT.into()),
                (
                    "Content-Range".into(),
                    format!("bytes {start}-{end}/{}", body.len()),
                ),
            ],
            body: body[start..=end].to_vec(),
            delay: std::time::Duration::ZERO,
            trickle: None,
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let mut online = options(cache.path(), false);
    online.endpoint = Some(endpoint);
    let dir = resolve_model_dir("llava-hf/tiny-online", &online).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(fixture().join(f)).unwrap(),
            "{f}"
        );
    }
    // Now cached: offline resolution finds the same snapshot.
    assert_eq!(
        resolve_model_dir("llava-hf/tiny-online", &options(cache.path(), true)).unwrap(),
        dir
    );
    // A repository the hub does not have: the error names the file and the endpoint.
    let err = resolve_model_dir("llava-hf/other", &online)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("HF_ENDPOINT"),
        "{err}"
    );
}

/// A hub that accepts the connection and then sends nothing: the download is abandoned
/// after the stall timeout with an error naming the URL and HF_HUB_OFFLINE (hf-hub's client
/// alone would wait forever).
#[test]
fn a_stalled_hub_is_an_error_not_a_hang() {
    let endpoint = serve(|_| Response {
        delay: std::time::Duration::from_secs(20),
        ..Response::status(200)
    });
    let cache = tempfile::tempdir().unwrap();
    let mut online = options(cache.path(), false);
    online.endpoint = Some(endpoint);
    online.stall_timeout = std::time::Duration::from_millis(500);
    let started = std::time::Instant::now();
    let err = resolve_model_dir("llava-hf/tiny-stalled", &online).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("stalled") && text.contains("config.json"),
        "{text}"
    );
    assert!(text.contains("HF_HUB_OFFLINE"), "{text}");
}
