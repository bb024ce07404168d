//! `cargo xtask bench-ops`: the decode-step operations on their own (attention of one query
//! against a long KV cache, and the weight GEMV), in the ways the decoder could compute them,
//! so a choice between them rests on a measurement on the target GPU.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Device, Distribution, Int, Tensor};
use clap::Parser;
use llava_ops::reference::grouped_attention;
use serde_json::json;

use crate::device::{parse_device, parse_dtype, parse_sizes};

#[derive(Parser)]
pub struct Args {
    #[arg(long, default_value = "cuda")]
    pub device: String,
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Query heads, key/value heads, head dim (llava-next-72b: 64,64,128; Mistral: 32,8,128).
    #[arg(long, default_value = "64,64,128")]
    pub heads: String,
    /// Cached positions.
    #[arg(long, default_value_t = 3072)]
    pub context: usize,
    /// Timed calls (after one untimed call).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Time prefill attention instead: this many causal queries against as many keys, our
    /// materialised-scores path against our flash kernel (0: the decode ops).
    #[arg(long, default_value_t = 0)]
    pub prefill: usize,
}

pub fn run(args: Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let dims = parse_sizes("--heads", &args.heads)?;
    let [heads, kv, d] = dims[..] else {
        anyhow::bail!("--heads takes three numbers: heads,kv_heads,head_dim");
    };
    if args.prefill > 0 {
        return prefill(&args, &device, dtype, [heads, kv, d]);
    }
    let t = args.context;
    let normal = Distribution::Normal(0.0, 1.0);
    let q = Tensor::<4>::random([1, heads, 1, d], normal, (&device, dtype));
    let k = Tensor::<4>::random([1, kv, t, d], normal, (&device, dtype));
    let v = Tensor::<4>::random([1, kv, t, d], normal, (&device, dtype));
    let bias = Tensor::<4>::zeros([1, 1, 1, t], (&device, DType::F32));
    let kv_bytes = (2 * kv * t * d * dtype.size()) as f64;

    for (name, f) in [
        (
            "attention_matmul",
            &(|| grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone()))
                as &dyn Fn() -> Tensor<4>,
        ),
        ("attention_mul_sum_f32", &|| {
            decode_attention_mul_sum(q.clone(), k.clone(), v.clone(), bias.clone())
        }),
    ] {
        let (cold, per) = time_calls(args.iters, f);
        println!(
            "{}",
            json!({
                "op": name, "heads": heads, "kv_heads": kv, "head_dim": d, "context": t,
                "dtype": args.dtype, "us": per * 1e6, "kv_gb_s": kv_bytes / per / 1e9,
                "first_call_s": cold,
            })
        );
    }

    // The weight GEMVs of a decode step (x [1, in] · Wᵀ, W stored [out, in]), both orders.
    let h = heads * d;
    for (out_f, in_f) in [(h, h), (3 * h, h), (h, 3 * h)] {
        let w = Tensor::<2>::random([out_f, in_f], normal, (&device, dtype));
        let x = Tensor::<2>::random([1, in_f], normal, (&device, dtype));
        let w_bytes = (out_f * in_f * dtype.size()) as f64;
        let orders: [(&str, &dyn Fn() -> Tensor<2>); 2] = [
            ("gemv_input_first", &|| {
                x.clone().matmul(w.clone().transpose())
            }),
            ("gemv_weight_first", &|| {
                w.clone().matmul(x.clone().transpose()).transpose()
            }),
        ];
        let gemv =
            || llava_ops::cuda::gemv_tensors(&x, &w).expect("the GEMV kernel took this shape once");
        let kernel = llava_ops::cuda::gemv_tensors(&x, &w)
            .is_some()
            .then_some(("gemv_kernel", &gemv as &dyn Fn() -> Tensor<2>));
        let routed = || llava_ops::linear(x.clone(), w.clone(), None);
        let routed = [("gemv_routed", &routed as &dyn Fn() -> Tensor<2>)];
        for (name, f) in orders.into_iter().chain(routed).chain(kernel) {
            let (cold, per) = time_calls(args.iters, f);
            println!(
                "{}",
                json!({"op": name, "out": out_f, "in": in_f, "dtype": args.dtype,
                       "us": per * 1e6, "weight_gb_s": w_bytes / per / 1e9,
                       "first_call_s": cold})
            );
        }
    }

    // The MLP's first half (gate and up, `[3h, h]` each, then SiLU·mul): three launches against
    // the fused kernel, when it takes the shape.
    let (gate, up) = (
        Tensor::<2>::random([3 * h, h], normal, (&device, dtype)),
        Tensor::<2>::random([3 * h, h], normal, (&device, dtype)),
    );
    let x = Tensor::<2>::random([1, h], normal, (&device, dtype));
    let w_bytes = (2 * 3 * h * h * dtype.size()) as f64;
    let unfused = || {
        llava_ops::silu_mul(
            llava_ops::linear(x.clone(), gate.clone(), None),
            llava_ops::linear(x.clone(), up.clone(), None),
        )
    };
    let fused =
        || llava_ops::cuda::gemv_silu_tensors(&x, &gate, &up, true).expect("took this shape once");
    let mut halves = vec![(
        "mlp_gate_up_silu_unfused",
        &unfused as &dyn Fn() -> Tensor<2>,
    )];
    if llava_ops::cuda::gemv_silu_tensors(&x, &gate, &up, true).is_some() {
        halves.push(("mlp_gate_up_silu_fused", &fused));
    }
    let reference = unfused().cast(DType::F32);
    for (name, f) in halves {
        let norm = |t: Tensor<2>| t.powi_scalar(2).sum().sqrt().into_scalar::<f32>();
        let diff = norm(f().cast(DType::F32) - reference.clone()) / norm(reference.clone());
        let (cold, per) = time_calls(args.iters, f);
        println!(
            "{}",
            json!({"op": name, "out": 3 * h, "in": h, "dtype": args.dtype, "us": per * 1e6,
                   "weight_gb_s": w_bytes / per / 1e9, "first_call_s": cold,
                   "rel_diff_vs_unfused": diff})
        );
    }

    // The attention projections of a decode step: three GEMVs against one merged launch.
    let n_kv = kv * d;
    let w_q = Tensor::<2>::random([h, h], normal, (&device, dtype));
    let w_k = Tensor::<2>::random([n_kv, h], normal, (&device, dtype));
    let w_v = Tensor::<2>::random([n_kv, h], normal, (&device, dtype));
    let w_bytes = ((h + 2 * n_kv) * h * dtype.size()) as f64;
    let three = || {
        let q = llava_ops::linear(x.clone(), w_q.clone(), None);
        let k = llava_ops::linear(x.clone(), w_k.clone(), None);
        let v = llava_ops::linear(x.clone(), w_v.clone(), None);
        Tensor::cat(vec![q, k, v], 1)
    };
    let merged = || {
        let outs = llava_ops::cuda::gemv_qkv_tensors(&x, [&w_q, &w_k, &w_v], true)
            .expect("took this shape once");
        Tensor::cat(outs.to_vec(), 1)
    };
    let mut projections = vec![("qkv_three_launches", &three as &dyn Fn() -> Tensor<2>)];
    if llava_ops::cuda::gemv_qkv_tensors(&x, [&w_q, &w_k, &w_v], true).is_some() {
        projections.push(("qkv_merged", &merged));
    }
    let reference = three().cast(DType::F32);
    for (name, f) in projections {
        let norm = |t: Tensor<2>| t.powi_scalar(2).sum().sqrt().into_scalar::<f32>();
        let diff = norm(f().cast(DType::F32) - reference.clone()) / norm(reference.clone());
        let (cold, per) = time_calls(args.iters, f);
        println!(
            "{}",
            json!({"op": name, "out": h + 2 * n_kv, "in": h, "dtype": args.dtype,
                   "us": per * 1e6, "weight_gb_s": w_bytes / per / 1e9, "first_call_s": cold,
                   "rel_diff_vs_three": diff})
        );
    }
    Ok(())
}

