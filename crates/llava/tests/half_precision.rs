//! The whole LLaVA path (tower, projector, packing, decoder) in bf16 against the same weights
//! in f32, on the CPU: how far half precision moves the logits of an image prompt. The GPU
//! counterpart, ours against transformers on full-size weights, is `scripts/gpu/fidelity.sh`
//! (docs/benchmarks.md).

use burn::tensor::{DType, Device};
use llava::{IMAGE_SENTINEL, LlavaNext, LoadOptions, Prompt, open_image};
use llava_checkpoint::Progress;
use std::path::PathBuf;

fn root() -> PathBuf {
    llava_testutil::fixtures()
}

/// Logits `[positions, vocab]` of one image prompt, as f32 rows.
fn logits(name: &str, dtype: DType) -> (usize, Vec<f32>) {
    let dir = root().join("llava").join(name).join("hf");
    let options = LoadOptions {
        dtype,
        progress: Progress::Hidden,
        ..LoadOptions::default()
    };
    let model = LlavaNext::from_pretrained(&dir, &Device::flex(), &options).unwrap();
    let decode = model.processor().decode_options();
    let image = open_image(&root().join("vision/images/coco_640x480.png"), &decode).unwrap();
    let prompt = Prompt {
        ids: [IMAGE_SENTINEL, 11, 12, 13, 14, 15].to_vec(),
        images: vec![model.process_image(&image).unwrap()],
    };
    let (logits, _) = model.forward(&[prompt]).unwrap();
    let [_, _, vocab] = logits.dims();
    let values = logits.cast(DType::F32).try_into_vec_as::<f32>().unwrap();
    (vocab, values)
}

#[test]
fn bf16_logits_of_an_image_prompt_track_f32() {
    for name in ["clip-mistral", "clip-qwen2", "siglip-qwen2"] {
        let (vocab, full) = logits(name, DType::F32);
        let (_, half) = logits(name, DType::BF16);
        assert_eq!(full.len(), half.len());
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum::<f64>();
        let mut worst_cos = 1f64;
        for (f, h) in full.chunks(vocab).zip(half.chunks(vocab)) {
            let cos = dot(f, h) / (dot(f, f) * dot(h, h)).sqrt();
            worst_cos = worst_cos.min(cos);
        }
        let diff: Vec<f32> = full.iter().zip(&half).map(|(f, h)| f - h).collect();
        let rel = (dot(&diff, &diff) / dot(&full, &full)).sqrt();
        eprintln!(
            "{name}: {} positions, bf16 vs f32: cosine min {worst_cos:.5}, relative error {rel:.2e}",
            full.len() / vocab
        );
        // Measured (2026-12-01): clip-mistral 0.98645 / 2.95e-2, clip-qwen2 0.99894 / 1.73e-2,
        // siglip-qwen2 0.99966 / 1.37e-2: the range of the decoder fixtures' bf16 error
        // (tests/half_precision.rs of llava-llm; transformers' own: 0.009–0.050).
        assert!(worst_cos > 0.98, "{name}: cosine min {worst_cos}");
        assert!(rel < 6e-2, "{name}: relative error {rel}");
    }
}
