//! The embedded default model: the committed tiny LLaVA-NeXT (CLIP + Mistral, original layout,
//! random weights) inside the binary, so `llava infer` runs from any directory with no
//! download. Its files are written once to a directory under the system's temporary directory,
//! named by the binary's version and the files' hash, through a temporary name and a rename
//! (a concurrent or killed first run leaves no half-written model).

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use anyhow::{Context, Result};

/// Its model type.
pub const MODEL_TYPE: &str = "llava1d6-mistral-7b-instruct";

macro_rules! fixture {
    ($file:literal) => {
        (
            $file,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/llava/clip-mistral/original/",
                $file
            ))
            .as_slice(),
        )
    };
}

/// The checkpoint's files (path inside the directory, bytes).
const FILES: &[(&str, &[u8])] = &[
    fixture!("config.json"),
    fixture!("model.safetensors"),
    fixture!("tokenizer.json"),
    fixture!("tokenizer_config.json"),
    fixture!("vision_tower/config.json"),
];

/// The directory holding the embedded model's files, written on first use.
pub fn model_dir() -> Result<PathBuf> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (name, bytes) in FILES {
        name.hash(&mut hasher);
        bytes.hash(&mut hasher);
    }
    let name = format!(
        "llava-rs-embedded-{}-{:016x}",
        env!("CARGO_PKG_VERSION"),
        hasher.finish()
    );
    let dir = std::env::temp_dir().join(name);
    if dir.join("config.json").is_file() {
        return Ok(dir);
    }
    let staging = dir.with_extension(format!("partial-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        for (file, bytes) in FILES {
            let path = staging.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, bytes)?;
        }
        Ok(())
    };
    write().with_context(|| format!("writing the embedded model to {}", staging.display()))?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        // Another run put it there first.
        Err(_) if dir.join("config.json").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(e).with_context(|| format!("moving the embedded model to {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_files_are_the_fixture() {
        let dir = super::model_dir().unwrap();
        for (file, bytes) in super::FILES {
            assert_eq!(&std::fs::read(dir.join(file)).unwrap(), bytes, "{file}");
        }
        // A second call finds it.
        assert_eq!(super::model_dir().unwrap(), dir);
    }
}
