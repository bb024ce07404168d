//! The composed model split over two CPU devices (two flex devices: vision tower, projector and
//! embeddings on the first, decoder layers spread, head on the second) gives transformers'
//! answers exactly as the unsplit model does, through `get_model_tokenizer` with
//! `DeviceMapSpec::Auto` and with explicit layer ranges.

use std::path::PathBuf;

use burn::tensor::Device;
use llava::{
    DeviceMapSpec, GenerationConfig, ImageInput, InferArgs, ModelKwargs, get_default_template_type,
    get_model_tokenizer, get_template, inference_with_info,
};
use llava_checkpoint::Progress;
use serde_json::Value;

/// The "second" device: flex again (see crates/llava-llm/tests/device_map.rs for why; real
/// transfers between GPUs run in scripts/gpu/device_map_smoke.sh).
fn second() -> Device {
    Device::flex()
}

fn root() -> PathBuf {
    llava_testutil::fixtures()
}

fn check(name: &str, layout: &str, spec: DeviceMapSpec) {
    let dir = root().join("llava").join(name).join(layout);
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inference.json")).unwrap())
            .unwrap();
    let case = &cases[0];
    assert_eq!(case["case"], "one_image");
    let model_type = case["model_type"].as_str().unwrap();
    let (model, tokenizer) = get_model_tokenizer(
        model_type,
        None,
        ModelKwargs {
            model_id_or_path: Some(dir.to_str().unwrap().into()),
            progress: Progress::Hidden,
            device_map: Some(spec),
            ..ModelKwargs::default()
        },
    )
    .unwrap();
    let map = model.llava.language_model.device_map();
    assert_eq!(map.embed, Device::flex());
    assert_eq!(map.head, second());
    assert!(map.layers.contains(&Device::flex()) || map.layers.contains(&second()));
    assert_eq!(
        model
            .llava
            .multi_modal_projector
            .linear_1
            .weight
            .val()
            .device(),
        Device::flex(),
        "the projector sits with the embeddings"
    );
    let template = get_template(get_default_template_type(model_type).unwrap(), tokenizer).unwrap();
    let args = InferArgs {
        images: vec![ImageInput::Path(
            root()
                .join("vision/images")
                .join(case["images"][0].as_str().unwrap()),
        )],
        generation_config: Some(GenerationConfig {
            max_new_tokens: Some(24),
            ..GenerationConfig::default()
        }),
        ..InferArgs::default()
    };
    let (response, _, info) =
        inference_with_info(&model, &template, case["query"].as_str().unwrap(), args).unwrap();
    assert_eq!(
        response,
        case["response"].as_str().unwrap(),
        "{name}/{layout}"
    );
    let ids: Vec<u64> = info.token_ids.iter().map(|&t| u64::from(t)).collect();
    let expected: Vec<u64> = case["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(ids, expected, "{name}/{layout}");
}

#[test]
fn auto_split_equals_transformers() {
    check(
        "clip-mistral",
        "original",
        DeviceMapSpec::Auto(vec![Device::flex(), second()]),
    );
}

#[test]
fn explicit_layer_ranges_with_a_tied_head() {
    // Tied embeddings: the head reads the embedding matrix on the first device.
    check(
        "siglip-qwen2",
        "hf",
        DeviceMapSpec::Layers(vec![(0..=0, Device::flex()), (1..=1, second())]),
    );
}
