//! `cargo xtask cuda-smoke`: the same work on CUDA and on the CPU, compared.

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Decoder fixtures with reference.safetensors (repeatable; default: all four).
    #[arg(long = "model-dir")]
    model_dirs: Vec<PathBuf>,
    /// Only the composed LLaVA models (skips the matmul and the four decoders).
    #[arg(long)]
    llava_only: bool,
    /// Only the kernel checks (skips the decoders and the LLaVA models).
    #[arg(long)]
    kernels_only: bool,
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    index: usize,
}

#[cfg(not(feature = "cuda"))]
pub fn run(_args: Args) -> Result<()> {
    anyhow::bail!(
        "this binary was built without CUDA: rebuild with `--features cuda` (docs/cuda.md)"
    )
}

#[cfg(feature = "cuda")]
pub fn run(args: Args) -> Result<()> {
    imp::run(args)
}

#[cfg(feature = "cuda")]
mod imp {
    use std::time::Instant;

    use anyhow::{Context, Result, ensure};
    use burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};
    use llava_checkpoint::Progress;
    use llava_llm::{
        CausalLm, DecoderInput, ForwardOptions, GenerateOptions, LoadOptions, generate,
    };

    use super::Args;

    /// max |ours − reference| / max |reference|; non-finite output is an error.
    fn rel(ours: &[f32], reference: &[f32]) -> Result<f32> {
        ensure!(
            ours.iter().all(|v| v.is_finite()),
            "non-finite values in the CUDA output"
        );
        let diff = ours
            .iter()
            .zip(reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        Ok(diff / reference.iter().map(|v| v.abs()).fold(0.0, f32::max))
    }

    fn matmul(cuda: &Device, cpu: &Device, dtype: DType) -> Result<f32> {
        let a = Tensor::<2>::random([256, 384], Distribution::Normal(0.0, 1.0), cpu);
        let b = Tensor::<2>::random([384, 512], Distribution::Normal(0.0, 1.0), cpu);
        let reference = a.clone().matmul(b.clone()).try_into_vec_as::<f32>()?;
        let up = |t: Tensor<2>| Tensor::<2>::from_data(t.into_data(), (cuda, dtype));
        let ours = up(a)
            .matmul(up(b))
            .cast(DType::F32)
            .try_into_vec_as::<f32>()?;
        rel(&ours, &reference)
    }

    /// The fused RoPE kernel against the CPU formula at decode and prefill shapes (head dims
    /// 12, 16 and 128): max |CUDA − CPU|.
    fn rope(cuda: &Device, cpu: &Device) -> Result<f32> {
        let mut worst = 0.0f32;
        for [b, s, h, d] in [
            [1, 1, 4, 12],
            [1, 1, 2, 12],
            [1, 37, 4, 12],
            [2, 1, 4, 16],
            [1, 1, 32, 128],
            [1, 300, 8, 128],
        ] {
            let normal = Distribution::Normal(0.0, 1.0);
            let x = Tensor::<4>::random([b, s, h, d], normal, cpu);
            let cos = Tensor::<3>::random([b, s, d], normal, cpu);
            let sin = Tensor::<3>::random([b, s, d], normal, cpu);
            let reference = llava_ops::rope_bshd(x.clone(), cos.clone(), sin.clone())
                .try_into_vec_as::<f32>()?;
            let up3 = |t: Tensor<3>| Tensor::<3>::from_data(t.into_data(), cuda);
            let ours = llava_ops::rope_bshd(
                Tensor::<4>::from_data(x.into_data(), cuda),
                up3(cos),
                up3(sin),
            )
            .try_into_vec_as::<f32>()?;
            let diff = ours
                .iter()
                .zip(&reference)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!("rope [{b},{s},{h},{d}] f32: max |CUDA - CPU| {diff:.2e}");
            worst = worst.max(diff);
        }
        // bf16: transformers' three roundings on both sides, so at most a rounding apart.
        let normal = Distribution::Normal(0.0, 1.0);
        let half = |t: Tensor<4>| t.cast(DType::BF16);
        let x = half(Tensor::<4>::random([1, 300, 8, 128], normal, cpu));
        let [cos, sin] =
            [0; 2].map(|_| Tensor::<3>::random([1, 300, 128], normal, cpu).cast(DType::BF16));
        let reference = llava_ops::rope_bshd(x.clone(), cos.clone(), sin.clone())
            .cast(DType::F32)
            .try_into_vec_as::<f32>()?;
        let up3 = |t: Tensor<3>| Tensor::<3>::from_data(t.into_data(), (cuda, DType::BF16));
        let ours = llava_ops::rope_bshd(
            Tensor::<4>::from_data(x.into_data(), (cuda, DType::BF16)),
            up3(cos),
            up3(sin),
        )
        .cast(DType::F32)
        .try_into_vec_as::<f32>()?;
        let r = rel(&ours, &reference)?;
        println!("rope [1,300,8,128] BF16: rel {r:.2e} vs CPU BF16");
        ensure!(
            r < 1e-2,
            "the RoPE kernel differs from the CPU's bf16 roundings: {r:.2e}"
        );
        Ok(worst)
    }

    /// The decode-attention kernel against the CPU path (scores, softmax, `p·V` in f32) on
    /// cache buffers whose tail is masked: max |CUDA − CPU| / max |CPU| per case, worst first
    /// for f32 and bf16.
    fn decode_attention(cuda: &Device, cpu: &Device) -> Result<(f32, f32)> {
        let mut worst = (0.0f32, 0.0f32);
        // [b, heads, kv heads, slots, head dim, visible keys]
        for [b, heads, kv, t, d, len] in [
            [1, 32, 8, 3072, 128, 2959],
            [2, 4, 2, 512, 12, 300],
            [1, 7, 1, 256, 64, 256],
            [3, 8, 8, 640, 16, 5],
        ] {
            let normal = Distribution::Normal(0.0, 1.0);
            let q = Tensor::<4>::random([b, heads, 1, d], normal, cpu);
            let k = Tensor::<4>::random([b, kv, t, d], normal, cpu);
            let v = Tensor::<4>::random([b, kv, t, d], normal, cpu);
            let bias: Vec<f32> = (0..b * t)
                .map(|i| if i % t < len { 0.0 } else { f32::MIN })
                .collect();
            let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, 1, t]), cpu);
            let reference =
                llava_llm::grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone())
                    .try_into_vec_as::<f32>()?;
            for dtype in [DType::F32, DType::BF16] {
                let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (cuda, dtype));
                let bias = Tensor::<4>::from_data(bias.to_data(), cuda);
                let scale = 1.0 / (d as f64).sqrt();
                let ours = llava_ops::decode_attention(&up(&q), &up(&k), &up(&v), &bias, scale)
                    .context("the decode-attention kernel declined the case")?
                    .cast(DType::F32)
                    .try_into_vec_as::<f32>()?;
                let r = rel(&ours, &reference)?;
                println!(
                    "decode attention b{b} heads {heads}/{kv} slots {t} d {d} ({len} visible) {dtype:?}: rel {r:.2e} vs CPU f32"
                );
                if dtype == DType::F32 {
                    worst.0 = worst.0.max(r);
                } else {
                    worst.1 = worst.1.max(r);
                }
            }
        }
        Ok(worst)
    }

    /// The GEMV kernel (bf16) against the CPU product in f32 on decode shapes (rows of `x`,
    /// k, n), odd output widths included: the worst max |CUDA − CPU| / max |CPU|.
    fn gemv(cuda: &Device, cpu: &Device) -> Result<f32> {
        let mut worst = 0.0f32;
        for [rows, k, n] in [
            [1, 4096, 4096],
            [1, 4096, 14336],
            [1, 14336, 4096],
            [3, 512, 1000],
            [4, 8, 9],
            [2, 1032, 8193],
        ] {
            let normal = Distribution::Normal(0.0, 1.0);
            let x = Tensor::<2>::random([rows, k], normal, cpu);
            let w = Tensor::<2>::random([n, k], normal, cpu);
            let up = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), (cuda, DType::BF16));
            let (xb, wb) = (up(&x), up(&w));
            // The reference takes the bf16-rounded inputs, so only the summation differs.
            let down = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), cpu).cast(DType::F32);
            let reference = down(&xb)
                .matmul(down(&wb).transpose())
                .try_into_vec_as::<f32>()?;
            let ours = llava_ops::gemv(&xb, &wb)
                .context("the GEMV kernel declined the case")?
                .cast(DType::F32)
                .try_into_vec_as::<f32>()?;
            let r = rel(&ours, &reference)?;
            println!("gemv [{rows},{k}] x [{n},{k}]^T BF16: rel {r:.2e} vs CPU f32");
            worst = worst.max(r);
        }
        Ok(worst)
    }

    /// The activation kernels (QuickGELU, GELU, `tanh` GELU) in bf16 against the CPU path's
    /// formulas with the same roundings: the worst max |CUDA − CPU| / max |CPU|. Rows of 4096
    /// bf16 (8 KB) are not pitched by cubecl's allocator, so the kernel takes them.
    fn activations(cuda: &Device, cpu: &Device) -> Result<f32> {
        use llava_ops::cuda::Activation;
        let mut worst = 0.0f32;
        let x =
            Tensor::<2>::random([577, 4096], Distribution::Normal(0.0, 2.0), cpu).cast(DType::BF16);
        let on_gpu = Tensor::<2>::from_data(x.to_data(), (cuda, DType::BF16));
        for act in [
            Activation::QuickGelu,
            Activation::Gelu,
            Activation::GeluTanh,
        ] {
            let reference = match act {
                Activation::QuickGelu => llava_ops::quick_gelu(x.clone()),
                Activation::Gelu => llava_ops::gelu(x.clone(), false),
                Activation::GeluTanh => llava_ops::gelu(x.clone(), true),
            };
            let reference = reference.cast(DType::F32).try_into_vec_as::<f32>()?;
            let ours = llava_ops::cuda::activation(&on_gpu, act)
                .with_context(|| format!("the activation kernel declined {act:?}"))?
                .cast(DType::F32)
                .try_into_vec_as::<f32>()?;
            let r = rel(&ours, &reference)?;
            println!("{act:?} [577,4096] BF16: rel {r:.2e} vs CPU BF16");
            worst = worst.max(r);
        }
        Ok(worst)
    }

    /// The row kernels (RMSNorm, the residual add with RMSNorm, LayerNorm, SiLU·mul, the
    /// bias-and-round epilogue) in bf16
    /// against the CPU path's formulas with the same roundings, on the tower's, the decoder's
    /// prompt and decode widths: the worst max |CUDA − CPU| / max |CPU|.
    fn row_kernels(cuda: &Device, cpu: &Device) -> Result<f32> {
        let mut worst = 0.0f32;
        let random = |rows: usize, width: usize, dtype: DType| {
            Tensor::<2>::random([rows, width], Distribution::Normal(0.0, 2.0), cpu).cast(dtype)
        };
        let gpu = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), (cuda, t.dtype()));
        let gpu1 = |t: &Tensor<1>| Tensor::<1>::from_data(t.to_data(), (cuda, t.dtype()));
        let values = |t: Tensor<2>| t.cast(DType::F32).try_into_vec_as::<f32>();
        for (rows, width) in [(2885, 1024), (300, 4096), (1, 4096)] {
            let x = random(rows, width, DType::BF16);
            let w = Tensor::<1>::random([width], Distribution::Normal(1.0, 0.5), cpu);
            let b = Tensor::<1>::random([width], Distribution::Normal(0.0, 0.5), cpu);
            for wdt in [DType::BF16, DType::F32] {
                let (w, b) = (w.clone().cast(wdt), b.clone().cast(wdt));
                let reference = values(llava_ops::rms_norm(x.clone(), w.clone(), 1e-5))?;
                let ours = llava_ops::cuda::rms_norm(&gpu(&x), &gpu1(&w), 1e-5)
                    .context("the RMSNorm kernel declined")?;
                let r = rel(&values(ours)?, &reference)?;
                println!("rms norm [{rows},{width}] BF16, weight {wdt:?}: rel {r:.2e} vs CPU BF16");
                worst = worst.max(r);
                let reference =
                    values(llava_ops::layer_norm(x.clone(), w.clone(), b.clone(), 1e-5))?;
                let ours = llava_ops::cuda::layer_norm(&gpu(&x), &gpu1(&w), &gpu1(&b), 1e-5)
                    .context("the LayerNorm kernel declined")?;
                let r = rel(&values(ours)?, &reference)?;
                println!(
                    "layer norm [{rows},{width}] BF16, params {wdt:?}: rel {r:.2e} vs CPU BF16"
                );
                worst = worst.max(r);
            }
            let delta = random(rows, width, DType::BF16);
            let w16 = w.clone().cast(DType::BF16);
            let sum = x.clone() + delta.clone();
            let reference = values(llava_ops::rms_norm(sum.clone(), w16.clone(), 1e-5))?;
            let (our_sum, ours) =
                llava_ops::cuda::add_rms_norm(&gpu(&x), &gpu(&delta), &gpu1(&w16), 1e-5)
                    .context("the add-and-RMSNorm kernel declined")?;
            let r = rel(&values(ours)?, &reference)?.max(rel(&values(our_sum)?, &values(sum)?)?);
            println!("add rms norm [{rows},{width}] BF16: rel {r:.2e} vs CPU BF16");
            worst = worst.max(r);
            let up = random(rows, width, DType::BF16);
            let reference = values(llava_ops::silu_mul(x.clone(), up.clone()))?;
            let ours = llava_ops::cuda::silu_mul(&gpu(&x), &gpu(&up))
                .context("the SiLU·mul kernel declined")?;
            let r = rel(&values(ours)?, &reference)?;
            println!("silu mul [{rows},{width}] BF16: rel {r:.2e} vs CPU BF16");
            worst = worst.max(r);
            let sums = random(rows, width, DType::F32);
            let bias = b.clone().cast(DType::BF16);
            let reference = values(
                (sums.clone() + bias.clone().cast(DType::F32).unsqueeze::<2>()).cast(DType::BF16),
            )?;
            let ours = llava_ops::cuda::bias_round(&gpu(&sums), &gpu1(&bias), DType::BF16)
                .context("the bias-and-round kernel declined")?;
            let r = rel(&values(ours)?, &reference)?;
            println!("bias round [{rows},{width}] F32->BF16: rel {r:.2e} vs CPU");
            worst = worst.max(r);
        }
        Ok(worst)
    }

    /// The fused gate/up GEMV with SiLU·mul against the three-launch path it replaces (two
    /// GEMVs and `silu_mul`, on the GPU): the worst max |fused − unfused| / max |unfused|.
    fn gemv_silu(cuda: &Device) -> Result<f32> {
        let mut worst = 0.0f32;
        for [rows, k, n] in [[1, 4096, 14336], [3, 512, 1000], [2, 1032, 77]] {
            let normal = Distribution::Normal(0.0, 1.0);
            let bf16 = (cuda, DType::BF16);
            let x = Tensor::<2>::random([rows, k], normal, bf16);
            let gate = Tensor::<2>::random([n, k], normal, bf16);
            let up = Tensor::<2>::random([n, k], normal, bf16);
            let unfused = llava_ops::silu_mul(
                llava_ops::gemv(&x, &gate).context("the GEMV kernel declined the case")?,
                llava_ops::gemv(&x, &up).context("the GEMV kernel declined the case")?,
            );
            let fused = llava_ops::gemv_silu(&x, &gate, &up, true)
                .context("the fused kernel declined the case")?;
            let f32s = |t: Tensor<2>| t.cast(DType::F32).try_into_vec_as::<f32>();
            let r = rel(&f32s(fused)?, &f32s(unfused)?)?;
            println!(
                "gemv silu [{rows},{k}] x 2 x [{n},{k}]^T BF16: rel {r:.2e} vs the three launches"
            );
            worst = worst.max(r);
        }
        Ok(worst)
    }

    /// The merged q/k/v GEMV against three `gemv` calls: the worst max |merged − separate| /
    /// max |separate| over the three outputs.
    fn gemv_qkv(cuda: &Device) -> Result<f32> {
        let mut worst = 0.0f32;
        for [rows, k, n_q, n_kv] in [[1, 4096, 4096, 1024], [3, 512, 448, 64], [2, 1032, 40, 9]] {
            let normal = Distribution::Normal(0.0, 1.0);
            let bf16 = (cuda, DType::BF16);
            let x = Tensor::<2>::random([rows, k], normal, bf16);
            let w_q = Tensor::<2>::random([n_q, k], normal, bf16);
            let w_k = Tensor::<2>::random([n_kv, k], normal, bf16);
            let w_v = Tensor::<2>::random([n_kv, k], normal, bf16);
            let merged = llava_ops::gemv_qkv(&x, [&w_q, &w_k, &w_v], true)
                .context("the merged kernel declined the case")?;
            let f32s = |t: Tensor<2>| t.cast(DType::F32).try_into_vec_as::<f32>();
            for (out, w) in merged.into_iter().zip([&w_q, &w_k, &w_v]) {
                let separate =
                    llava_ops::gemv(&x, w).context("the GEMV kernel declined the case")?;
                let r = rel(&f32s(out)?, &f32s(separate)?)?;
                worst = worst.max(r);
            }
            println!(
                "gemv qkv [{rows},{k}] x [{n_q}+2x{n_kv},{k}]^T BF16: rel {worst:.2e} vs three gemv calls"
            );
        }
        Ok(worst)
    }

    /// The flash prefill kernel (bf16) against the CPU path in f32 on causal prompts after
    /// `past` cached positions, and without a mask (the vision towers' case): the worst max
    /// |CUDA − CPU| / max |CPU|.
    fn flash_prefill(cuda: &Device, cpu: &Device) -> Result<f32> {
        let mut worst = 0.0f32;
        // [b, heads, kv heads, prompt, head dim, past, slots]
        for [b, heads, kv, s, d, past, t] in [
            [1, 32, 8, 300, 128, 0, 512],
            [2, 4, 2, 77, 64, 5, 96],
            [1, 8, 8, 64, 128, 0, 64],
            [1, 28, 4, 130, 128, 20, 256],
        ] {
            let normal = Distribution::Normal(0.0, 1.0);
            let q = Tensor::<4>::random([b, heads, s, d], normal, cpu);
            let k = Tensor::<4>::random([b, kv, t, d], normal, cpu);
            let v = Tensor::<4>::random([b, kv, t, d], normal, cpu);
            let bias: Vec<f32> = (0..b * s * t)
                .map(|i| {
                    let (row, key) = ((i / t) % s, i % t);
                    if key <= past + row { 0.0 } else { f32::MIN }
                })
                .collect();
            let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, s, t]), cpu);
            let reference = llava_llm::grouped_attention(q.clone(), k.clone(), v.clone(), bias)
                .try_into_vec_as::<f32>()?;
            let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (cuda, DType::BF16));
            let scale = 1.0 / (d as f64).sqrt();
            let ours = llava_ops::flash_prefill(&up(&q), &up(&k), &up(&v), past, scale)
                .context("the flash prefill kernel declined the case")?
                .cast(DType::F32)
                .try_into_vec_as::<f32>()?;
            let r = rel(&ours, &reference)?;
            println!(
                "flash prefill b{b} heads {heads}/{kv} prompt {s} d {d} past {past} slots {t} BF16: rel {r:.2e} vs CPU f32"
            );
            worst = worst.max(r);
        }
        // Without a mask, as the vision towers call it: 5 tiles × 16 heads × 577 patches.
        let (n, heads, s, d) = (5, 16, 577, 64);
        let normal = Distribution::Normal(0.0, 1.0);
        let [q, k, v] = [0; 3].map(|_| Tensor::<4>::random([n, heads, s, d], normal, cpu));
        let zero = Tensor::<4>::zeros([n, 1, s, s], cpu);
        let reference = llava_llm::grouped_attention(q.clone(), k.clone(), v.clone(), zero)
            .try_into_vec_as::<f32>()?;
        let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (cuda, DType::BF16));
        let ours = llava_ops::flash_attention_full(&up(&q), &up(&k), &up(&v), 1.0 / 8.0)
            .context("the flash kernel declined full attention")?
            .cast(DType::F32)
            .try_into_vec_as::<f32>()?;
        let r = rel(&ours, &reference)?;
        println!(
            "flash attention without a mask [{n},{heads},{s},{d}] BF16: rel {r:.2e} vs CPU f32"
        );
        Ok(worst.max(r))
    }

    /// `check` run so that an error or a panic (a kernel not yet run on a GPU failing at
    /// launch) is printed and returned, not raised.
    fn caught<T>(name: &str, check: impl FnOnce() -> Result<T>) -> std::result::Result<T, String> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        let outcome = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err("panicked".to_string()),
        };
        if let Err(e) = &outcome {
            println!("{name}: {e}");
        }
        outcome
    }

    fn forward(model: &CausalLm, ids: &[u32]) -> Result<Vec<f32>> {
        let device = model.device();
        let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let n = ids.len();
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
        let logits = model.forward(DecoderInput::Ids(input), None, ForwardOptions::default())?;
        Ok(logits.cast(DType::F32).try_into_vec_as::<f32>()?)
    }

    fn reference_ids(dir: &std::path::Path, key: &str) -> Result<Vec<u32>> {
        let bytes = std::fs::read(dir.join("reference.safetensors"))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let t = st.tensor(key)?;
        Ok(t.data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect())
    }

    pub fn run(args: Args) -> Result<()> {
        let cpu = Device::flex();
        let cuda = Device::cuda(args.index);
        println!("device: {:?}", cuda.identity());
        let t = Instant::now();
        let mm32 = matmul(&cuda, &cpu, DType::F32)?;
        let mm16 = matmul(&cuda, &cpu, DType::BF16)?;
        println!(
            "matmul [256,384]x[384,512] vs CPU f32: f32 rel {mm32:.2e}, bf16 rel {mm16:.2e} ({:.1} s incl. compile)",
            t.elapsed().as_secs_f64()
        );

        let rope_diff = rope(&cuda, &cpu)?;
        // Our own kernels: a failure (or a panic at launch) is reported at the end, after
        // the other checks.
        let attention = caught("decode attention kernel", || decode_attention(&cuda, &cpu));
        let flash = caught("flash prefill kernel", || flash_prefill(&cuda, &cpu));
        let gemv = caught("gemv kernel", || gemv(&cuda, &cpu));
        let gemv_silu = caught("fused gate/up kernel", || gemv_silu(&cuda));
        let gemv_qkv = caught("merged q/k/v kernel", || gemv_qkv(&cuda));
        let activations = caught("activation kernels", || activations(&cuda, &cpu));
        let row_kernels = caught("row kernels", || row_kernels(&cuda, &cpu));
        let dirs = if args.llava_only || args.kernels_only {
            Vec::new()
        } else if args.model_dirs.is_empty() {
            let root =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/decoders");
            ["llama3", "mistral", "qwen2", "yi"]
                .iter()
                .map(|f| root.join(f))
                .collect()
        } else {
            args.model_dirs.clone()
        };
        let mut worst = 0.0f32;
        for dir in &dirs {
            worst = worst.max(decoder(dir, &cpu, &cuda)?);
        }
        if args.model_dirs.is_empty() && !args.kernels_only {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
            for name in ["clip-mistral", "siglip-qwen2"] {
                worst = worst.max(llava_model(&root, name, &cpu, &cuda)?);
            }
        }
        // f32 matmuls run as TF32 on the GPU (≈1e-3 relative).
        ensure!(
            mm32 < 1e-2 && worst < 1e-2,
            "CUDA results differ from the CPU beyond TF32 rounding"
        );
        ensure!(
            rope_diff < 1e-4,
            "the RoPE kernel differs from the CPU formula"
        );
        // f32: summation order only; bf16: inputs rounded to bf16 (≈ 4e-3 each).
        let flash = flash.map_err(|e| anyhow::anyhow!("the flash prefill kernel: {e}"))?;
        ensure!(
            flash < 3e-2,
            "the flash prefill kernel differs from the CPU path: {flash:.2e}"
        );
        // Output rounded to bf16 (≈ 4e-3); inputs are the same on both sides.
        let gemv = gemv.map_err(|e| anyhow::anyhow!("the GEMV kernel: {e}"))?;
        ensure!(
            gemv < 1e-2,
            "the GEMV kernel differs from the CPU product: {gemv:.2e}"
        );
        // The same sums and roundings as the three launches: equal up to one bf16 rounding.
        let gemv_silu = gemv_silu.map_err(|e| anyhow::anyhow!("the fused gate/up kernel: {e}"))?;
        ensure!(
            gemv_silu < 1e-2,
            "the fused gate/up kernel differs from the three launches: {gemv_silu:.2e}"
        );
        // The same sums as three separate launches.
        let gemv_qkv = gemv_qkv.map_err(|e| anyhow::anyhow!("the merged q/k/v kernel: {e}"))?;
        ensure!(
            gemv_qkv < 1e-2,
            "the merged q/k/v kernel differs from three gemv calls: {gemv_qkv:.2e}"
        );
        // One bf16 rounding apart at most (erf and tanh differ between the CPU and CUDA).
        let activations =
            activations.map_err(|e| anyhow::anyhow!("the activation kernels: {e}"))?;
        ensure!(
            activations < 1e-2,
            "the activation kernels differ from the CPU path: {activations:.2e}"
        );
        // At most one bf16 rounding apart (f32 sums in another order).
        let row_kernels = row_kernels.map_err(|e| anyhow::anyhow!("the row kernels: {e}"))?;
        ensure!(
            row_kernels < 1e-2,
            "the row kernels differ from the CPU path: {row_kernels:.2e}"
        );
        let (attn32, attn16) =
            attention.map_err(|e| anyhow::anyhow!("the decode-attention kernel: {e}"))?;
        ensure!(
            attn32 < 1e-4 && attn16 < 3e-2,
            "the decode-attention kernel differs from the CPU path: f32 {attn32:.2e}, bf16 {attn16:.2e}"
        );
        println!("cuda smoke: ok");
        Ok(())
    }

    /// The composed LLaVA model (tower, projector, packing, decoder) on one image and on two:
    /// CUDA f32 and bf16 logits against the CPU, greedy tokens against transformers' f32.
    fn llava_model(root: &std::path::Path, name: &str, cpu: &Device, cuda: &Device) -> Result<f32> {
        use llava::{LlavaNext, Prompt, open_image};
        let dir = root.join("llava").join(name).join("hf");
        let bytes = std::fs::read(dir.join("reference.safetensors"))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let ints = |key: &str| -> Result<Vec<i64>> {
            Ok(st
                .tensor(key)?
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect())
        };
        let load = |device: &Device, dtype| {
            let options = llava::LoadOptions {
                dtype,
                progress: Progress::Hidden,
                ..Default::default()
            };
            LlavaNext::from_pretrained(&dir, device, &options)
                .with_context(|| format!("loading {}", dir.display()))
        };
        let cpu32 = load(cpu, DType::F32)?;
        let cpu16 = load(cpu, DType::BF16)?;
        let mut worst = 0.0f32;
        for (case, images) in [
            ("one.coco_640x480", vec!["coco_640x480.png"]),
            ("two_images", vec!["tie_300x200.png", "wide_1000x300.png"]),
        ] {
            let decoded = images
                .iter()
                .map(|f| {
                    open_image(
                        &root.join("vision/images").join(f),
                        &cpu32.processor().decode_options(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            let prompt = Prompt {
                ids: ints(&format!("{case}.input_ids.0"))?,
                images: cpu32.process_images(&decoded)?,
            };
            let logits = |model: &LlavaNext| -> Result<Vec<f32>> {
                let (l, _) = model.forward(std::slice::from_ref(&prompt))?;
                Ok(l.cast(DType::F32).try_into_vec_as::<f32>()?)
            };
            let ref32 = logits(&cpu32)?;
            let ref16 = logits(&cpu16)?;
            let expected = ints(&format!("{case}.greedy_ids"))?;
            for dtype in [DType::F32, DType::BF16] {
                let t = Instant::now();
                let model = load(cuda, dtype)?;
                let ours = logits(&model)?;
                let vs32 = rel(&ours, &ref32)?;
                let same_dtype = rel(&ours, if dtype == DType::F32 { &ref32 } else { &ref16 })?;
                let options = GenerateOptions {
                    max_new_tokens: expected.len(),
                    ..Default::default()
                };
                let out = model.generate(std::slice::from_ref(&prompt), options)?;
                let same = out[0]
                    .iter()
                    .zip(&expected)
                    .take_while(|(a, b)| i64::from(**a) == **b)
                    .count();
                println!(
                    "llava {name} {case} ({} positions) {dtype:?} on CUDA: rel {vs32:.2e} vs CPU f32, {same_dtype:.2e} vs CPU {dtype:?}; greedy first {same}/{} equal to transformers ({:.1} s incl. compile)",
                    ours.len() / cpu32.config().text.vocab_size,
                    expected.len(),
                    t.elapsed().as_secs_f64()
                );
                if dtype == DType::F32 {
                    worst = worst.max(vs32);
                }
            }
        }
        Ok(worst)
    }

    /// f32 and bf16 forwards on CUDA against the CPU, and greedy tokens against transformers;
    /// returns the f32 relative error.
    fn decoder(dir: &std::path::Path, cpu: &Device, cuda: &Device) -> Result<f32> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ids = reference_ids(dir, "input_ids")?;
        let load = |device: &Device, dtype| {
            let options = LoadOptions {
                dtype,
                progress: Progress::Hidden,
                ..Default::default()
            };
            CausalLm::from_pretrained(dir, device, &options)
                .with_context(|| format!("loading {}", dir.display()))
        };
        let cpu_logits = forward(&load(cpu, DType::F32)?, &ids)?;
        let cpu_bf16 = forward(&load(cpu, DType::BF16)?, &ids)?;
        let expected = reference_ids(dir, "greedy_ids")?;
        let mut f32_err = 0.0;
        for dtype in [DType::F32, DType::BF16] {
            let t = Instant::now();
            let model = load(cuda, dtype)?;
            let logits = forward(&model, &ids)?;
            let err = rel(&logits, &cpu_logits)?;
            let vs_cpu_same_dtype = rel(
                &logits,
                if dtype == DType::F32 {
                    &cpu_logits
                } else {
                    &cpu_bf16
                },
            )?;
            println!(
                "{name}: forward {dtype:?} on CUDA: rel {err:.2e} vs CPU f32, {vs_cpu_same_dtype:.2e} vs CPU {dtype:?} ({:.1} s incl. compile)",
                t.elapsed().as_secs_f64()
            );
            if dtype == DType::F32 {
                f32_err = err;
            }
            let t = Instant::now();
            let options = GenerateOptions {
                max_new_tokens: expected.len(),
                ..Default::default()
            };
            let out = generate(&model, std::slice::from_ref(&ids), options)?;
            let same = out[0]
                .iter()
                .zip(&expected)
                .take_while(|(a, b)| a == b)
                .count();
            println!(
                "{name}: greedy on CUDA {dtype:?}: first {same}/{} tokens equal to transformers' f32 ({:.1} s)",
                expected.len(),
                t.elapsed().as_secs_f64()
            );
        }
        Ok(f32_err)
    }
}
