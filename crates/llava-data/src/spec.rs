//! A `--dataset` / `--val-dataset` entry: a file or a registered name, with ms-swift's `#N`
//! suffix (`coco-en-2-mini#200`: 200 rows, drawn with replacement beyond the dataset's size).

use std::path::PathBuf;

use crate::error::{DataError, Result};

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    /// What to read.
    pub source: Source,
    /// `#N`: how many rows to take.
    pub sample: Option<usize>,
}

/// A file or a registered name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A `.jsonl` / `.json` / `.csv` file.
    File(PathBuf),
    /// A name of [`crate::registry::BUILTIN`].
    Name(String),
}

impl DatasetSpec {
    /// Parses `text`. It names a file when it has a dataset extension or a path separator,
    /// or when such a file exists (ms-swift 2.0.5 required a `/`; 2.2 dropped that).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (body, sample) = match text.rsplit_once('#') {
            Some((body, n)) => {
                let n: usize = n.parse().map_err(|_| {
                    DataError::Spec(format!(
                        "dataset {text:?}: the part after `#` must be a row count, found {n:?}"
                    ))
                })?;
                if n == 0 {
                    return Err(DataError::Spec(format!(
                        "dataset {text:?}: `#0` would take no row"
                    )));
                }
                (body, Some(n))
            }
            None => (text, None),
        };
        if body.is_empty() {
            return Err(DataError::Spec(format!("dataset {text:?} names nothing")));
        }
        let lower = body.to_ascii_lowercase();
        let looks_like_file = [".jsonl", ".json", ".csv", ".parquet"]
            .iter()
            .any(|e| lower.ends_with(e))
            || body.contains('/')
            || body.contains(std::path::MAIN_SEPARATOR)
            || std::path::Path::new(body).is_file();
        let source = if looks_like_file {
            Source::File(PathBuf::from(body))
        } else {
            Source::Name(body.to_string())
        };
        Ok(Self { source, sample })
    }

    /// Several entries, separated by commas or whitespace (a CLI value may hold many).
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Self>> {
        items
            .iter()
            .flat_map(|s| {
                s.as_ref()
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .map(|s| Self::parse(&s))
            .collect()
    }

    /// The entry as written.
    pub fn display(&self) -> String {
        let body = match &self.source {
            Source::File(p) => p.display().to_string(),
            Source::Name(n) => n.clone(),
        };
        match self.sample {
            Some(n) => format!("{body}#{n}"),
            None => body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_names_and_sampling_suffixes() {
        let s = DatasetSpec::parse("coco-en-2-mini#200").unwrap();
        assert_eq!(s.source, Source::Name("coco-en-2-mini".into()));
        assert_eq!(s.sample, Some(200));
        let s = DatasetSpec::parse("train.jsonl").unwrap();
        assert_eq!(s.source, Source::File("train.jsonl".into()));
        assert_eq!(s.sample, None);
        let s = DatasetSpec::parse("data/x#3").unwrap();
        assert_eq!(s.source, Source::File("data/x".into()));
        assert_eq!(s.display(), "data/x#3");
        let list = DatasetSpec::parse_list(&["a.jsonl,b.csv#2", "llava-tiny"]).unwrap();
        assert_eq!(list.len(), 3);
        for bad in ["x#", "x#ten", "x#0", "#4"] {
            let e = DatasetSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
