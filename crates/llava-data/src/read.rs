//! Custom dataset files → rows: `.jsonl` (an object per line), `.json` (an array of objects)
//! and `.csv` (a header, then a row per record; `images` and `history` cells hold JSON lists,
//! or one path), as ms-swift 2.0.5 reads them (`../shared/spec/swift-llava.md` §6.2).
//!
//! Reading never stops at the first bad row: every row is checked and every problem is
//! returned, each with its file, line (or element) and field.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{DataError, Problem, Result};
use crate::row::{Origin, Place, Row};

/// The rows of `path`, or every problem found in it.
pub fn read_file(path: &Path) -> Result<Vec<Row>> {
    let (rows, problems) = read_file_lenient(path)?;
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(DataError::Rows(problems))
    }
}

/// The good rows of `path` and the problems of the others. An unreadable file, or one of an
/// unknown kind, is an error.
pub fn read_file_lenient(path: &Path) -> Result<(Vec<Row>, Vec<Problem>)> {
    read_file_with(path, &std::env::temp_dir().join("llava-rs-parquet-images"))
}

/// [`read_file_lenient`], with `.parquet` shards' image bytes written to `image_dir`.
pub fn read_file_with(path: &Path, image_dir: &Path) -> Result<(Vec<Row>, Vec<Problem>)> {
    if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
    {
        return crate::parquet_rows::read_parquet(path, image_dir);
    }
    let file_error = |message: String| DataError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let file = Arc::new(path.to_path_buf());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let mut reader = RowReader {
        file: file.clone(),
        rows: Vec::new(),
        problems: Vec::new(),
    };
    match ext.as_deref() {
        Some("jsonl") => reader.jsonl(&text),
        Some("json") => reader.json(&text),
        Some("csv") => reader.csv(&text),
        _ => {
            return Err(file_error(
                "unknown kind of file: a dataset is .jsonl (one JSON object per line), .json (an array of objects), .csv or .parquet".into(),
            ));
        }
    }
    Ok((reader.rows, reader.problems))
}

struct RowReader {
    file: Arc<std::path::PathBuf>,
    rows: Vec<Row>,
    problems: Vec<Problem>,
}

impl RowReader {
    fn origin(&self, place: Place) -> Origin {
        Origin {
            file: self.file.clone(),
            place,
        }
    }

    fn problem(&mut self, place: Place, field: Option<&str>, message: impl Into<String>) {
        let origin = self.origin(place);
        self.problems.push(Problem {
            origin,
            field: field.map(str::to_string),
            message: message.into(),
        });
    }