/// Prefill attention of `args.prefill` causal positions: our path (scores in f32 through the
/// routed products, one probabilities kernel) against our flash prefill kernel, with the
/// relative difference of the outputs.
fn prefill(args: &Args, device: &Device, dtype: DType, [heads, kv, d]: [usize; 3]) -> Result<()> {
    let s = args.prefill;
    let normal = Distribution::Normal(0.0, 1.0);
    let q = Tensor::<4>::random([1, heads, s, d], normal, (device, dtype));
    let k = Tensor::<4>::random([1, kv, s, d], normal, (device, dtype));
    let v = Tensor::<4>::random([1, kv, s, d], normal, (device, dtype));
    let rows = Tensor::<1, Int>::arange(0..s as i64, device)
        .reshape([s, 1])
        .expand([s, s]);
    let cols = Tensor::<1, Int>::arange(0..s as i64, device)
        .reshape([1, s])
        .expand([s, s]);
    let bias = Tensor::<2>::zeros([s, s], (device, DType::F32))
        .mask_fill(cols.greater(rows), f32::NEG_INFINITY)
        .reshape([1, 1, s, s]);
    // Causal: half the score matrix, two products of 2·d flops per score.
    let flops = (2 * 2 * heads * s * s * d / 2) as f64;
    let ours = || grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone());
    let reference = ours().cast(DType::F32);
    let (cold, per) = time_calls(args.iters, &ours);
    println!(
        "{}",
        json!({"op": "prefill_attention_ours", "heads": heads, "kv_heads": kv, "head_dim": d,
               "seq": s, "dtype": args.dtype, "us": per * 1e6, "tflops": flops / per / 1e12,
               "first_call_s": cold})
    );
    // Our flash prefill kernel (bf16/f16 only), keys and values read in place.
    let scale = 1.0 / (d as f64).sqrt();
    let flash_prefill = || llava_ops::cuda::flash_prefill(&q, &k, &v, 0, scale);
    let start = Instant::now();
    let op = "prefill_attention_flash_prefill";
    match flash_prefill() {
        Some(out) => report_checked(
            (args.iters, flops),
            &reference,
            (start, out),
            json!({"op": op, "seq": s}),
            &|| flash_prefill().expect("accepted above"),
        ),
        None => println!(
            "{}",
            json!({"op": op, "error": "declined (needs CUDA with mma, bf16/f16, head dim a multiple of 16 up to 128)"})
        ),
    }
    Ok(())
}

