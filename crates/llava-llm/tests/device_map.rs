//! A decoder placed by a device map over two flex devices (the CPU form of a split)
//! equals transformers as the unsplit model does:
//! full-sequence and KV-cached logits within 1e-4 relative, 32 greedy tokens identical, and a
//! LoRA adapter whose factors follow their layers' devices.

mod common;

use burn::tensor::Device;
use common::*;
use llava_checkpoint::Progress;
use llava_llm::sampling::SamplingParams;
use llava_llm::{
    CausalLm, DecoderInput, DeviceMap, ForwardOptions, GenerateOptions, GenerationConfig,
    LoadOptions, balanced_slots, generate, parse_layer_ranges, weighted_slots,
};

/// The "second" device. burn has one flex device and a second CPU backend (ndarray) costs CI
/// seven minutes to build, so both halves run on flex here: the test proves the map's
/// bookkeeping (per-layer parameters, caches, adapters, the tied head) keeps every result;
/// transfers between real devices run in scripts/gpu/device_map_smoke.sh on two GPUs.
fn second() -> Device {
    Device::flex()
}

fn load_split(name: &str, map: DeviceMap) -> CausalLm {
    let options = LoadOptions {
        progress: Progress::Hidden,
        device_map: Some(map),
        ..Default::default()
    };
    CausalLm::from_pretrained(fixture(name), &device(), &options).unwrap()
}

/// Layer 0 (and the embeddings) on flex, layer 1, the norm and the head on ndarray.
fn split_map() -> DeviceMap {
    DeviceMap {
        embed: device(),
        layers: vec![device(), second()],
        head: second(),
    }
}

fn logits(model: &CausalLm, ids: &[u32]) -> Vec<f32> {
    let out = model
        .forward(
            DecoderInput::Ids(ids_tensor(ids, &model.device())),
            None,
            ForwardOptions::default(),
        )
        .unwrap();
    out.try_into_vec_as::<f32>().unwrap()
}

fn check_family(name: &str) {
    let reference = common::reference(name);
    let model = load_split(name, split_map());
    // The parameters really are where the map says.
    assert_eq!(
        model.model.layers[0].mlp.up_proj.weight.val().device(),
        device()
    );
    assert_eq!(
        model.model.layers[1].mlp.up_proj.weight.val().device(),
        second()
    );
    assert_eq!(model.model.norm.weight.val().device(), second());

    let ids = reference.ids("input_ids");
    let vocab = model.config().vocab_size;
    let columns = common::columns(&reference);
    let (_, full_ref) = reference.f32("logits_full");
    let split = select_columns(&logits(&model, &ids), vocab, &columns);
    let err = relative_error(&split, &full_ref);
    eprintln!("{name} split: relative error {err:.2e}");
    assert!(err <= 1e-4, "{name}: split logits {err:.3e}");
    let whole = select_columns(&logits(&load(&fixture(name)), &ids), vocab, &columns);
    assert!(
        relative_error(&split, &whole) <= 1e-5,
        "{name}: split vs whole"
    );

    // Generation: the KV cache of each layer on its device; 32 greedy tokens as transformers.
    let expected = reference.ids("greedy_ids");
    let options = GenerateOptions {
        max_new_tokens: expected.len(),
        sampling: SamplingParams::greedy(),
        seed: 0,
        eos_token_ids: GenerationConfig::from_model_dir(fixture(name))
            .unwrap()
            .eos_token_ids(),
    };
    assert_eq!(
        generate(&model, &[ids], options).unwrap()[0],
        expected,
        "{name}"
    );
}

#[test]
fn mistral_split_over_two_devices() {
    check_family("mistral"); // sliding window, untied head on the second device
}

#[test]
fn qwen2_split_over_two_devices() {
    check_family("qwen2"); // q/k/v biases, tied embeddings: the head reads the first device's matrix
}

