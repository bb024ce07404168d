//! CPU fidelity against transformers in bf16 (with `benches/fidelity_cpu.py`): our logits and
//! merged input embeddings of a LLaVA fixture's prompt `one.coco_640x480`, in f32 and bf16,
//! and the preprocessed pixels, as raw little-endian f32 files in OUT_DIR.
//!
//! `cargo run --release -p llava --example fixture_logits -- clip-mistral /tmp/fid`
//! (the prompt's text ids, image run collapsed to -1, in OUT_DIR/ids.txt: the Python script
//! writes them first).
use burn::tensor::{DType, Device};
use llava::{IMAGE_SENTINEL, LlavaNext, LoadOptions, Prompt, open_image};
use llava_checkpoint::Progress;
use std::error::Error;
use std::io::Write;
use std::path::Path;

fn write(path: &str, values: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::File::create(path)?.write_all(&bytes)
}

fn main() -> Result<(), Box<dyn Error>> {
    let name = std::env::args().nth(1).unwrap_or("clip-mistral".into());
    let out = std::env::args().nth(2).unwrap_or("/tmp/fid".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let dir = root.join("llava").join(&name).join("hf");
    let ids = std::fs::read_to_string(format!("{out}/ids.txt"))?
        .split_whitespace()
        .map(|s| {
            s.parse::<i64>()
                .map(|i| if i < 0 { IMAGE_SENTINEL } else { i })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (dtype, tag) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
        let options = LoadOptions {
            dtype,
            progress: Progress::Hidden,
            ..LoadOptions::default()
        };
        let model = LlavaNext::from_pretrained(&dir, &Device::flex(), &options)?;
        let decode = model.processor().decode_options();
        let image = open_image(&root.join("vision/images/coco_640x480.png"), &decode)?;
        let processed = model.process_image(&image)?;
        write(&format!("{out}/pixels.f32"), &processed.pixel_values)?;
        let prompt = Prompt {
            ids: ids.clone(),
            images: vec![processed],
        };
        let (logits, batch) = model.forward(&[prompt])?;
        let as_f32 = |t: burn::tensor::Tensor<3>| t.cast(DType::F32).try_into_vec_as::<f32>();
        write(&format!("{out}/embeds_{tag}.f32"), &as_f32(batch.embeds)?)?;
        eprintln!("{tag}: logits {:?}", logits.dims());
        write(&format!("{out}/ours_{tag}.f32"), &as_f32(logits)?)?;
    }
    Ok(())
}
