//! Loading a decoder checkpoint to the CPU: a synthetic Mistral-7B-shaped checkpoint with one
//! decoder layer (0.96 GB of bf16, read from the page cache after the first pass), kept in
//! bf16 and cast to f32.
//! It measures the loader's own cost (memory map, copies, the tensors built from them), which
//! dominates the GPU load time as well (docs/benchmarks.md, "Load time").
//!
//! `cargo bench -p llava-benches --bench checkpoint_load`

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;

use burn::tensor::{DType, Device};
use criterion::{Criterion, criterion_group, criterion_main};
use llava_llm::{CausalLm, LoadOptions};
use safetensors::{Dtype, tensor::TensorView};

const HIDDEN: usize = 4096;
const INTERMEDIATE: usize = 14336;
const VOCAB: usize = 32000;
const KV: usize = 1024;

/// Writes `config.json` and `model.safetensors` (bf16, arbitrary finite values) into `dir`.
fn write_checkpoint(dir: &Path) {
    let config = serde_json::json!({
        "model_type": "mistral", "vocab_size": VOCAB, "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": 1, "num_attention_heads": 32,
        "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let p = "model.layers.0";
    let shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]),
        ("lm_head.weight".into(), vec![VOCAB, HIDDEN]),
        ("model.norm.weight".into(), vec![HIDDEN]),
        (format!("{p}.input_layernorm.weight"), vec![HIDDEN]),
        (format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN]),
        (format!("{p}.self_attn.q_proj.weight"), vec![HIDDEN, HIDDEN]),
        (format!("{p}.self_attn.k_proj.weight"), vec![KV, HIDDEN]),
        (format!("{p}.self_attn.v_proj.weight"), vec![KV, HIDDEN]),
        (format!("{p}.self_attn.o_proj.weight"), vec![HIDDEN, HIDDEN]),
        (
            format!("{p}.mlp.gate_proj.weight"),
            vec![INTERMEDIATE, HIDDEN],
        ),
        (
            format!("{p}.mlp.up_proj.weight"),
            vec![INTERMEDIATE, HIDDEN],
        ),
        (
            format!("{p}.mlp.down_proj.weight"),
            vec![HIDDEN, INTERMEDIATE],
        ),
    ];
    // 0x3c00 is bf16 for 0.0078125: finite everywhere.
    let buffers: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| [0x00u8, 0x3c].repeat(s.iter().product()))
        .collect();
    let views: HashMap<String, TensorView> = shapes
        .iter()
        .zip(&buffers)
        .map(|((name, shape), data)| {
            let view = TensorView::new(Dtype::BF16, shape.clone(), data).unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path());
    let device = Device::flex();
    let mut group = c.benchmark_group("checkpoint_load");
    group.sample_size(10);
    // bf16 as stored: the tensors can keep the file's pages (read on first use).
    // f32: every byte is read and converted while loading.
    for (name, dtype) in [("bf16", DType::BF16), ("f32", DType::F32)] {
        let options = LoadOptions {
            dtype,
            ..LoadOptions::default()
        };
        group.bench_function(format!("mistral_1_layer_to_cpu_{name}"), |b| {
            b.iter(|| {
                let model = CausalLm::from_pretrained(dir.path(), &device, &options).unwrap();
                black_box(model.config().hidden_size)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