    fn jsonl(&mut self, text: &str) {
        if text.trim_start().starts_with('[') {
            self.problem(
                Place::File,
                None,
                "the file is one JSON array, not one object per line: name it .json",
            );
            return;
        }
        for (i, line) in text.lines().enumerate() {
            let place = Place::Line(i + 1);
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(map)) => self.object(place, &map),
                Ok(other) => self.problem(
                    place,
                    None,
                    format!("expected a JSON object, found {}", kind(&other)),
                ),
                Err(e) => self.problem(place, None, format!("invalid JSON: {e}")),
            }
        }
    }

    fn json(&mut self, text: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let place = Place::Element(i);
                    match item {
                        Value::Object(map) => self.object(place, map),
                        other => self.problem(
                            place,
                            None,
                            format!("expected a JSON object, found {}", kind(other)),
                        ),
                    }
                }
            }
            Ok(other) => self.problem(
                Place::File,
                None,
                format!("expected a JSON array of rows, found {}", kind(&other)),
            ),
            Err(e) if e.line() > 1 && text.trim_start().starts_with('{') => self.problem(
                Place::Line(e.line()),
                None,
                format!("invalid JSON ({e}); one object per line is a .jsonl file"),
            ),
            Err(e) => self.problem(Place::Line(e.line()), None, format!("invalid JSON: {e}")),
        }
    }

    fn csv(&mut self, text: &str) {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(text.as_bytes());
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                self.problem(Place::Line(1), None, format!("invalid CSV header: {e}"));
                return;
            }
        };
        for record in reader.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    self.problem(Place::Line(line), None, format!("invalid CSV: {e}"));
                    continue;
                }
            };
            let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
            let place = Place::Line(line);
            let mut map = Map::new();
            for (name, cell) in headers.iter().zip(record.iter()) {
                let value = match name {
                    // List-valued cells hold JSON; a bare path is a one-image list.
                    "images" | "history" if cell.trim_start().starts_with('[') => {
                        match serde_json::from_str(cell) {
                            Ok(v) => v,
                            Err(e) => {
                                self.problem(place, Some(name), format!("invalid JSON list: {e}"));
                                Value::Null
                            }
                        }
                    }
                    "images" | "history" | "system" if cell.is_empty() => Value::Null,
                    _ => Value::String(cell.to_string()),
                };
                map.insert(name.to_string(), value);
            }
            self.object(place, &map);
        }
    }

    /// Checks one row's fields; a good row is kept, a bad one adds its problems.
    fn object(&mut self, place: Place, map: &Map<String, Value>) {
        let before = self.problems.len();
        let response = match map.get("response") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => {
                let hint = if map.contains_key("messages") || map.contains_key("conversations") {
                    " (only ms-swift's query/response format is read)"
                } else {
                    ""
                };
                self.problem(place, Some("response"), format!("missing{hint}"));
                String::new()
            }
            Some(other) => {
                self.problem(
                    place,
                    Some("response"),
                    format!("expected a string, found {}", kind(other)),
                );
                String::new()
            }
        };
        let query = match map.get("query") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => {
                self.problem(
                    place,
                    Some("query"),
                    format!("expected a string, found {}", kind(other)),
                );
                String::new()
            }
        };
        let system = match map.get("system") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(other) => {
                self.problem(
                    place,
                    Some("system"),
                    format!("expected a string or null, found {}", kind(other)),
                );
                None
            }
        };
        let images = match map.get("images") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                        other => self.problem(
                            place,
                            Some("images"),
                            format!("item {i}: expected a path or URL, found {}", kind(other)),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.problem(
                    place,
                    Some("images"),
                    format!("expected a list of paths or URLs, found {}", kind(other)),
                );
                Vec::new()
            }
        };
        let history = match map.get("history") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.as_array().map(Vec::as_slice) {
                        Some([Value::String(q), Value::String(r)]) => {
                            out.push((q.clone(), r.clone()))
                        }
                        _ => self.problem(
                            place,
                            Some("history"),
                            format!("round {i}: expected [query, response], found {item}"),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.problem(
                    place,
                    Some("history"),
                    format!(
                        "expected a list of [query, response] pairs, found {}",
                        kind(other)
                    ),
                );
                Vec::new()
            }
        };
        if self.problems.len() == before {
            let origin = self.origin(place);
            self.rows.push(Row {
                query,
                response,
                images,
                history,
                system,
                origin,
            });
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    type Fields = (
        String,
        String,
        Vec<String>,
        Vec<(String, String)>,
        Option<String>,
    );

    #[test]
    fn the_three_kinds_read_to_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = write(
            dir.path(),
            "a.jsonl",
            "{\"query\": \"q1\", \"response\": \"r1\", \"images\": [\"x.png\"]}\n\n\
             {\"query\": \"q2\", \"response\": \"r2\", \"history\": [[\"h\", \"a\"]], \"system\": \"s\"}\n",
        );
        let json = write(
            dir.path(),
            "a.json",
            r#"[{"query": "q1", "response": "r1", "images": ["x.png"]},
                {"query": "q2", "response": "r2", "history": [["h", "a"]], "system": "s"}]"#,
        );
        let csv = write(
            dir.path(),
            "a.csv",
            "query,response,images,history,system\nq1,r1,x.png,,\nq2,r2,,\"[[\"\"h\"\", \"\"a\"\"]]\",s\n",
        );
        let strip = |rows: Vec<Row>| -> Vec<Fields> {
            rows.into_iter()
                .map(|r| (r.query, r.response, r.images, r.history, r.system))
                .collect()
        };
        let expected = vec![
            ("q1".into(), "r1".into(), vec!["x.png".into()], vec![], None),
            (
                "q2".into(),
                "r2".into(),
                vec![],
                vec![("h".into(), "a".into())],
                Some("s".into()),
            ),
        ];
        let from_jsonl = read_file(&jsonl).unwrap();
        assert_eq!(from_jsonl[1].origin.place, Place::Line(3));
        assert_eq!(strip(from_jsonl), expected);
        let from_json = read_file(&json).unwrap();
        assert_eq!(from_json[1].origin.place, Place::Element(1));
        assert_eq!(strip(from_json), expected);
        let from_csv = read_file(&csv).unwrap();
        assert_eq!(from_csv[0].origin.place, Place::Line(2));
        assert_eq!(strip(from_csv), expected);
    }

    /// Every bad row is reported, with its line and field, in one error.
    #[test]
    fn every_bad_row_is_reported_with_its_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "bad.jsonl",
            "{\"query\": \"ok\", \"response\": \"fine\"}\n\
             {\"query\": \"no answer\"}\n\
             {\"query\": \"q\", \"response\": \"r\"\n\
             {\"query\": \"q\", \"response\": 3, \"images\": [1]}\n\
             [1, 2]\n",
        );
        let (rows, problems) = read_file_lenient(&path).unwrap();
        assert_eq!(rows.len(), 1);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let file = path.display().to_string();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert_eq!(text[0], format!("{file}:2, field `response`: missing"));
        assert!(
            text[1].starts_with(&format!("{file}:3: invalid JSON")),
            "{}",
            text[1]
        );
        assert_eq!(
            text[2],
            format!("{file}:4, field `response`: expected a string, found a number")
        );
        assert_eq!(
            text[3],
            format!("{file}:4, field `images`: item 0: expected a path or URL, found a number")
        );
        assert_eq!(
            text[4],
            format!("{file}:5: expected a JSON object, found a list")
        );
        let all = read_file(&path).unwrap_err().to_string();
        assert!(all.starts_with("5 bad dataset row(s):"), "{all}");
    }

    #[test]
    fn a_json_array_named_jsonl_and_an_unknown_extension_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "x.jsonl", "[{\"response\": \"r\"}]");
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("name it .json"), "{e}");
        let path = write(dir.path(), "x.txt", "");
        let e = read_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("unknown kind of file") && e.contains("x.txt"),
            "{e}"
        );
        let e = read_file(&dir.path().join("missing.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.jsonl"), "{e}");
    }
}
