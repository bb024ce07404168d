//! The composed model against transformers (`scripts/fixtures/make_llava_fixtures.py`): for
//! every tiny LLaVA fixture, both layouts, every case (one image of each awkward size, text
//! only, two images in one prompt, a batch of two prompts with different aspect ratios):
//! image token counts exact and logits within 1e-4 relative on every case; 24 greedy tokens
//! identical on the text-only, two-image and batch cases and on the first and last single-image
//! cases (a generation re-runs the whole prefill, and CI time is finite).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use llava::{GenerateOptions, LlavaNext, LoadOptions, Prompt, open_image};
use llava_checkpoint::Progress;

const TOLERANCE: f32 = 1e-4;

fn root() -> PathBuf {
    llava_testutil::fixtures()
}

struct Reference {
    bytes: Vec<u8>,
}

impl Reference {
    fn open(dir: &Path) -> (Self, BTreeMap<String, Vec<Vec<String>>>) {
        let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let cases = meta.metadata().as_ref().unwrap()["cases"].clone();
        (Self { bytes }, serde_json::from_str(&cases).unwrap())
    }

    fn get(&self, key: &str) -> Option<(Vec<usize>, Vec<u8>)> {
        let st = safetensors::SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).ok()?;
        Some((t.shape().to_vec(), t.data().to_vec()))
    }

    fn ints(&self, key: &str) -> Vec<i64> {
        let (_, data) = self.get(key).unwrap_or_else(|| panic!("no {key}"));
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn floats(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let (shape, data) = self.get(key).unwrap();
        (
            shape,
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        )
    }
}

fn check_model(name: &str, layout: &str) {
    let dir = root().join("llava").join(name).join(layout);
    let device = Device::flex();
    let options = LoadOptions {
        progress: Progress::Hidden,
        ..LoadOptions::default()
    };
    let model = LlavaNext::from_pretrained(&dir, &device, &options).unwrap();
    let (reference, cases) = Reference::open(&dir);
    let decode = model.processor().decode_options();
    let mut failures = Vec::new();
    let singles: Vec<&String> = cases.keys().filter(|c| c.starts_with("one.")).collect();
    let greedy_cases: Vec<&String> = cases
        .keys()
        .filter(|c| {
            !c.starts_with("one.") || Some(c) == singles.first() || Some(c) == singles.last()
        })
        .collect();
    for (case, prompt_images) in &cases {
        let prompts: Vec<Prompt> = prompt_images
            .iter()
            .enumerate()
            .map(|(i, images)| Prompt {
                ids: reference.ints(&format!("{case}.input_ids.{i}")),
                images: model
                    .process_images(
                        &images
                            .iter()
                            .map(|f| {
                                open_image(&root().join("vision/images").join(f), &decode).unwrap()
                            })
                            .collect::<Vec<_>>(),
                    )
                    .unwrap(),
            })
            .collect();
        let (logits, batch) = model.forward(&prompts).unwrap();
        let tokens: Vec<i64> = batch
            .image_tokens
            .iter()
            .flatten()
            .map(|&n| n as i64)
            .collect();
        assert_eq!(
            tokens,
            reference.ints(&format!("{case}.image_tokens")),
            "{name}/{layout} {case}: image tokens"
        );
        let mask = reference.ints(&format!("{case}.attention_mask"));
        let [b, len, vocab] = logits.dims();
        assert_eq!(
            mask.len(),
            b * len,
            "{name}/{layout} {case}: sequence length"
        );
        let rows = reference.ints(&format!("{case}.logits_rows"));
        let (shape, expected) = reference.floats(&format!("{case}.logits"));
        assert_eq!(shape, vec![b, rows.len(), vocab]);
        let ours = logits.try_into_vec_as::<f32>().unwrap();
        let (mut worst_diff, mut worst_ref) = (0f32, 0f32);
        for r in 0..b {
            for (k, &row) in rows.iter().enumerate() {
                if mask[r * len + row as usize] == 0 {
                    continue;
                }
                for v in 0..vocab {
                    let a = ours[(r * len + row as usize) * vocab + v];
                    let e = expected[(r * rows.len() + k) * vocab + v];
                    worst_diff = worst_diff.max((a - e).abs());
                    worst_ref = worst_ref.max(e.abs());
                }
            }
        }
        let rel = worst_diff / worst_ref;
        eprintln!(
            "{name}/{layout} {case}: {len} positions, image tokens {tokens:?}, logits rel err {rel:.2e}"
        );
        if rel >= TOLERANCE {
            failures.push(format!("{case}: logits rel err {rel:.2e}"));
            continue;
        }

        if !greedy_cases.contains(&case) {
            continue;
        }
        let greedy = model
            .generate(
                &prompts,
                GenerateOptions {
                    max_new_tokens: 24,
                    ..GenerateOptions::default()
                },
            )
            .unwrap();
        let expected = reference.ints(&format!("{case}.greedy_ids"));
        let got: Vec<i64> = greedy.iter().flatten().map(|&t| t as i64).collect();
        if got != expected {
            failures.push(format!(
                "{case}: greedy tokens {got:?}, expected {expected:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}/{layout}:\n{}",
        failures.join("\n")
    );
}

#[test]
fn clip_mistral_llava_hf_layout() {
    check_model("clip-mistral", "hf");
}

#[test]
fn clip_mistral_original_layout() {
    check_model("clip-mistral", "original");
}

#[test]
fn clip_qwen2_llava_hf_layout() {
    check_model("clip-qwen2", "hf");
}

#[test]
fn clip_qwen2_original_layout() {
    check_model("clip-qwen2", "original");
}

#[test]
fn siglip_qwen2_onevision_llava_hf_layout() {
    check_model("siglip-qwen2", "hf");
}

#[test]
fn siglip_qwen2_onevision_original_layout() {
    check_model("siglip-qwen2", "original");
}
