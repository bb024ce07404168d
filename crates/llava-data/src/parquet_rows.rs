//! Parquet shards → rows: ms-swift's columns (`query`, `response`, `images`, `history`,
//! `system`), or a caption table (`image` + `caption`, as COCO's; the query is ms-swift's
//! constant "please describe the image." and the caption is cut at its first `&&`). Images held
//! as bytes (`{"bytes", "path"}` structs, the hub's `Image` feature) are written once into
//! `image_dir`, named by their content, and rows point at those files.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row as Record};

use crate::error::{DataError, Problem, Result};
use crate::images::Fnv64;
use crate::row::{Origin, Place, Row};

/// What the caption tables' rows ask (ms-swift's COCO conversion).
pub const CAPTION_QUERY: &str = "please describe the image.";

/// The rows of the parquet file `path` and the problems of the others.
pub fn read_parquet(path: &Path, image_dir: &Path) -> Result<(Vec<Row>, Vec<Problem>)> {
    let fail = |message: String| DataError::File {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let reader =
        SerializedFileReader::new(file).map_err(|e| fail(format!("not a parquet file: {e}")))?;
    let iter = reader.get_row_iter(None).map_err(|e| fail(e.to_string()))?;
    let origin_file = std::sync::Arc::new(path.to_path_buf());
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in iter.enumerate() {
        let origin = Origin {
            file: origin_file.clone(),
            place: Place::Element(i),
        };
        let problem = |field: Option<&str>, message: String| Problem {
            origin: origin.clone(),
            field: field.map(str::to_string),
            message,
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(problem(None, format!("cannot read the row: {e}")));
                continue;
            }
        };
        match row_of(&record, image_dir) {
            Ok(mut row) => {
                row.origin = origin.clone();
                rows.push(row);
            }
            Err((field, message)) => problems.push(problem(field, message)),
        }
    }
    Ok((rows, problems))
}

type FieldError = (Option<&'static str>, String);

fn row_of(record: &Record, image_dir: &Path) -> std::result::Result<Row, FieldError> {
    let get = |name: &str| {
        record
            .get_column_iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, f)| f)
    };
    let text = |name: &'static str,
                f: Option<&Field>|
     -> std::result::Result<Option<String>, FieldError> {
        match f {
            None | Some(Field::Null) => Ok(None),
            Some(Field::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err((Some(name), format!("expected a string, found {other}"))),
        }
    };
    let (query, response, image_fields) = if let Some(caption) = get("caption") {
        let caption = text("caption", Some(caption))?.unwrap_or_default();
        let first = caption.split("&&").next().unwrap_or("").to_string();
        let images = get("image").map(|f| vec![f]).unwrap_or_default();
        (CAPTION_QUERY.to_string(), first, images)
    } else {
        let response =
            text("response", get("response"))?.ok_or((Some("response"), "missing".to_string()))?;
        let query = text("query", get("query"))?.unwrap_or_default();
        let images: Vec<&Field> = match get("images") {
            None | Some(Field::Null) => Vec::new(),
            Some(Field::ListInternal(list)) => list.elements().iter().collect(),
            Some(single) => vec![single],
        };
        (query, response, images)
    };
    let mut images = Vec::with_capacity(image_fields.len());
    for (i, f) in image_fields.into_iter().enumerate() {
        images
            .push(image_of(f, image_dir).map_err(|m| (Some("images"), format!("item {i}: {m}")))?);
    }
    let history = match get("history") {
        None | Some(Field::Null) => Vec::new(),
        Some(Field::ListInternal(list)) => {
            let mut out = Vec::new();
            for (i, pair) in list.elements().iter().enumerate() {
                match pair {
                    Field::ListInternal(p) => match p.elements() {
                        [Field::Str(q), Field::Str(r)] => out.push((q.clone(), r.clone())),
                        _ => {
                            return Err((
                                Some("history"),
                                format!("round {i}: expected [query, response]"),
                            ));
                        }
                    },
                    _ => {
                        return Err((
                            Some("history"),
                            format!("round {i}: expected [query, response]"),
                        ));
                    }
                }
            }
            out
        }
        Some(other) => return Err((Some("history"), format!("expected a list, found {other}"))),
    };
    let system = text("system", get("system"))?;
    Ok(Row {
        query,
        response,
        images,
        history,
        system,
        origin: Origin {
            file: std::sync::Arc::new(Default::default()),
            place: Place::File,
        },
    })
}

/// A path or URL as it is; image bytes written (once) to `image_dir`.
fn image_of(field: &Field, image_dir: &Path) -> std::result::Result<String, String> {
    match field {
        Field::Str(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Field::Group(g) => {
            let mut bytes = None;
            let mut path = None;
            for (name, f) in g.get_column_iter() {
                match (name.as_str(), f) {
                    ("bytes", Field::Bytes(b)) => bytes = Some(b.data().to_vec()),
                    ("path", Field::Str(p)) => path = Some(p.clone()),
                    _ => {}
                }
            }
            match (bytes, path) {
                (Some(b), _) => write_image(&b, image_dir),
                (None, Some(p)) if !p.is_empty() => Ok(p),
                _ => Err("an image struct with neither bytes nor a path".into()),
            }
        }
        other => Err(format!("expected a path or an image struct, found {other}")),
    }
}

fn write_image(bytes: &[u8], image_dir: &Path) -> std::result::Result<String, String> {
    let mut h = Fnv64::new();
    h.write(bytes);
    let path = image_dir.join(format!("{:016x}.img", h.finish()));
    if !path.is_file() {
        std::fs::create_dir_all(image_dir).map_err(|e| format!("{}: {e}", image_dir.display()))?;
        let tmp = image_dir.join(format!(".{:016x}.{}.tmp", h.finish(), std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(path.display().to_string())
}
