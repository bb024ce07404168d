//! `cargo xtask sweep` (CUDA builds): every candidate kernel of llava-ops' CUDA route on the
//! products and reductions of one model's decode steps and prefill, each checked against burn's
//! own op and timed, so the per-shape choice in `llava_ops::cuda` rests on a measurement.
//! One JSON object per (op, shape, candidate) on stdout.

use std::time::Instant;

use anyhow::Result;
use burn::tensor::{DType, Distribution, Int, Tensor};
use clap::Parser;
use llava::LlavaConfig;
use llava_ops::cuda::{self, RowOp};
use serde_json::json;

use crate::device::{parse_device, parse_dtype, parse_sizes};

#[derive(Parser)]
pub struct Args {
    /// Directory with the model's `config.json`, e.g. benches/configs/NAME.
    #[arg(long)]
    pub config: std::path::PathBuf,
    #[arg(long, default_value = "cuda")]
    pub device: String,
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Rows of the products (sequences at decode; prompt positions at prefill).
    #[arg(long, default_value = "1,4,16,2958")]
    pub rows: String,
    /// Cached positions for the decode attention products.
    #[arg(long, default_value_t = 3072)]
    pub context: usize,
    /// Candidates for products with at most 16 rows (default: the GEMV-capable ones).
    #[arg(
        long,
        default_value = "vecmat,double_vecmat,gemv_perpendicular,gemm,gemm_no_stage,unit_min,double_unit_min,cyclic_cmma,cyclic_mma,auto"
    )]
    pub small: String,
    /// Candidates for larger products.
    #[arg(
        long,
        default_value = "auto,cyclic_mma,cyclic_cmma_rows,ordered_cmma8,ordered_mma8,double_cyclic_cmma,double_cyclic_mma,specialized_cyclic_mma,tma_cmma,tma_mma,specialized_tma_mma"
    )]
    pub large: String,
    /// What to sweep: linear, attention, reduce, tower (comma-separated; tower: the vision
    /// tower's products without their bias, f32 sums as the model takes them, with `cublas` as a
    /// candidate; the cubek candidates also pay a NaN fill of their output each call).
    #[arg(long, default_value = "linear,attention,reduce")]
    pub ops: String,
    /// Rows of the vision tower's products: its positions over every tile (672×672 on
    /// llava-v1.6: 5 tiles of 577).
    #[arg(long, default_value_t = 2885)]
    pub tower_rows: usize,
    /// Timed calls per candidate (after one untimed call).
    #[arg(long, default_value_t = 30)]
    pub iters: usize,
}

