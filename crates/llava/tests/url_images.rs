//! Images by URL against a loopback server: a good PNG, a slow server, an oversized body
//! (announced and not), a page that is not an image, a 404.

mod common;

use std::time::Duration;

use common::http::{Response, serve};
use llava::DecodeOptions;
use llava::{FetchOptions, ImageInput, RgbImage, VisionError};

fn png() -> Vec<u8> {
    std::fs::read(llava_testutil::fixture("vision/images/tie_300x200.png")).unwrap()
}

fn fetch(url: &str, options: &FetchOptions) -> Result<RgbImage, VisionError> {
    ImageInput::parse(url).load(&DecodeOptions::default(), options)
}

fn message(result: Result<RgbImage, VisionError>) -> String {
    match result {
        Ok(i) => panic!("expected an error, got a {}×{} image", i.width, i.height),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_url_image_decodes_like_the_file() {
    let body = png();
    let base = serve(move |r| match r.path.as_str() {
        "/cat.png" => Response::ok("image/png", body.clone()),
        "/untyped" => Response::ok("application/octet-stream", body.clone()),
        _ => Response::status(404),
    });
    let from_file = ImageInput::parse(" fixtures/../../../fixtures/vision/images/tie_300x200.png");
    assert!(matches!(from_file, ImageInput::Path(_)));
    let expected = llava::open_image(
        &llava_testutil::fixture("vision/images/tie_300x200.png"),
        &DecodeOptions::default(),
    )
    .unwrap();
    let options = FetchOptions::default();
    assert_eq!(
        fetch(&format!("{base}/cat.png"), &options).unwrap(),
        expected
    );
    assert_eq!(
        fetch(&format!("{base}/untyped"), &options).unwrap(),
        expected
    );
    let err = message(fetch(&format!("{base}/missing.png"), &options));
    assert!(err.contains("missing.png") && err.contains("404"), "{err}");
}

#[test]
fn a_slow_server_times_out() {
    let body = png();
    let base = serve(move |_| Response {
        delay: Duration::from_secs(3),
        ..Response::ok("image/png", body.clone())
    });
    let options = FetchOptions {
        timeout: Duration::from_millis(300),
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let err = message(fetch(&format!("{base}/slow.png"), &options));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("slow.png"), "{err}");
    assert!(
        err.to_lowercase().contains("timed out") || err.contains("timeout"),
        "{err}"
    );
}

#[test]
fn oversized_bodies_are_refused() {
    let big = vec![0u8; 5000];
    let base = serve(move |r| match r.path.as_str() {
        // Announced size over the cap.
        "/announced.png" => Response::ok("image/png", big.clone()),
        // Announces nothing (claims a tiny length would break HTTP; send no length header
        // by streaming a body larger than the cap with the real length).
        _ => Response::ok("image/png", big.clone()),
    });
    let options = FetchOptions {
        max_bytes: 1000,
        ..FetchOptions::default()
    };
    let err = message(fetch(&format!("{base}/announced.png"), &options));
    assert!(
        err.contains("5000 bytes announced") && err.contains("1000"),
        "{err}"
    );
}

#[test]
fn a_body_without_length_is_cut_at_the_cap() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(&vec![7u8; 4096]);
        }
    });
    let options = FetchOptions {
        max_bytes: 1000,
        ..FetchOptions::default()
    };
    let err = message(fetch(&format!("http://{address}/stream.png"), &options));
    assert!(err.contains("exceeds the limit of 1000 bytes"), "{err}");
}

#[test]
fn a_web_page_is_not_an_image() {
    let base = serve(|_| Response::ok("text/html; charset=utf-8", b"<html></html>".to_vec()));
    let err = message(fetch(&format!("{base}/page"), &FetchOptions::default()));
    assert!(
        err.contains("text/html") && err.contains("not an image"),
        "{err}"
    );
}

#[test]
fn corrupt_bytes_from_a_url_name_the_url() {
    let base = serve(|_| Response::ok("image/png", b"\x89PNG\r\n\x1a\nbroken".to_vec()));
    let err = message(fetch(
        &format!("{base}/broken.png"),
        &FetchOptions::default(),
    ));
    assert!(
        err.contains("broken.png") && err.contains("decode"),
        "{err}"
    );
}

/// A server that trickles a byte every 100 ms never trips the per-read timeout; the overall
/// deadline ends the fetch, with both limits in the message.
#[test]
fn a_trickling_server_meets_the_overall_deadline() {
    let body = png();
    let base = serve(move |_| Response {
        trickle: Some(Duration::from_millis(100)),
        ..Response::ok("image/png", body.clone())
    });
    let options = FetchOptions {
        timeout: Duration::from_secs(2),
        deadline: Duration::from_millis(800),
        ..FetchOptions::default()
    };
    let started = std::time::Instant::now();
    let err = message(fetch(&format!("{base}/trickle.png"), &options));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("trickle.png"), "{err}");
    assert!(err.to_lowercase().contains("timed out"), "{err}");
}

/// Schemes are case-insensitive, `file://` is a path, another scheme is named as unsupported,
/// and a response with no Content-Type is taken as untyped bytes (ureq would call it
/// text/plain).
#[test]
fn schemes_and_a_missing_content_type() {
    let body = png();
    let base = serve(move |r| match r.path.as_str() {
        "/untyped" => Response {
            status: 200,
            body: body.clone(),
            ..Response::default()
        },
        _ => Response::ok("image/png", body.clone()),
    });
    let options = FetchOptions::default();
    let expected = llava::open_image(
        &llava_testutil::fixture("vision/images/tie_300x200.png"),
        &DecodeOptions::default(),
    )
    .unwrap();
    let upper = base.replace("http://", "HTTP://");
    assert!(matches!(
        ImageInput::parse(&format!("{upper}/cat.png")),
        ImageInput::Url(_)
    ));
    assert_eq!(
        fetch(&format!("{upper}/cat.png"), &options).unwrap(),
        expected
    );
    assert_eq!(
        fetch(&format!("{base}/untyped"), &options).unwrap(),
        expected
    );
    let file = llava_testutil::fixture("vision/images/tie_300x200.png");
    let url = format!("file://{}", file.display());
    assert_eq!(ImageInput::parse(&url), ImageInput::Path(file.clone()));
    assert_eq!(fetch(&url, &options).unwrap(), expected);
    let err = message(fetch("ftp://example.com/cat.png", &options));
    assert!(
        err.contains("ftp://") && err.contains("not supported"),
        "{err}"
    );
}

/// A redirect loop ends after the client's five redirects with an error naming the URL.
#[test]
fn a_redirect_loop_is_an_error() {
    let base = serve(|r| Response {
        status: 302,
        headers: vec![("Location".into(), r.path.clone())],
        ..Response::default()
    });
    let err = message(fetch(&format!("{base}/loop.png"), &FetchOptions::default()));
    assert!(err.contains("loop.png"), "{err}");
    assert!(err.to_lowercase().contains("redirect"), "{err}");
}
