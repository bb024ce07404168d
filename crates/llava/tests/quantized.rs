//! Weight-only int8 / int4 quantization of the language model on the CPU (burn's quantized
//! tensors): logits of an image prompt against the f32 model, and greedy ids against the
//! dequantized reference (the same quantized values written back as f32 weights).

use burn::tensor::{DType, Device};
use llava::{GenerateOptions, IMAGE_SENTINEL, LlavaNext, LoadOptions, Prompt, open_image};
use llava_checkpoint::Progress;
use llava_nn::QuantMethod;

fn model(name: &str) -> LlavaNext {
    let dir = llava_testutil::fixture(&format!("llava/{name}/hf"));
    let options = LoadOptions {
        dtype: DType::F32,
        progress: Progress::Hidden,
        ..LoadOptions::default()
    };
    LlavaNext::from_pretrained(&dir, &Device::flex(), &options).unwrap()
}

fn prompt(model: &LlavaNext) -> Prompt {
    let decode = model.processor().decode_options();
    let path = llava_testutil::fixture("vision/images/coco_640x480.png");
    let image = open_image(&path, &decode).unwrap();
    Prompt {
        ids: [IMAGE_SENTINEL, 11, 12, 13, 14, 15].to_vec(),
        images: vec![model.process_image(&image).unwrap()],
    }
}

fn logits(model: &LlavaNext) -> Vec<f32> {
    let (logits, _) = model.forward(&[prompt(model)]).unwrap();
    logits.cast(DType::F32).try_into_vec_as::<f32>().unwrap()
}

/// ‖a − b‖ / ‖b‖.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    llava_testutil::relative_error_l2(a, b)
}

/// The model with each quantized weight dequantized back to f32.
fn dequantized(name: &str, method: QuantMethod) -> LlavaNext {
    let mut m = model(name);
    for (path, layer) in m.language_model.linears_mut() {
        if path == "lm_head" {
            continue;
        }
        let scheme = method.scheme(layer.d_input()).unwrap();
        let w = layer.weight.clone();
        layer.weight = w.map(|w| w.quantize_dynamic(&scheme).dequantize());
    }
    m
}

fn greedy(model: &LlavaNext) -> Vec<u32> {
    let options = GenerateOptions {
        max_new_tokens: 16,
        eos_token_ids: Vec::new(),
        ..GenerateOptions::default()
    };
    model.generate(&[prompt(model)], options).unwrap().remove(0)
}

#[test]
fn int8_and_int4_logits_track_f32_and_greedy_ids_equal_the_dequantized_reference() {
    for name in ["clip-mistral", "clip-qwen2"] {
        let full = logits(&model(name));
        for (method, bound) in [(QuantMethod::Int8, 6e-2), (QuantMethod::Int4, 0.6)] {
            let mut q = model(name);
            q.quantize(method);
            let dtype = q.language_model.model.layers[0]
                .self_attn
                .q_proj
                .weight
                .val()
                .dtype();
            assert!(matches!(dtype, DType::QFloat(_)), "{dtype:?}");
            let ours = logits(&q);
            let rel = relative(&ours, &full);
            let to_ref = relative(&ours, &logits(&dequantized(name, method)));
            eprintln!(
                "{name} {method:?}: logits relative error {rel:.3e} against f32, {to_ref:.3e} against the dequantized reference"
            );
            // Measured (2026-12-08): int8 2.81e-2 / 2.15e-2, int4 0.51 / 0.34 (clip-mistral /
            // clip-qwen2). These random fixtures magnify weight error about tenfold: bf16 moves
            // them 2.95e-2 / 1.73e-2 (tests/half_precision.rs), so int8 is bf16's error here.
            assert!(rel < bound, "{name} {method:?}: {rel}");
            assert!(
                to_ref < 1e-6,
                "{name} {method:?}: {to_ref} from dequantize-then-multiply"
            );
            let ids = greedy(&q);
            assert_eq!(ids.len(), 16);
            assert_eq!(ids, greedy(&dequantized(name, method)), "{name} {method:?}");
        }
    }
}
