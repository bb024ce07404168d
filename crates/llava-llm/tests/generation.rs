//! Batched generation with left padding, and its limits.

mod common;

use common::*;
use llava_llm::sampling::SamplingParams;
use llava_llm::{GenerateOptions, LlmError, generate};

#[test]
fn a_left_padded_batch_generates_what_each_prompt_generates_alone() {
    for name in ["mistral", "qwen2"] {
        let model = load(&fixture(name));
        let prompt = common::reference(name).ids("input_ids");
        let short = prompt[..6].to_vec();
        let options = GenerateOptions {
            max_new_tokens: 12,
            ..Default::default()
        };
        let alone_long = generate(&model, std::slice::from_ref(&prompt), options.clone()).unwrap();
        let alone_short = generate(&model, std::slice::from_ref(&short), options.clone()).unwrap();
        let batch = generate(&model, &[short, prompt], options).unwrap();
        assert_eq!(batch[0], alone_short[0], "{name}: padded row");
        assert_eq!(batch[1], alone_long[0], "{name}: full row");
    }
}

#[test]
fn generation_stops_at_eos_and_keeps_it() {
    let model = load(&fixture("llama3"));
    let reference = common::reference("llama3");
    let greedy = reference.ids("greedy_ids");
    let eos = greedy[5];
    let options = GenerateOptions {
        max_new_tokens: 32,
        eos_token_ids: vec![eos],
        ..Default::default()
    };
    let out = generate(&model, &[reference.ids("input_ids")], options).unwrap();
    let first = greedy.iter().position(|&t| t == eos).unwrap();
    assert_eq!(out[0], greedy[..=first].to_vec());
}

#[test]
fn zero_new_tokens_generates_nothing() {
    let model = load(&fixture("qwen2"));
    let options = GenerateOptions {
        max_new_tokens: 0,
        ..Default::default()
    };
    assert_eq!(
        generate(&model, &[vec![1, 2, 3]], options).unwrap(),
        vec![Vec::<u32>::new()]
    );
}

#[test]
fn a_prompt_beyond_the_context_is_an_error() {
    let model = load(&fixture("llama3")); // max_position_embeddings 256
    let prompt = vec![5u32; 250];
    let options = GenerateOptions {
        max_new_tokens: 10,
        ..Default::default()
    };
    match generate(&model, &[prompt], options) {
        Err(LlmError::ContextTooLong {
            prompt: 250,
            new: 10,
            context: 256,
        }) => {}
        other => panic!("expected ContextTooLong, got {other:?}"),
    }
}

#[test]
fn out_of_vocabulary_ids_are_an_error() {
    let model = load(&fixture("qwen2"));
    let err = generate(&model, &[vec![1, 512]], GenerateOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            LlmError::TokenOutOfRange {
                id: 512,
                vocab: 512
            }
        ),
        "{err}"
    );
}

#[test]
fn seeded_sampling_is_reproducible_end_to_end() {
    let model = load(&fixture("mistral"));
    let prompt = common::reference("mistral").ids("input_ids");
    let options = GenerateOptions {
        max_new_tokens: 16,
        sampling: SamplingParams {
            do_sample: true,
            temperature: 0.9,
            top_k: 20,
            top_p: 0.95,
            repetition_penalty: 1.1,
        },
        seed: 1234,
        eos_token_ids: vec![],
    };
    let a = generate(&model, &[prompt.clone(), prompt.clone()], options.clone()).unwrap();
    let b = generate(&model, &[prompt.clone(), prompt], options).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].len(), 16);
}
