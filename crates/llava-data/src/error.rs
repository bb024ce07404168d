//! Errors of reading, validating and encoding datasets. Row problems are collected, so one
//! error lists every bad row of every file, not the first only.

use std::fmt;
use std::path::PathBuf;

use crate::row::Origin;

/// One problem with one row (or with a whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: the file and the row's line (or element) in it.
    pub origin: Origin,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// How many problems an error prints before summarising the rest.
const SHOWN: usize = 20;

/// Errors of `llava-data`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Rows that cannot be used, all of them.
    #[error("{}", list_problems(.0))]
    Rows(Vec<Problem>),
    /// A dataset file cannot be read at all.
    #[error("cannot read dataset {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `--dataset` entry that is neither a file nor a registered name.
    #[error("unknown dataset {name:?}: not a file, and not a registered name (known: {known})")]
    UnknownName {
        /// The entry.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// A registered dataset whose data is not on this machine.
    #[error("dataset {name} is not available here: {message}")]
    Unavailable {
        /// The registered name.
        name: String,
        /// What was looked for.
        message: String,
    },
    /// A malformed `--dataset` entry or option.
    #[error("{0}")]
    Spec(String),
    /// Nothing is left to train on.
    #[error("{0}")]
    Empty(String),
    /// The template could not encode a row.
    #[error("{origin}: {source}")]
    Template {
        /// The row.
        origin: Origin,
        /// The template's error.
        source: llava_template::TemplateError,
    },
    /// An image of a row could not be decoded or fetched.
    #[error("{origin}: {source}")]
    Image {
        /// The row.
        origin: Origin,
        /// The decoder's or fetcher's error.
        source: llava_vision::VisionError,
    },
}

/// `Result` with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

fn list_problems(problems: &[Problem]) -> String {
    let mut out = format!("{} bad dataset row(s):", problems.len());
    for p in problems.iter().take(SHOWN) {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    if problems.len() > SHOWN {
        out.push_str(&format!("\n  … and {} more", problems.len() - SHOWN));
    }
    out
}
