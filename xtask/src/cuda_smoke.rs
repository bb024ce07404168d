//! `cargo xtask cuda-smoke`: the fixture models (the four decoders, the composed LLaVA models)
//! on CUDA and on the CPU, compared; greedy tokens against transformers'. The kernels' own
//! checks are `cargo test -p llava-ops --features cuda` (crates/llava-ops/tests/cuda_kernels.rs).

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
    use burn::tensor::{DType, Device, Int, Tensor, TensorData};
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
        Ok(llava_testutil::relative_error(ours, reference))
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
        let dirs = if args.llava_only {
            Vec::new()
        } else if args.model_dirs.is_empty() {
            let root = llava_testutil::fixture("decoders");
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
        if args.model_dirs.is_empty() {
            let root = llava_testutil::fixtures();
            for name in ["clip-mistral", "siglip-qwen2"] {
                worst = worst.max(llava_model(&root, name, &cpu, &cuda)?);
            }
        }
        // f32 matmuls run as TF32 on the GPU (≈1e-3 relative).
        ensure!(
            worst < 1e-2,
            "CUDA results differ from the CPU beyond TF32 rounding"
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
