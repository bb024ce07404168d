//! A loopback HTTP/1.1 server for tests: each request goes to a handler; answers close the
//! connection. Nothing leaves the machine.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// What the server saw.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
}

/// What it answers.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow server).
    pub delay: Duration,
    /// Send the body one byte at a time with this pause between bytes (a trickling server).
    pub trickle: Option<Duration>,
}

impl Response {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            delay: Duration::ZERO,
            trickle: None,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }
}

/// Serves on 127.0.0.1 (an ephemeral port) in a background thread; returns `http://127.0.0.1:PORT`.
pub fn serve(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let _ = answer(stream, &*handler);
            });
        }
    });
    address
}

fn answer(stream: TcpStream, handler: &dyn Fn(&Request) -> Response) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let response = handler(&Request { path, headers });
    std::thread::sleep(response.delay);
    let mut out = stream;
    write!(out, "HTTP/1.1 {} X\r\n", response.status)?;
    for (k, v) in &response.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    if !response
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        write!(out, "Content-Length: {}\r\n", response.body.len())?;
    }
    write!(out, "Connection: close\r\n\r\n")?;
    match response.trickle {
        Some(pause) => {
            for byte in &response.body {
                out.write_all(&[*byte])?;
                out.flush()?;
                std::thread::sleep(pause);
            }
        }
        None => out.write_all(&response.body)?,
    }
    out.flush()
}
