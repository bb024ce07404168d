//! Logits processors against transformers' on the same logits
//! (`fixtures/sampling/processors.safetensors`), and seeded sampling.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::*;
use llava_llm::sampling::{Sampler, SamplingParams, repetition_penalty, temperature, top_k, top_p};
use safetensors::SafeTensors;

struct Processors {
    bytes: Vec<u8>,
}

impl Processors {
    fn load() -> Self {
        let path = llava_testutil::fixture("sampling/processors.safetensors");
        Self {
            bytes: std::fs::read(path).unwrap(),
        }
    }

    fn f32(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).unwrap();
        let v = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        (t.shape().to_vec(), v)
    }

    fn logits(&self, rows: usize) -> Tensor<2> {
        let (shape, v) = self.f32("logits");
        let v = v[..rows * shape[1]].to_vec();
        Tensor::from_data(TensorData::new(v, [rows, shape[1]]), &device())
    }

    fn seen(&self) -> Vec<Vec<u32>> {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor("input_ids").unwrap();
        let ids: Vec<u32> = t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect();
        ids.chunks(t.shape()[1]).map(<[u32]>::to_vec).collect()
    }
}

/// Equal within 1e-6, with −∞ exactly where transformers has −∞.
fn assert_scores(ours: Tensor<2>, reference: &[f32], what: &str) {
    let ours = ours.try_into_vec_as::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len(), "{what}");
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        if b.is_infinite() {
            assert_eq!(a, b, "{what}: entry {i}");
        } else {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{what}: entry {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn each_processor_matches_transformers() {
    let p = Processors::load();
    let seen = p.seen();
    assert_scores(
        repetition_penalty(p.logits(3), &seen, 1.3),
        &p.f32("repetition_penalty_1.3").1,
        "repetition penalty",
    );
    assert_scores(
        temperature(p.logits(3), 0.7),
        &p.f32("temperature_0.7").1,
        "temperature",
    );
    // Row 2 has exact ties at the k-th value: transformers keeps all of them.
    let (_, reference) = p.f32("top_k_5");
    assert!(
        reference[80..].iter().filter(|v| v.is_finite()).count() > 5,
        "the fixture has ties"
    );
    assert_scores(top_k(p.logits(3), 5), &reference, "top-k");
    assert_scores(
        top_p(p.logits(2), 0.8),
        &p.f32("top_p_0.8_rows01").1,
        "top-p",
    );
}

#[test]
fn the_chain_runs_in_transformers_order() {
    let p = Processors::load();
    let sampler = Sampler::new(
        SamplingParams {
            do_sample: true,
            temperature: 0.7,
            top_k: 10,
            top_p: 0.9,
            repetition_penalty: 1.3,
        },
        0,
    )
    .unwrap();
    let ours = sampler.process(p.logits(3), &p.seen());
    assert_scores(ours, &p.f32("chain_rep1.3_t0.7_k10_p0.9").1, "chain");
}

#[test]
fn greedy_takes_the_first_maximum() {
    let mut sampler = Sampler::new(SamplingParams::greedy(), 0).unwrap();
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 3.0, 3.0, -1.0, 2.0, 0.0, 2.0, 2.0], [2, 4]),
        &device(),
    );
    assert_eq!(
        sampler.next_tokens(logits, &[vec![], vec![]]).unwrap(),
        vec![1, 0]
    );
}

/// Broken scores stop generation with an error naming the row, greedy or sampled (they used
/// to answer token 0 over and over), and a temperature that is 0 in f32 is refused up front.
#[test]
fn non_finite_scores_are_an_error_not_token_zero() {
    let rows = |second: f32| {
        Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 3.0, 0.0, -1.0, 2.0, second, 2.0, 2.0], [2, 4]),
            &device(),
        )
    };
    let sampled = SamplingParams {
        do_sample: true,
        top_k: 0,
        ..SamplingParams::default()
    };
    for params in [SamplingParams::greedy(), sampled.clone()] {
        for bad in [f32::NAN, f32::INFINITY] {
            let mut sampler = Sampler::new(params.clone(), 0).unwrap();
            let err = sampler.next_tokens(rows(bad), &[]).unwrap_err().to_string();
            assert!(err.contains("row 1") && err.contains("not finite"), "{err}");
        }
        let mut sampler = Sampler::new(params, 0).unwrap();
        assert_eq!(sampler.next_tokens(rows(0.5), &[]).unwrap().len(), 2);
    }
    let tiny = SamplingParams {
        temperature: 1e-300,
        ..sampled
    };
    let err = Sampler::new(tiny, 0).unwrap_err().to_string();
    assert!(
        err.contains("temperature 1e-300") && err.contains("greedy"),
        "{err}"
    );
}

#[test]
fn a_fixed_seed_reproduces_the_same_samples() {
    let p = Processors::load();
    let params = SamplingParams {
        do_sample: true,
        temperature: 1.5,
        top_k: 0,
        top_p: 1.0,
        repetition_penalty: 1.0,
    };
    let draw = |seed| {
        let mut s = Sampler::new(params.clone(), seed).unwrap();
        (0..20)
            .flat_map(|_| s.next_tokens(p.logits(3), &[]).unwrap())
            .collect::<Vec<_>>()
    };
    let a = draw(42);
    assert_eq!(a, draw(42));
    assert_ne!(a, draw(43), "another seed draws differently");
    // Draws only come from tokens the processors keep.
    let params = SamplingParams {
        do_sample: true,
        temperature: 1.0,
        top_k: 3,
        top_p: 1.0,
        repetition_penalty: 1.0,
    };
    let mut s = Sampler::new(params, 7).unwrap();
    let kept = top_k(p.logits(3), 3).try_into_vec_as::<f32>().unwrap();
    for _ in 0..50 {
        for (row, id) in s
            .next_tokens(p.logits(3), &[])
            .unwrap()
            .into_iter()
            .enumerate()
        {
            assert!(
                kept[row * 40 + id as usize].is_finite(),
                "row {row} drew removed token {id}"
            );
        }
    }
}

#[test]
fn sampling_follows_the_softmax() {
    // Two tokens with probabilities 0.8 / 0.2: 4000 draws land within 3% of that.
    let logits = || {
        Tensor::<2>::from_data(
            TensorData::new(vec![(0.8f32).ln(), (0.2f32).ln()], [1, 2]),
            &device(),
        )
    };
    let params = SamplingParams {
        do_sample: true,
        top_k: 0,
        ..SamplingParams::default()
    };
    let mut s = Sampler::new(params, 1).unwrap();
    let ones = (0..4000)
        .filter(|_| s.next_tokens(logits(), &[]).unwrap()[0] == 1)
        .count();
    let freq = ones as f64 / 4000.0;
    assert!(
        (freq - 0.2).abs() < 0.03,
        "token 1 drawn with frequency {freq}"
    );
}

#[test]
fn invalid_settings_are_rejected() {
    for params in [
        SamplingParams {
            do_sample: true,
            temperature: 0.0,
            ..Default::default()
        },
        SamplingParams {
            do_sample: true,
            top_p: 1.5,
            ..Default::default()
        },
        SamplingParams {
            repetition_penalty: 0.0,
            ..Default::default()
        },
    ] {
        assert!(Sampler::new(params, 0).is_err());
    }
}
