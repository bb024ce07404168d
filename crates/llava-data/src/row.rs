//! One training row, ms-swift's "swift" format, and where it came from.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a row came from: its file and its place there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The dataset file (or registered dataset's file).
    pub file: Arc<PathBuf>,
    /// Where in the file.
    pub place: Place,
}

/// A row's place in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// A 1-based line (`.jsonl`; `.csv` counts the header as line 1).
    Line(usize),
    /// A 0-based element of the top-level array (`.json`).
    Element(usize),
    /// The file as a whole.
    File,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match self.place {
            Place::Line(n) => write!(f, "{file}:{n}"),
            Place::Element(i) => write!(f, "{file}: element {i}"),
            Place::File => write!(f, "{file}"),
        }
    }
}

/// A row: one conversation to train on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The last round's query (`<image>` tags place its images; without tags they go first).
    pub query: String,
    /// The answer trained on.
    pub response: String,
    /// Image paths (relative to the dataset file) or `http(s)` URLs, as written in the file.
    pub images: Vec<String>,
    /// Earlier rounds, `[query, response]` pairs.
    pub history: Vec<(String, String)>,
    /// `None`: the template's default system; `Some("")`: none.
    pub system: Option<String>,
    /// Where it came from.
    pub origin: Origin,
}
