//! Bad images give errors that name the image, never a panic or a giant allocation.

use std::path::{Path, PathBuf};

use llava_vision::{DecodeOptions, VisionError, decode_image, open_image};

fn fixture(name: &str) -> PathBuf {
    llava_testutil::fixture("vision/images").join(name)
}

fn decode(bytes: &[u8], name: &str) -> VisionError {
    let err = decode_image(bytes, name, &DecodeOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(name),
        "error does not name {name}: {err}"
    );
    err
}

/// CRC-32 (IEEE) for hand-made PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and IHDR announcing `width × height` RGB8, then an empty IDAT and IEND.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn corrupt_bytes_are_a_decode_error() {
    let err = decode(b"plain text, not an image", "notes.png");
    assert!(matches!(err, VisionError::Decode { .. }), "{err:?}");
    // A GIF signature followed by junk: the junk reads as a 25120x29813 screen, refused unread.
    let err = decode(b"GIF89a but then nothing sensible at all", "fake.gif");
    assert!(matches!(err, VisionError::TooLarge { .. }), "{err:?}");
    let err = decode(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3], "stub.jpg");
    assert!(matches!(err, VisionError::Decode { .. }), "{err:?}");
    assert!(matches!(
        decode(&[], "empty.png"),
        VisionError::Decode { .. } | VisionError::Io { .. }
    ));
}

#[test]
fn truncated_png_and_jpeg_are_decode_errors() {
    let png = std::fs::read(fixture("square_336.png")).unwrap();
    for cut in [png.len() / 2, png.len() - 20] {
        let err = decode(&png[..cut], "square_336.png");
        assert!(matches!(err, VisionError::Decode { .. }), "{cut}: {err:?}");
    }
    let jpeg = std::fs::read(fixture("exif_rot90_320x240.jpg")).unwrap();
    for cut in [jpeg.len() / 2, jpeg.len() * 9 / 10] {
        let err = decode(&jpeg[..cut], "photo.jpg");
        assert!(matches!(err, VisionError::Decode { .. }), "{cut}: {err:?}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn zero_sized_images_are_rejected() {
    let err = decode(&png_header(0, 10), "zero.png");
    assert!(
        matches!(err, VisionError::Decode { .. } | VisionError::Empty { .. }),
        "{err:?}"
    );
}

#[test]
fn huge_headers_are_rejected_before_any_allocation() {
    let err = decode(&png_header(50_000, 50_000), "bomb.png");
    assert!(
        matches!(
            err,
            VisionError::TooLarge {
                width: 50_000,
                height: 50_000,
                ..
            }
        ),
        "{err:?}"
    );
    // The same through a JPEG header: patch the SOF0 dimensions of a real file.
    let mut jpeg = std::fs::read(fixture("exif_rot90_320x240.jpg")).unwrap();
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&50_000u16.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&50_000u16.to_be_bytes());
    let err = decode(&jpeg, "bomb.jpg");
    assert!(matches!(err, VisionError::TooLarge { .. }), "{err:?}");
    // Under a tighter limit, an ordinary image is refused too.
    let tight = DecodeOptions {
        max_side: 100,
        ..DecodeOptions::default()
    };
    let err = decode_image(
        &std::fs::read(fixture("square_336.png")).unwrap(),
        "s.png",
        &tight,
    )
    .unwrap_err();
    assert!(
        matches!(err, VisionError::TooLarge { width: 336, .. }),
        "{err:?}"
    );
}

#[test]
fn missing_files_name_the_path() {
    let err = open_image(Path::new("/nonexistent/cat.png"), &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, VisionError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/cat.png"), "{err}");
}