#[test]
fn lora_factors_follow_their_layers() {
    let reference = common::reference("llama3");
    let mut model = load_split("llama3", split_map());
    model
        .load_adapter(fixture("llama3").join("adapter"))
        .unwrap();
    let lora = model.model.layers[1]
        .self_attn
        .q_proj
        .lora
        .as_ref()
        .unwrap();
    assert_eq!(lora.lora_a.val().device(), second());
    let ids = reference.ids("input_ids");
    let (_, lora_ref) = reference.f32("logits_lora");
    let ours = select_columns(
        &logits(&model, &ids),
        model.config().vocab_size,
        &common::columns(&reference),
    );
    let err = relative_error(&ours, &lora_ref);
    assert!(err <= 1e-4, "split + adapter: {err:.3e}");
}

#[test]
fn maps_from_ranges_and_balance() {
    let (a, b) = (device(), second());
    let resolve = |name: &str| match name {
        "a" => Ok(device()),
        "b" => Ok(second()),
        other => Err(llava_llm::LlmError::Input(format!("no device {other}"))),
    };
    let ranges = parse_layer_ranges("0-2:a, 3:b", resolve).unwrap();
    let map = DeviceMap::from_ranges(&ranges, 4).unwrap();
    assert_eq!(map.layers, vec![a.clone(), a.clone(), a.clone(), b.clone()]);
    assert_eq!(
        (map.embed.clone(), map.head.clone()),
        (a.clone(), b.clone())
    );
    for (spec, why) in [
        ("0-2:a", "layer 3 is not mapped"),
        ("0-3:a,3:b", "mapped twice"),
        ("0-4:a", "outside the model's 4 layers"),
    ] {
        let ranges = parse_layer_ranges(spec, resolve).unwrap();
        let err = DeviceMap::from_ranges(&ranges, 4).unwrap_err().to_string();
        assert!(err.contains(why), "{spec}: {err}");
    }
    assert!(
        parse_layer_ranges("0-1:c", resolve)
            .unwrap_err()
            .to_string()
            .contains("no device c")
    );
    assert!(
        parse_layer_ranges("x:a", resolve)
            .unwrap_err()
            .to_string()
            .contains("\"x\"")
    );

    // 80 equal layers over two devices, the first also holding 10 layers' worth of vision
    // tower and embeddings: it takes 35 layers, the second 45.
    let slots = balanced_slots(2, 80, 100, 1000, 0);
    assert_eq!(slots, [vec![0; 35], vec![1; 45]].concat());
    // Four devices, 3 layers of extras on the first, 2 (an untied head) on the last: 61 layers
    // in runs of 14, 17, 17, 13.
    let slots = balanced_slots(4, 61, 10, 30, 20);
    let runs: Vec<usize> = (0..4)
        .map(|d| slots.iter().filter(|&&s| s == d).count())
        .collect();
    assert_eq!(runs, vec![14, 17, 17, 13]);
    assert!(slots.windows(2).all(|w| w[0] <= w[1]));
    // One device: everything there; more devices than layers: the first ones only.
    assert_eq!(balanced_slots(1, 5, 100, 1000, 0), vec![0; 5]);
    assert_eq!(balanced_slots(4, 2, 100, 0, 0), vec![0, 1]);
    let map = DeviceMap::balanced(&[a.clone(), b.clone()], 80, 100, 1000, 0).unwrap();
    assert_eq!(map.layers.len(), 80);
    assert!(DeviceMap::balanced(&[], 5, 1, 1, 1).is_err());
}

#[test]
fn shares_follow_free_memory_and_a_full_device_gets_no_layer() {
    // 80 layers of 100 bytes over devices with 1 : 3 free memory: 2000 and 6000 bytes.
    let slots = weighted_slots(&[1, 3], 80, 100, 0, 0);
    assert_eq!(slots.iter().filter(|&&d| d == 0).count(), 20);
    assert_eq!(slots.iter().filter(|&&d| d == 1).count(), 60);
    // The middle device has no room: its share is skipped.
    let slots = weighted_slots(&[1, 0, 1], 10, 100, 0, 0);
    assert_eq!(slots, [0, 0, 0, 0, 0, 2, 2, 2, 2, 2]);
    // Equal figures give the equal split.
    assert_eq!(
        weighted_slots(&[7, 7], 80, 100, 1000, 0),
        balanced_slots(2, 80, 100, 1000, 0)
    );
}
