//! Images as callers give them: a local path, an `http(s)` URL, or pixels already in memory.
//! URLs are fetched with a timeout, a size cap and a content-type check (ms-swift fetched with
//! a plain GET and no limit, spec §2.3).

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::{DecodeOptions, RgbImage, VisionError, decode_image, open_image};

type Result<T> = std::result::Result<T, VisionError>;

/// One image of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageInput {
    /// A file.
    Path(PathBuf),
    /// An `http://` or `https://` address.
    Url(String),
    /// Decoded pixels.
    Image(RgbImage),
}

impl ImageInput {
    /// A URL when `text` starts with `http://` or `https://` (in any case, as schemes are), the
    /// path of a `file://` URL, else a path (surrounding whitespace removed, as ms-swift does).
    /// A path that starts with another scheme (`ftp://`) fails to load naming the scheme.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        match scheme(text) {
            Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {
                Self::Url(text.to_string())
            }
            Some(s) if s.eq_ignore_ascii_case("file") => {
                Self::Path(PathBuf::from(&text[s.len() + "://".len()..]))
            }
            _ => Self::Path(PathBuf::from(text)),
        }
    }

    /// How the image is named in messages and result files.
    pub fn describe(&self) -> String {
        match self {
            Self::Path(p) => p.display().to_string(),
            Self::Url(u) => u.clone(),
            Self::Image(i) => format!("<in-memory {}×{} image>", i.width, i.height),
        }
    }

    /// Decoded RGB pixels.
    pub fn load(&self, decode: &DecodeOptions, fetch: &FetchOptions) -> Result<RgbImage> {
        match self {
            Self::Path(path) => {
                if let Some(s) = path.to_str().and_then(scheme) {
                    return Err(VisionError::Fetch {
                        url: path.display().to_string(),
                        message: format!(
                            "the scheme {s}:// is not supported (http://, https:// and \
                             file:// are)"
                        ),
                    });
                }
                Ok(open_image(path, decode)?)
            }
            Self::Url(url) => {
                let bytes = fetch_url(url, fetch)?;
                Ok(decode_image(&bytes, url, decode)?)
            }
            Self::Image(image) => Ok(image.clone()),
        }
    }
}

impl From<&str> for ImageInput {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<String> for ImageInput {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl From<RgbImage> for ImageInput {
    fn from(image: RgbImage) -> Self {
        Self::Image(image)
    }
}

/// `scheme` of `scheme://…`: letters, digits, `+`, `-`, `.` after a letter (RFC 3986), two or
/// more of them so that a Windows drive (`C://`) is not one.
fn scheme(text: &str) -> Option<&str> {
    let (s, _) = text.split_once("://")?;
    let mut chars = s.chars();
    let first = chars.next()?;
    (s.len() > 1
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(s)
}

/// Limits on fetching an image by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Connecting, and then each read, must finish within this.
    pub timeout: Duration,
    /// The whole fetch (connecting, redirects and the body) must finish within this, so that
    /// a server trickling a byte at a time cannot hold a run forever.
    pub deadline: Duration,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
            max_bytes: 64 << 20,
        }
    }
}

/// GET `url`: status 200, an image (or untyped binary) content type, at most `max_bytes`.
pub fn fetch_url(url: &str, options: &FetchOptions) -> Result<Vec<u8>> {
    let fail = |message: String| VisionError::Fetch {
        url: url.to_string(),
        message,
    };
    let started = std::time::Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(options.timeout)
        .timeout_read(options.timeout)
        .redirects(5)
        .build();
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => fail(format!("HTTP status {code}")),
        ureq::Error::Transport(t) => fail(t.to_string()),
    })?;
    // ureq reports a missing Content-Type as text/plain: look at the header itself.
    let declared = response.header("Content-Type").is_some();
    let content_type = response.content_type().to_ascii_lowercase();
    // Object stores often serve images untyped (or with no type at all); anything named as
    // another kind is refused.
    let typed_image = content_type.starts_with("image/");
    let untyped = !declared
        || matches!(
            content_type.as_str(),
            "application/octet-stream" | "binary/octet-stream"
        );
    if !typed_image && !untyped {
        return Err(fail(format!(
            "content type {content_type:?} is not an image"
        )));
    }
    if let Some(len) = response
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        && len > options.max_bytes
    {
        return Err(fail(format!(
            "{len} bytes announced, more than the limit of {} bytes",
            options.max_bytes
        )));
    }
    // ureq's overall timeout would replace the per-read one, so the deadline is kept here,
    // between reads (each read waits at most `timeout`).
    let mut bytes = Vec::new();
    let mut reader = response.into_reader().take(options.max_bytes + 1);
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                fail(format!(
                    "reading the body: timed out ({:?} per read)",
                    options.timeout
                ))
            } else {
                fail(format!("reading the body: {e}"))
            }
        })?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        if started.elapsed() > options.deadline {
            return Err(fail(format!(
                "timed out: {} bytes in {:?}, past the deadline of {:?} for the whole fetch",
                bytes.len(),
                started.elapsed(),
                options.deadline
            )));
        }
    }
    if bytes.len() as u64 > options.max_bytes {
        return Err(fail(format!(
            "the body exceeds the limit of {} bytes",
            options.max_bytes
        )));
    }
    Ok(bytes)
}
