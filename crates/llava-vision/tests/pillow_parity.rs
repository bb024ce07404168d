//! Preprocessing against the reference pipelines (`scripts/fixtures/make_vision_fixtures.py`):
//! transformers' LlavaNextImageProcessorPil and original LLaVA's `process_images`, patch by
//! patch, before rescale/normalise; and the token-count table.

use std::path::PathBuf;

use llava_vision::anyres::{AnyresConfig, Convention, ImageLayout, Size};
use llava_vision::preprocess::patches_u8;
use llava_vision::{ProcessorConfig, open_image, preprocess};

fn fixtures() -> PathBuf {
    llava_testutil::fixture("vision")
}

fn images() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn reference_patch(name: &str, convention: &str, k: usize) -> Option<Vec<u8>> {
    let path = fixtures()
        .join("patches")
        .join(format!("{name}.{convention}.{k}.png"));
    path.is_file()
        .then(|| image::open(&path).unwrap().into_rgb8().into_raw())
}

/// Every patch of every fixture image (PNG and JPEG, EXIF, CMYK, grey, RGBA) equals the
/// reference pipelines' bytes exactly, per convention.
#[test]
fn patches_match_the_reference_pipelines() {
    for (convention, tag) in [
        (Convention::Transformers, "transformers"),
        (Convention::Original, "original"),
    ] {
        let config = ProcessorConfig::llava_next(convention);
        for path in images() {
            let name = path.file_stem().unwrap().to_str().unwrap();
            let image = open_image(&path, &config.decode_options()).unwrap();
            let (layout, ours) = patches_u8(&image, &config);
            let mut worst = 0u8;
            for (k, patch) in ours.iter().enumerate() {
                let reference = reference_patch(name, tag, k)
                    .unwrap_or_else(|| panic!("{name} {tag}: no reference patch {k}"));
                let diff = patch
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| a.abs_diff(*b))
                    .max()
                    .unwrap();
                if diff > 0 {
                    eprintln!("  {name} {tag} patch {k}: max abs diff {diff}");
                }
                worst = worst.max(diff);
            }
            assert!(
                reference_patch(name, tag, ours.len()).is_none(),
                "{name} {tag}: reference has more patches"
            );
            eprintln!(
                "{tag} {name}: {} patches, max abs diff {worst}/255",
                ours.len()
            );
            assert_eq!(
                worst, 0,
                "{tag} {name}: max abs diff {worst}/255 ({layout:?})"
            );
        }
    }
}

#[test]
fn token_counts_equal_the_reference_table() {
    let bytes = std::fs::read(fixtures().join("token_counts.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let ints = |key: &str| -> Vec<i32> {
        st.tensor(key)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let sides = ints("sides");
    for (convention, key) in [
        (Convention::Transformers, "transformers"),
        (Convention::Original, "original"),
    ] {
        let table = ints(key);
        let config = AnyresConfig::llava_next(convention);
        let mut checked = 0;
        for (i, &w) in sides.iter().enumerate() {
            for (j, &h) in sides.iter().enumerate() {
                let ours = ImageLayout::new(Size::new(w as u32, h as u32), &config).tokens;
                assert_eq!(ours as i32, table[i * sides.len() + j], "{key} {w}x{h}");
                checked += 1;
            }
        }
        assert_eq!(checked, 40_000);
    }
}

#[test]
fn normalisation_matches_transformers() {
    let bytes = std::fs::read(fixtures().join("normalise.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let table: Vec<f32> = st
        .tensor("clip")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    // A 16×16 image holding every byte value in each channel.
    let pixels: Vec<u8> = (0..256u32).flat_map(|v| [v as u8; 3]).collect();
    let image = llava_vision::RgbImage::new(16, 16, pixels).unwrap();
    let mut config = ProcessorConfig::llava_next(Convention::Transformers);
    config.anyres.pinpoints = vec![[16, 16]];
    config.anyres.tile = 16;
    let processed = preprocess(&image, &config);
    // The first patch is the base image: a same-size resize, so the pixels are unchanged.
    for c in 0..3 {
        for v in 0..256 {
            assert_eq!(
                processed.pixel_values[c * 256 + v],
                table[c * 256 + v],
                "channel {c} value {v}"
            );
        }
    }
}

/// PNG modes whose 8-bit RGB is not obvious (16-bit grey, grey + alpha, RGB, RGBA; a palette
/// with transparency; 8-bit grey + alpha) give Pillow's `convert("RGB")` bytes exactly.
#[test]
fn odd_png_modes_convert_as_pillow_does() {
    let dir = fixtures().join("modes");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rgb.json")).unwrap()).unwrap();
    let cases = expected.as_object().unwrap();
    assert_eq!(cases.len(), 6);
    for (name, case) in cases {
        let image = open_image(&dir.join(name), &Default::default()).unwrap();
        let size = case["size"].as_array().unwrap();
        assert_eq!(
            (image.width as u64, image.height as u64),
            (size[0].as_u64().unwrap(), size[1].as_u64().unwrap()),
            "{name}"
        );
        let rgb: Vec<u8> = case["rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(image.pixels, rgb, "{name} ({})", case["mode"]);
    }
}
