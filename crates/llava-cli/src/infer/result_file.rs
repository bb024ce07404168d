//! `infer_result/<YYYYmmdd-HHMMSS>.jsonl`: one JSON line per turn, as ms-swift writes it
//! (`{"system", "query", "response", "history", "images"}`, history before the turn).
//!
//! Several runs can share a result directory: each creates its own file (exclusively; a run
//! that starts in the same second as another gets `-1`, `-2`, ... after the stamp), and each
//! line goes out in one `write` of the whole line, so even appends from elsewhere to the same
//! file stay whole lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use llava::{History, ImageInput};
use serde_json::json;

pub struct ResultFile {
    path: PathBuf,
    file: File,
}

impl ResultFile {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stamp = timestamp();
        for n in 0..10_000u32 {
            let name = if n == 0 {
                format!("{stamp}.jsonl")
            } else {
                format!("{stamp}-{n}.jsonl")
            };
            let path = dir.join(name);
            match OpenOptions::new().create_new(true).append(true).open(&path) {
                Ok(file) => return Ok(Self { path, file }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
        anyhow::bail!(
            "{}: 10,000 result files already carry the stamp {stamp}",
            dir.display()
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one JSON line as it is, in one `write` (O_APPEND keeps it whole).
    pub fn append_value(&mut self, line: &serde_json::Value) -> Result<()> {
        let mut buf = line.to_string().into_bytes();
        buf.push(b'\n');
        self.file
            .write_all(&buf)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn append(
        &mut self,
        system: Option<&str>,
        query: &str,
        response: &str,
        history_before: &History,
        images: &[ImageInput],
    ) -> Result<()> {
        let line = json!({
            "system": system,
            "query": query,
            "response": response,
            "history": history_before.iter().map(|t| [&t.query, &t.response]).collect::<Vec<_>>(),
            "images": images.iter().map(ImageInput::describe).collect::<Vec<_>>(),
        });
        self.append_value(&line)
    }
}

/// `YYYYmmdd-HHMMSS` in UTC (the run directories' stamp).
fn timestamp() -> String {
    llava_train::output::stamp(std::time::SystemTime::now())
}