/// Prints `fields` with the relative difference of `first` (its output and the instant its call
/// began) from `reference`, the first call's seconds, and the mean time and rate of `iters`
/// further calls of `run` (of `flops` each).
fn report_checked(
    (iters, flops): (usize, f64),
    reference: &Tensor<4>,
    (start, first): (Instant, Tensor<4>),
    mut fields: serde_json::Value,
    run: &dyn Fn() -> Tensor<4>,
) {
    let norm = |t: Tensor<4>| t.powi_scalar(2).sum().sqrt().into_scalar::<f32>();
    let rel = norm(first.cast(DType::F32) - reference.clone()) / norm(reference.clone());
    let first_call_s = start.elapsed().as_secs_f64();
    let (_, per) = time_calls(iters, run);
    fields["us"] = json!(per * 1e6);
    fields["tflops"] = json!(flops / per / 1e12);
    fields["first_call_s"] = json!(first_call_s);
    fields["rel_diff_vs_ours"] = json!(rel);
    println!("{fields}");
}

/// Seconds of the first call (compilation included) and mean seconds of `iters` further calls
/// queued back to back; each measurement ends by reading a value back, so the GPU has finished.
fn time_calls<const D: usize>(iters: usize, f: &dyn Fn() -> Tensor<D>) -> (f64, f64) {
    let wait = |t: Tensor<D>| {
        let _ = t.cast(DType::F32).sum().into_scalar::<f32>();
    };
    let first = Instant::now();
    wait(f());
    let cold = first.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut last = None;
    for _ in 0..iters {
        last = Some(f());
    }
    if let Some(t) = last {
        wait(t);
    }
    (cold, start.elapsed().as_secs_f64() / iters.max(1) as f64)
}

/// Decode attention as broadcast products and reductions instead of matmuls (f32 accumulation):
/// a candidate when the query has one position.
fn decode_attention_mul_sum(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
) -> Tensor<4> {
    let [b, heads, s, d] = q.dims();
    let [_, kv, t, _] = k.dims();
    let group = heads / kv;
    let dtype = q.dtype();
    let q = q.cast(DType::F32).reshape([b, kv, group * s, 1, d]);
    let k = k.cast(DType::F32).reshape([b, kv, 1, t, d]);
    let scores = (q * k).sum_dim(4).reshape([b, kv, group * s, t]) / (d as f64).sqrt()
        + bias.reshape([b, 1, s, t]);
    let probs = softmax(scores, 3).reshape([b, kv, group * s, t, 1]);
    let v = v.cast(DType::F32).reshape([b, kv, 1, t, d]);
    (probs * v).sum_dim(3).reshape([b, heads, s, d]).cast(dtype)
}
