//! Every CUDA kernel of llava-ops against the reference path (`llava_ops::reference`, on the
//! CPU in f32 or with the same half-precision roundings), at shapes at the edges: one row, odd
//! widths, GQA ratios, long caches. Built only with the `cuda` feature; run on a GPU machine
//! with `scripts/gpu/ops_tests.sh` (the binary is built here with `--no-run` and carried).
#![cfg(feature = "cuda")]

use anyhow::{Context, Result, ensure};
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

fn cuda() -> Device {
    Device::cuda(0)
}

fn cpu() -> Device {
    Device::flex()
}

/// max |ours − reference| / max |reference|; non-finite output is an error.
fn rel(ours: &[f32], reference: &[f32]) -> Result<f32> {
    ensure!(
        ours.iter().all(|v| v.is_finite()),
        "non-finite values in the CUDA output"
    );
    Ok(llava_testutil::relative_error(ours, reference))
}

fn check_matmul(cuda: &Device, cpu: &Device, dtype: DType) -> Result<f32> {
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
fn check_rope(cuda: &Device, cpu: &Device) -> Result<f32> {
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
        let reference =
            llava_ops::rope_bshd(x.clone(), cos.clone(), sin.clone()).try_into_vec_as::<f32>()?;
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
fn check_decode_attention(cuda: &Device, cpu: &Device) -> Result<(f32, f32)> {
    let mut worst = (0.0f32, 0.0f32);
    // [b, heads, kv heads, slots, head dim, visible keys]
    for [b, heads, kv, t, d, len] in [
        [1, 32, 8, 3072, 128, 2959],
        [2, 4, 2, 512, 12, 300],
        [1, 7, 1, 256, 64, 256],
        [3, 8, 8, 640, 16, 5],
        // A long cache, and one visible key.
        [1, 32, 8, 8192, 128, 8191],
        [1, 4, 4, 256, 128, 1],
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
            llava_ops::reference::grouped_attention(q.clone(), k.clone(), v.clone(), bias.clone())
                .try_into_vec_as::<f32>()?;
        for dtype in [DType::F32, DType::BF16] {
            let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (cuda, dtype));
            let bias = Tensor::<4>::from_data(bias.to_data(), cuda);
            let scale = 1.0 / (d as f64).sqrt();
            let ours = llava_ops::cuda::decode_attention(&up(&q), &up(&k), &up(&v), &bias, scale)
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
fn check_gemv(cuda: &Device, cpu: &Device) -> Result<f32> {
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
        let ours = llava_ops::cuda::gemv_tensors(&xb, &wb)
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
fn check_activations(cuda: &Device, cpu: &Device) -> Result<f32> {
    use llava_ops::cuda::Activation;
    let mut worst = 0.0f32;
    let x = Tensor::<2>::random([577, 4096], Distribution::Normal(0.0, 2.0), cpu).cast(DType::BF16);
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
fn check_row_kernels(cuda: &Device, cpu: &Device) -> Result<f32> {
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
            let reference = values(llava_ops::layer_norm(x.clone(), w.clone(), b.clone(), 1e-5))?;
            let ours = llava_ops::cuda::layer_norm(&gpu(&x), &gpu1(&w), &gpu1(&b), 1e-5)
                .context("the LayerNorm kernel declined")?;
            let r = rel(&values(ours)?, &reference)?;
            println!("layer norm [{rows},{width}] BF16, params {wdt:?}: rel {r:.2e} vs CPU BF16");
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
fn check_gemv_silu(cuda: &Device) -> Result<f32> {
    let mut worst = 0.0f32;
    for [rows, k, n] in [[1, 4096, 14336], [3, 512, 1000], [2, 1032, 77]] {
        let normal = Distribution::Normal(0.0, 1.0);
        let bf16 = (cuda, DType::BF16);
        let x = Tensor::<2>::random([rows, k], normal, bf16);
        let gate = Tensor::<2>::random([n, k], normal, bf16);
        let up = Tensor::<2>::random([n, k], normal, bf16);
        let unfused = llava_ops::silu_mul(
            llava_ops::cuda::gemv_tensors(&x, &gate)
                .context("the GEMV kernel declined the case")?,
            llava_ops::cuda::gemv_tensors(&x, &up).context("the GEMV kernel declined the case")?,
        );
        let fused = llava_ops::cuda::gemv_silu_tensors(&x, &gate, &up, true)
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
fn check_gemv_qkv(cuda: &Device) -> Result<f32> {
    let mut worst = 0.0f32;
    for [rows, k, n_q, n_kv] in [[1, 4096, 4096, 1024], [3, 512, 448, 64], [2, 1032, 40, 9]] {
        let normal = Distribution::Normal(0.0, 1.0);
        let bf16 = (cuda, DType::BF16);
        let x = Tensor::<2>::random([rows, k], normal, bf16);
        let w_q = Tensor::<2>::random([n_q, k], normal, bf16);
        let w_k = Tensor::<2>::random([n_kv, k], normal, bf16);
        let w_v = Tensor::<2>::random([n_kv, k], normal, bf16);
        let merged = llava_ops::cuda::gemv_qkv_tensors(&x, [&w_q, &w_k, &w_v], true)
            .context("the merged kernel declined the case")?;
        let f32s = |t: Tensor<2>| t.cast(DType::F32).try_into_vec_as::<f32>();
        for (out, w) in merged.into_iter().zip([&w_q, &w_k, &w_v]) {
            let separate = llava_ops::cuda::gemv_tensors(&x, w)
                .context("the GEMV kernel declined the case")?;
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
fn check_flash_prefill(cuda: &Device, cpu: &Device) -> Result<f32> {
    let mut worst = 0.0f32;
    // [b, heads, kv heads, prompt, head dim, past, slots]
    for [b, heads, kv, s, d, past, t] in [
        [1, 32, 8, 300, 128, 0, 512],
        [2, 4, 2, 77, 64, 5, 96],
        [1, 8, 8, 64, 128, 0, 64],
        [1, 28, 4, 130, 128, 20, 256],
        // GQA 4:1 with an odd prompt; head dim 16 (a load per register, no `ldmatrix`).
        [1, 4, 1, 17, 64, 3, 32],
        [2, 6, 3, 33, 16, 0, 40],
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
        let reference =
            llava_ops::reference::grouped_attention(q.clone(), k.clone(), v.clone(), bias)
                .try_into_vec_as::<f32>()?;
        let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (cuda, DType::BF16));
        let scale = 1.0 / (d as f64).sqrt();
        let ours = llava_ops::cuda::flash_prefill(&up(&q), &up(&k), &up(&v), past, scale)
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
    let reference = llava_ops::reference::grouped_attention(q.clone(), k.clone(), v.clone(), zero)
        .try_into_vec_as::<f32>()?;
    let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (cuda, DType::BF16));
    let ours = llava_ops::cuda::flash_attention_full(&up(&q), &up(&k), &up(&v), 1.0 / 8.0)
        .context("the flash kernel declined full attention")?
        .cast(DType::F32)
        .try_into_vec_as::<f32>()?;
    let r = rel(&ours, &reference)?;
    println!("flash attention without a mask [{n},{heads},{s},{d}] BF16: rel {r:.2e} vs CPU f32");
    Ok(worst.max(r))
}

// f32 matmuls run as TF32 on the GPU (≈1e-3 relative); bf16 rounds the inputs (≈4e-3 each).
#[test]
fn matmul_matches_the_cpu() {
    let (f32_rel, bf16_rel) = (
        check_matmul(&cuda(), &cpu(), DType::F32).unwrap(),
        check_matmul(&cuda(), &cpu(), DType::BF16).unwrap(),
    );
    assert!(
        f32_rel < 1e-2 && bf16_rel < 2e-2,
        "f32 {f32_rel:.2e}, bf16 {bf16_rel:.2e}"
    );
}

#[test]
fn rope_matches_the_formula() {
    let diff = check_rope(&cuda(), &cpu()).unwrap();
    assert!(diff < 1e-4, "max |CUDA - CPU| {diff:.2e}");
}

// f32: summation order only; bf16: inputs rounded to bf16.
#[test]
fn decode_attention_matches_the_reference() {
    let (f32_rel, bf16_rel) = check_decode_attention(&cuda(), &cpu()).unwrap();
    assert!(
        f32_rel < 1e-4 && bf16_rel < 3e-2,
        "f32 {f32_rel:.2e}, bf16 {bf16_rel:.2e}"
    );
}

// Output rounded to bf16 (≈ 4e-3); inputs are the same on both sides.
#[test]
fn gemv_matches_the_product() {
    let r = check_gemv(&cuda(), &cpu()).unwrap();
    assert!(r < 1e-2, "{r:.2e}");
}

// One bf16 rounding apart at most (erf and tanh differ between the CPU and CUDA).
#[test]
fn activations_match_the_reference() {
    let r = check_activations(&cuda(), &cpu()).unwrap();
    assert!(r < 1e-2, "{r:.2e}");
}

// At most one bf16 rounding apart (f32 sums in another order).
#[test]
fn row_kernels_match_the_reference() {
    let r = check_row_kernels(&cuda(), &cpu()).unwrap();
    assert!(r < 1e-2, "{r:.2e}");
}

// The same sums and roundings as the three launches: equal up to one bf16 rounding.
#[test]
fn gemv_silu_equals_the_three_launches() {
    let r = check_gemv_silu(&cuda()).unwrap();
    assert!(r < 1e-2, "{r:.2e}");
}

// The same sums as three separate launches.
#[test]
fn gemv_qkv_equals_three_gemvs() {
    let r = check_gemv_qkv(&cuda()).unwrap();
    assert!(r < 1e-2, "{r:.2e}");
}

// bf16 inputs rounded (≈ 4e-3 each), f32 softmax.
#[test]
fn flash_attention_matches_the_reference() {
    let r = check_flash_prefill(&cuda(), &cpu()).unwrap();
    assert!(r < 3e-2, "{r:.2e}");
}

/// The dispatchers on CUDA tensors give the reference path's result: attention (flash for the
/// prompt, flash-decoding for one query), the grouped products, the SwiGLU input.
#[test]
fn dispatchers_on_cuda_match_the_reference_path() {
    let (gpu, cpu) = (cuda(), cpu());
    let normal = Distribution::Normal(0.0, 1.0);
    let (b, heads, kv, s, d) = (1, 8, 2, 40, 64);
    let q = Tensor::<4>::random([b, heads, s, d], normal, &cpu);
    let k = Tensor::<4>::random([b, kv, s, d], normal, &cpu);
    let v = Tensor::<4>::random([b, kv, s, d], normal, &cpu);
    let bias: Vec<f32> = (0..s * s)
        .map(|i| if i % s <= i / s { 0.0 } else { f32::MIN })
        .collect();
    let bias = Tensor::<4>::from_data(TensorData::new(bias, [1, 1, s, s]), &cpu);
    let reference =
        llava_ops::reference::causal_attention(q.clone(), k.clone(), v.clone(), bias.clone(), 0)
            .try_into_vec_as::<f32>()
            .unwrap();
    let up = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), (&gpu, DType::BF16));
    let ours = llava_ops::causal_attention(
        up(&q),
        up(&k),
        up(&v),
        Tensor::<4>::from_data(bias.to_data(), &gpu),
        0,
        true,
    )
    .cast(DType::F32)
    .try_into_vec_as::<f32>()
    .unwrap();
    let r = rel(&ours, &reference).unwrap();
    assert!(r < 3e-2, "causal attention: {r:.2e}");

    let x = Tensor::<2>::random([1, 256], normal, &cpu);
    let w = [0; 3].map(|_| Tensor::<2>::random([96, 256], normal, &cpu));
    let up2 = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), (&gpu, DType::BF16));
    let refs = llava_ops::linear_group(&x, w.clone().map(|w| (w, None)));
    let ours = llava_ops::linear_group(&up2(&x), w.clone().map(|w| (up2(&w), None)));
    for (o, r) in ours.into_iter().zip(refs) {
        let o = o.cast(DType::F32).try_into_vec_as::<f32>().unwrap();
        let r = r.try_into_vec_as::<f32>().unwrap();
        let e = rel(&o, &r).unwrap();
        assert!(e < 2e-2, "linear group: {e:.2e}");
    }
    let reference = llava_ops::swiglu(x.clone(), (w[0].clone(), None), (w[1].clone(), None))
        .try_into_vec_as::<f32>()
        .unwrap();
    let ours = llava_ops::swiglu(up2(&x), (up2(&w[0]), None), (up2(&w[1]), None))
        .cast(DType::F32)
        .try_into_vec_as::<f32>()
        .unwrap();
    let e = rel(&ours, &reference).unwrap();
    assert!(e < 2e-2, "swiglu: {e:.2e}");
}
