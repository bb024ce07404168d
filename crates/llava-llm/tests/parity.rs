//! Parity with transformers on the tiny fixtures (see `scripts/fixtures/make_decoder_fixtures.py`):
//! logits of the full sequence and of cached step-by-step decoding within 1e-4 relative,
//! 32 identical greedy tokens, and LoRA-adapted / merged logits within 1e-4.

mod common;

use burn::tensor::Tensor;
use common::*;
use llava_llm::sampling::SamplingParams;
use llava_llm::{
    CausalLm, DecoderInput, ForwardOptions, GenerateOptions, GenerationConfig, KvCache, generate,
};

const TOLERANCE: f32 = 1e-4;

fn full_logits(model: &CausalLm, ids: &[u32]) -> Vec<f32> {
    let device = model.device();
    let logits = model
        .forward(
            DecoderInput::Ids(ids_tensor(ids, &device)),
            None,
            ForwardOptions::default(),
        )
        .unwrap();
    logits.try_into_vec_as::<f32>().unwrap()
}

/// Prefills `prefix` tokens in one forward, then feeds the rest one at a time.
fn cached_logits(model: &CausalLm, ids: &[u32], prefix: usize) -> Vec<f32> {
    let device = model.device();
    let dtype = model.model.embed_tokens.weight.val().dtype();
    let mut cache = KvCache::new(model.config(), 1, ids.len(), dtype, &device);
    let mut rows: Vec<Tensor<3>> = Vec::new();
    let mut chunks = vec![&ids[..prefix]];
    chunks.extend(ids[prefix..].chunks(1));
    for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
        let logits = model
            .forward(
                DecoderInput::Ids(ids_tensor(chunk, &device)),
                Some(&mut cache),
                ForwardOptions::default(),
            )
            .unwrap();
        rows.push(logits);
    }
    assert_eq!(cache.len(), ids.len());
    Tensor::cat(rows, 1).try_into_vec_as::<f32>().unwrap()
}

fn check(name: &str, what: &str, ours: &[f32], reference: &[f32]) {
    let err = relative_error(ours, reference);
    eprintln!("{name} {what}: relative error {err:.2e}");
    assert!(
        err <= TOLERANCE,
        "{name} {what}: relative error {err:.3e} > {TOLERANCE:e}"
    );
}

fn logits_parity(name: &str) {
    let reference = common::reference(name);
    let model = load(&fixture(name));
    let vocab = model.config().vocab_size;
    let columns = common::columns(&reference);
    let ids = reference.ids("input_ids");

    let (shape, full_ref) = reference.f32("logits_full");
    assert_eq!(shape, vec![ids.len(), columns.len()]);
    let full = select_columns(&full_logits(&model, &ids), vocab, &columns);
    check(name, "full sequence", &full, &full_ref);

    let (_, step_ref) = reference.f32("logits_step");
    let step = select_columns(&cached_logits(&model, &ids, 0), vocab, &columns);
    check(name, "step by step", &step, &step_ref);

    // A prefill of most of the prompt, then cached steps, must give the full-sequence logits.
    let mixed = select_columns(&cached_logits(&model, &ids, ids.len() - 4), vocab, &columns);
    check(name, "prefill + steps", &mixed, &full_ref);
}

fn greedy_parity(name: &str) {
    let reference = common::reference(name);
    let model = load(&fixture(name));
    let expected = reference.ids("greedy_ids");
    let gen_config = GenerationConfig::from_model_dir(fixture(name)).unwrap();
    let options = GenerateOptions {
        max_new_tokens: expected.len(),
        sampling: SamplingParams::greedy(),
        seed: 0,
        eos_token_ids: gen_config.eos_token_ids(),
    };
    let out = generate(&model, &[reference.ids("input_ids")], options).unwrap();
    assert_eq!(
        out[0], expected,
        "{name}: greedy tokens differ from transformers"
    );
    assert_eq!(out[0].len(), 32);
}

fn lora_parity(name: &str) {
    let reference = common::reference(name);
    let mut model = load(&fixture(name));
    let vocab = model.config().vocab_size;
    let columns = common::columns(&reference);
    let ids = reference.ids("input_ids");
    let adapted = model.load_adapter(fixture(name).join("adapter")).unwrap();
    assert!(adapted > 0);

    let (_, lora_ref) = reference.f32("logits_lora");
    let unmerged = full_logits(&model, &ids);
    check(
        name,
        "LoRA (unmerged)",
        &select_columns(&unmerged, vocab, &columns),
        &lora_ref,
    );

    model.merge_lora();
    assert!(model.linears_mut().iter().all(|(_, l)| l.lora.is_none()));
    let merged = full_logits(&model, &ids);
    let (_, merged_ref) = reference.f32("logits_merged");
    check(
        name,
        "LoRA merged",
        &select_columns(&merged, vocab, &columns),
        &merged_ref,
    );
    check(name, "merged vs unmerged", &merged, &unmerged);
}

macro_rules! family_tests {
    ($($family:ident),*) => {$(
        mod $family {
            #[test]
            fn logits_match_transformers() {
                super::logits_parity(stringify!($family));
            }
            #[test]
            fn greedy_tokens_match_transformers() {
                super::greedy_parity(stringify!($family));
            }
            #[test]
            fn lora_logits_match_peft() {
                super::lora_parity(stringify!($family));
            }
        }
    )*};
}

family_tests!(mistral, llama3, yi, qwen2);
