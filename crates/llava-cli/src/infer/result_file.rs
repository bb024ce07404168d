//! `infer_result/<YYYYmmdd-HHMMSS>.jsonl`: one JSON line per turn, as ms-swift writes it
//! (`{"system", "query", "response", "history", "images"}`, history before the turn).

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
        let path = dir.join(format!("{}.jsonl", timestamp()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one JSON line as it is.
    pub fn append_value(&mut self, line: &serde_json::Value) -> Result<()> {
        writeln!(self.file, "{line}")
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        Ok(())
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