pub fn run(args: Args) -> Result<()> {
    let config = LlavaConfig::from_dir(&args.config)?;
    let text = &config.text;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype)?;
    let rows = parse_sizes("--rows", &args.rows)?;
    let (h, inter, vocab) = (text.hidden_size, text.intermediate_size, text.vocab_size);
    let heads = text.num_attention_heads;
    let kv = text.num_key_value_heads.unwrap_or(heads);
    let d = text.head_dim.unwrap_or(h / heads);
    let ops: Vec<&str> = args.ops.split(',').map(str::trim).collect();
    let weights = Distribution::Normal(0.0, 0.02);
    let normal = Distribution::Normal(0.0, 1.0);
    let random = |shape: [usize; 4], dist| Tensor::<4>::random(shape, dist, (&device, dtype));
    let sweep = Products { args: &args };

    if ops.contains(&"linear") {
        let layers = [
            ("q_o", h, heads * d),
            ("k_v", h, kv * d),
            ("gate_up", h, inter),
            ("down", inter, h),
            ("lm_head", h, vocab),
        ];
        for (name, d_in, d_out) in layers {
            let wt = Tensor::<2>::random([d_out, d_in], weights, (&device, dtype)).transpose();
            // Only the last position reaches lm_head.
            for &m in rows.iter().filter(|&&m| name != "lm_head" || m <= 16) {
                let x = Tensor::<2>::random([m, d_in], normal, (&device, dtype));
                let bytes = (d_out * d_in * dtype.size()) as f64;
                let flops = 2.0 * (m * d_in * d_out) as f64;
                sweep.run(name, [1, m, d_in, d_out], &x, &wt, bytes, flops);
            }
        }
    }

    if ops.contains(&"tower") {
        let (vh, vi) = (config.vision.hidden_size, config.vision.intermediate_size);
        let m = args.tower_rows;
        let large = format!("{},cublas", args.large);
        for (name, d_in, d_out) in [
            ("tower_qkvo", vh, vh),
            ("tower_fc1", vh, vi),
            ("tower_fc2", vi, vh),
        ] {
            let wt = Tensor::<2>::random([d_out, d_in], weights, (&device, dtype)).transpose();
            let x = Tensor::<2>::random([m, d_in], normal, (&device, dtype));
            let flops = 2.0 * (m * d_in * d_out) as f64;
            let reference = x
                .clone()
                .cast(DType::F32)
                .matmul(wt.clone().cast(DType::F32));
            for s in large.split(',').map(str::trim) {
                let f = || cuda::matmul_with(s, &x, &wt, DType::F32).map_err(|e| e.to_string());
                report_matmul(
                    name,
                    [1, m, d_in, d_out],
                    s,
                    &reference,
                    &f,
                    args.iters,
                    0.0,
                    flops,
                );
            }
        }
    }

    if ops.contains(&"attention") {
        let group = heads / kv;
        let t = args.context;
        // Decode: the query heads of one group against the whole cache buffer.
        let cache = random([1, kv, t, d], normal);
        let q = random([1, kv, group, d], normal);
        let bytes = (kv * t * d * dtype.size()) as f64;
        let kt = cache.clone().swap_dims(2, 3);
        sweep.run("decode_scores", [kv, group, d, t], &q, &kt, bytes, 0.0);
        let probs = random(
            [1, kv, group, t],
            Distribution::Uniform(0.0, 1.0 / t as f64),
        );
        sweep.run(
            "decode_values",
            [kv, group, t, d],
            &probs,
            &cache,
            bytes,
            0.0,
        );
        // Prefill: every prompt position of a group at once.
        if let Some(&s_len) = rows.iter().find(|&&r| r > 16) {
            let m = group * s_len;
            let k = random([1, kv, s_len, d], normal);
            let q = random([1, kv, m, d], normal);
            let flops = 2.0 * (kv * m * s_len * d) as f64;
            let kt = k.clone().swap_dims(2, 3);
            sweep.run("prefill_scores", [kv, m, d, s_len], &q, &kt, 0.0, flops);
            let uniform = Distribution::Uniform(0.0, 1.0 / s_len as f64);
            let probs = random([1, kv, m, s_len], uniform);
            sweep.run("prefill_values", [kv, m, s_len, d], &probs, &k, 0.0, flops);
        }
    }

    if ops.contains(&"reduce") {
        let f32_rows = |r: usize, len: usize| {
            Tensor::<2>::random(
                [r, len],
                Distribution::Normal(0.0, 1.0),
                (&device, DType::F32),
            )
        };
        let mut cases = vec![
            ("norm_mean", RowOp::Mean, f32_rows(1, h)),
            (
                "decode_softmax_max",
                RowOp::Max,
                f32_rows(heads, args.context),
            ),
            (
                "decode_softmax_sum",
                RowOp::Sum,
                f32_rows(heads, args.context),
            ),
        ];
        if let Some(&s_len) = rows.iter().find(|&&r| r > 16) {
            cases.push(("prefill_norm_mean", RowOp::Mean, f32_rows(s_len, h)));
            cases.push((
                "prefill_softmax_max",
                RowOp::Max,
                f32_rows(heads * s_len, s_len),
            ));
        }
        for (name, op, x) in &cases {
            let reference = match op {
                RowOp::Max => x.clone().max_dim(1),
                RowOp::Sum => x.clone().sum_dim(1),
                RowOp::Mean => x.clone().mean_dim(1),
            };
            for routine in cuda::REDUCE_ROUTINES {
                let f = || cuda::reduce_last_with(routine, x, *op).map_err(|e| e.to_string());
                report_matmul(
                    name,
                    [1, x.dims()[0], x.dims()[1], 1],
                    routine,
                    &reference,
                    &f,
                    args.iters,
                    (x.dims()[0] * x.dims()[1] * 4) as f64,
                    0.0,
                );
            }
        }
        for &m in rows.iter().filter(|&&m| m <= 16) {
            let logits =
                Tensor::<2>::random([m, vocab], Distribution::Normal(0.0, 1.0), (&device, dtype));
            let reference: Tensor<2, Int> = logits.clone().argmax(1);
            let want = reference.try_into_vec_as::<i64>().unwrap_or_default();
            for routine in cuda::REDUCE_ROUTINES {
                let f = || cuda::argmax_last_with(routine, &logits).map_err(|e| e.to_string());
                let (cold, per, got) = match time(args.iters, &f) {
                    Ok((c, p, out)) => (c, p, out.try_into_vec_as::<i64>().unwrap_or_default()),
                    Err(e) => {
                        println!(
                            "{}",
                            json!({"op": "argmax", "rows": m, "len": vocab, "candidate": routine, "error": e})
                        );
                        continue;
                    }
                };
                println!(
                    "{}",
                    json!({"op": "argmax", "rows": m, "len": vocab, "candidate": routine,
                    "us": per * 1e6, "first_call_s": cold, "same_ids": got == want})
                );
            }
        }
    }
    Ok(())
}

