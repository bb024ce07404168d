//! Checkpoint loading: sharded files, every LLaVA key layout, and errors that name what is
//! wrong (missing tensor, wrong shape, truncated file, config field, stray layers, adapter).

mod common;

use common::*;
use llava_checkpoint::Progress;
use llava_llm::{CausalLm, DecoderInput, ForwardOptions, LoadOptions};

fn try_load(dir: &std::path::Path) -> Result<CausalLm, llava_llm::LlmError> {
    let options = LoadOptions {
        progress: Progress::Hidden,
        ..Default::default()
    };
    CausalLm::from_pretrained(dir, &device(), &options)
}

/// Writes the qwen2 fixture's tensors, transformed, into a copy of the fixture.
fn variant(edit: impl Fn(Vec<Entry>) -> Vec<Entry>) -> tempfile::TempDir {
    let dir = copy_without_weights("qwen2");
    let tensors = edit(read_tensors(&fixture("qwen2").join("model.safetensors")));
    write_tensors(&dir.path().join("model.safetensors"), &tensors);
    dir
}

#[test]
fn sharded_checkpoint_equals_the_single_file() {
    let reference = logits_of(&load(&fixture("qwen2")), "qwen2");
    let dir = copy_without_weights("qwen2");
    let tensors = read_tensors(&fixture("qwen2").join("model.safetensors"));
    let (first, second) = tensors.split_at(tensors.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (i, part) in [first, second].iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        write_tensors(&dir.path().join(&file), part);
        for t in part.iter() {
            weight_map.insert(t.0.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert_eq!(logits_of(&load(dir.path()), "qwen2"), reference);
}

/// Renames of the decoder keys as they appear in each LLaVA layout (spec §6).
type Rename = fn(&str) -> String;
const LAYOUTS: [(&str, Rename); 3] = [
    // llava-hf hub files (transformers < 4.52): language_model.model.*, language_model.lm_head
    ("language_model.", |k| format!("language_model.{k}")),
    // transformers ≥ 4.52: model.language_model.*, lm_head at the top
    ("model.language_model.", |k| {
        k.strip_prefix("model.")
            .map(|rest| format!("model.language_model.{rest}"))
            .unwrap_or_else(|| k.to_string())
    }),
    // original LLaVA: decoder keys as they are, next to the projector and tower
    ("original", |k| k.to_string()),
];

#[test]
fn every_llava_key_layout_loads_to_the_same_model() {
    // llama3 has an untied lm_head, so its renames are exercised too.
    let reference = logits_of(&load(&fixture("llama3")), "llama3");
    for (name, rename) in LAYOUTS {
        let dir = copy_without_weights("llama3");
        let mut tensors: Vec<Entry> = read_tensors(&fixture("llama3").join("model.safetensors"))
            .into_iter()
            .map(|(k, d, s, b)| (rename(&k), d, s, b))
            .collect();
        assert!(tensors.iter().any(|t| t.0.contains("lm_head")));
        // LLaVA-only keys the decoder must ignore.
        for key in [
            "model.mm_projector.0.weight",
            "image_newline",
            "vision_tower.vision_model.post_layernorm.weight",
        ] {
            tensors.push((
                key.to_string(),
                safetensors::Dtype::F32,
                vec![4],
                vec![0u8; 16],
            ));
        }
        write_tensors(&dir.path().join("model.safetensors"), &tensors);
        let mut model = load(dir.path());
        assert_eq!(logits_of(&model, "llama3"), reference, "layout {name}");

        // A PEFT adapter trained in the same layout attaches to the same layers.
        let adapter = tempfile::tempdir().unwrap();
        let source = fixture("llama3").join("adapter");
        std::fs::copy(
            source.join("adapter_config.json"),
            adapter.path().join("adapter_config.json"),
        )
        .unwrap();
        let factors: Vec<Entry> = read_tensors(&source.join("adapter_model.safetensors"))
            .into_iter()
            .map(|(k, d, s, b)| {
                let module = k.strip_prefix("base_model.model.").unwrap();
                (format!("base_model.model.{}", rename(module)), d, s, b)
            })
            .collect();
        write_tensors(&adapter.path().join("adapter_model.safetensors"), &factors);
        let adapted = model.load_adapter(adapter.path()).unwrap();
        assert_eq!(adapted, 14, "layout {name}: 7 linears in each of 2 layers");
    }
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = variant(|t| {
        t.into_iter()
            .filter(|x| x.0 != "model.layers.1.mlp.up_proj.weight")
            .collect()
    });
    let err = try_load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("missing") && err.contains("model.layers.1.mlp.up_proj.weight"),
        "{err}"
    );
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    let dir = variant(|t| {
        t.into_iter()
            .map(|(k, d, s, b)| {
                if k == "model.layers.0.self_attn.k_proj.weight" {
                    // [32, 64] stored as [64, 32]: same bytes, wrong shape.
                    (k, d, vec![s[1], s[0]], b)
                } else {
                    (k, d, s, b)
                }
            })
            .collect()
    });
    let err = try_load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.0.self_attn.k_proj.weight"),
        "{err}"
    );
    assert!(err.contains("32, 64") && err.contains("64, 32"), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn a_truncated_file_is_named() {
    let dir = copy_without_weights("qwen2");
    let bytes = std::fs::read(fixture("qwen2").join("model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = try_load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

/// A copy of the qwen2 fixture whose config.json is edited.
fn with_config(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> tempfile::TempDir {
    let dir = copy_without_weights("qwen2");
    let weights = "model.safetensors";
    std::fs::copy(fixture("qwen2").join(weights), dir.path().join(weights)).unwrap();
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(config.as_object_mut().unwrap());
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

#[test]
fn a_config_without_a_required_field_is_named() {
    let dir = with_config(|c| {
        c.remove("num_attention_heads");
    });
    let err = try_load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("num_attention_heads"),
        "{err}"
    );
}

#[test]
fn decoder_tensors_beyond_the_config_are_an_error() {
    let dir = with_config(|c| {
        c.insert("num_hidden_layers".into(), 1.into());
        c.remove("layer_types");
    });
    let err = try_load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.1.") && err.contains("1 layers configured"),
        "{err}"
    );
}

#[test]
fn no_weights_at_all_says_what_was_expected() {
    let dir = copy_without_weights("qwen2");
    let err = try_load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn an_adapter_for_modules_the_model_lacks_is_rejected_untouched() {
    let mut model = load(&fixture("llama3"));
    let before = logits_of(&model, "llama3");
    // The llama3 adapter targets all linears; the qwen2 model is a different size.
    let mut qwen = load(&fixture("qwen2"));
    let err = qwen
        .load_adapter(fixture("llama3").join("adapter"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("do not fit") || err.contains("no such"),
        "{err}"
    );
    assert!(
        qwen.linears_mut().iter().all(|(_, l)| l.lora.is_none()),
        "nothing attached"
    );
    // A config the adapter cannot honour.
    let dir = tempfile::tempdir().unwrap();
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(
            fixture("llama3").join("adapter").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    let path = dir.path().join("adapter_config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"use_dora\": false", "\"use_dora\": true");
    std::fs::write(&path, text).unwrap();
    let err = model.load_adapter(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("use_dora") && err.contains("adapter_config.json"),
        "{err}"
    );
    assert_eq!(logits_of(&model, "llama3"), before);
}

fn logits_of(model: &CausalLm, name: &str) -> Vec<f32> {
    let ids = common::reference(name).ids("input_ids");
    let device = model.device();
    model
        .forward(
            DecoderInput::Ids(ids_tensor(&ids, &device)),
            None,
            ForwardOptions::default(),
        )
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap()
}
