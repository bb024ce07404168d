//! Image preprocessing on the CPU: a 1024×768 JPEG to LLaVA-NeXT pixel values (decode,
//! anyres resize-and-pad, 4 tiles + base, normalise), and its two halves.
//!
//! `cargo bench -p llava-benches --bench preprocess`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use llava_vision::{Convention, DecodeOptions, ProcessorConfig, decode_image, preprocess};

/// A deterministic 1024×768 photo-like JPEG (smooth gradients and edges), quality 90.
fn jpeg_1024x768() -> Vec<u8> {
    let (w, h) = (1024u32, 768u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let ring = (((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt() * 40.0).sin();
        image::Rgb([
            (120.0 + 100.0 * (3.0 * fx + 2.0 * fy).sin()) as u8,
            (128.0 + 90.0 * ring) as u8,
            if (x / 64 + y / 64) % 2 == 0 { 40 } else { 200 },
        ])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&img)
        .expect("encoding an in-memory image");
    bytes
}

fn bench(c: &mut Criterion) {
    let bytes = jpeg_1024x768();
    let options = DecodeOptions::default();
    let config = ProcessorConfig::llava_next(Convention::Transformers);
    let decoded = decode_image(&bytes, "bench.jpg", &options).unwrap();
    let mut group = c.benchmark_group("preprocess_1024x768_jpeg");
    group.bench_function("decode_and_preprocess", |b| {
        b.iter(|| {
            let image = decode_image(black_box(&bytes), "bench.jpg", &options).unwrap();
            black_box(preprocess(&image, &config).pixel_values.len())
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| black_box(decode_image(black_box(&bytes), "bench.jpg", &options).unwrap()))
    });
    group.bench_function("preprocess", |b| {
        b.iter(|| black_box(preprocess(black_box(&decoded), &config).pixel_values.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