/// The product candidates of a sweep.
struct Products<'a> {
    args: &'a Args,
}

impl Products<'_> {
    /// Every candidate for `lhs · rhs` (`dims`: batch, m, k, n), checked against burn's product.
    fn run<const D: usize>(
        &self,
        op: &str,
        dims: [usize; 4],
        lhs: &Tensor<D>,
        rhs: &Tensor<D>,
        bytes: f64,
        flops: f64,
    ) {
        let list = if dims[1] <= 16 {
            &self.args.small
        } else {
            &self.args.large
        };
        let reference = lhs.clone().matmul(rhs.clone());
        for s in list.split(',').map(str::trim) {
            let f = || cuda::matmul_with(s, lhs, rhs, lhs.dtype()).map_err(|e| e.to_string());
            report_matmul(op, dims, s, &reference, &f, self.args.iters, bytes, flops);
        }
    }
}

/// Times one candidate and prints its record: `dims` are (batch, m, k, n) for products.
#[allow(clippy::too_many_arguments)]
fn report_matmul<const D: usize>(
    op: &str,
    dims: [usize; 4],
    candidate: &str,
    reference: &Tensor<D>,
    f: &dyn Fn() -> Result<Tensor<D>, String>,
    iters: usize,
    bytes: f64,
    flops: f64,
) {
    let record = match time(iters, f) {
        Err(e) => json!({"op": op, "dims": dims, "candidate": candidate, "error": e}),
        Ok((cold, per, out)) => {
            let (rel, _) = relative_error(&out, reference);
            json!({"op": op, "dims": dims, "candidate": candidate, "us": per * 1e6,
                   "gb_s": bytes / per / 1e9, "tflop_s": flops / per / 1e12,
                   "first_call_s": cold, "rel_err_vs_burn": rel})
        }
    };
    println!("{record}");
}

/// ‖a − b‖ / ‖b‖ in f32, and ‖b‖.
fn relative_error<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> (f64, f64) {
    let (a, b) = (a.clone().cast(DType::F32), b.clone().cast(DType::F32));
    let diff = (a - b.clone()).square().sum().into_scalar::<f32>() as f64;
    let norm = b.square().sum().into_scalar::<f32>() as f64;
    ((diff / norm.max(1e-30)).sqrt(), norm.sqrt())
}

/// First-call seconds, mean seconds of `iters` queued calls, and the last output.
fn time<T: Clone + Syncable>(
    iters: usize,
    f: &dyn Fn() -> Result<T, String>,
) -> Result<(f64, f64, T), String> {
    let first = Instant::now();
    let out = f()?;
    out.wait();
    let cold = first.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut last = out;
    for _ in 0..iters {
        last = f()?;
    }
    last.wait();
    Ok((
        cold,
        start.elapsed().as_secs_f64() / iters.max(1) as f64,
        last,
    ))
}

/// Waiting for a tensor: reading one value back.
trait Syncable {
    fn wait(&self);
}

impl<const D: usize> Syncable for Tensor<D> {
    fn wait(&self) {
        let _ = self.clone().cast(DType::F32).sum().into_scalar::<f32>();
    }
}

impl<const D: usize> Syncable for Tensor<D, Int> {
    fn wait(&self) {
        let _ = self.clone().sum().into_scalar::<i64>();
    }
}
