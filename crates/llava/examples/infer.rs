//! ms-swift's LLaVA best-practice snippet in Rust: one answer, then a streamed one.
//!
//! ```text
//! cargo run --release -p llava --example infer -- [MODEL_TYPE] [MODEL_ID_OR_PATH] [IMAGE]
//! ```
//! Without arguments it runs the embedded tiny model (random weights: the text is noise) on a
//! fixture image; give a real model type, hub id or directory, and an image path or URL, e.g.
//! `llava1d6-mistral-7b-instruct liuhaotian/llava-v1.6-mistral-7b https://.../road.png`.

use std::io::Write;

use llava::{
    GenerationConfig, InferArgs, ModelKwargs, get_default_template_type, get_model_tokenizer,
    get_template, inference, inference_stream, seed_everything,
};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn main() -> Result<(), llava::LlavaError> {
    let mut args = std::env::args().skip(1);
    let model_type = args
        .next()
        .unwrap_or_else(|| "llava1d6-mistral-7b-instruct".into());
    let path = args
        .next()
        .unwrap_or_else(|| format!("{ROOT}/fixtures/llava/clip-mistral/original"));
    let image = args
        .next()
        .unwrap_or_else(|| format!("{ROOT}/fixtures/vision/images/coco_640x480.png"));

    let template_type = get_default_template_type(&model_type)?;
    println!("template_type: {template_type}");
    let (mut model, tokenizer) = get_model_tokenizer(
        &model_type,
        None,
        ModelKwargs {
            model_id_or_path: Some(path),
            ..ModelKwargs::default()
        },
    )?;
    model.generation_config = GenerationConfig {
        max_new_tokens: Some(256),
        ..model.generation_config.clone()
    };
    let template = get_template(template_type, tokenizer)?;
    seed_everything(Some(42));

    let images = vec![image.as_str().into()];
    let query = "How far is it from each city?";
    let (response, _) = inference(
        &model,
        &template,
        query,
        InferArgs {
            images: images.clone(),
            ..InferArgs::default()
        },
    )?;
    println!("query: {query}");
    println!("response: {response}");

    // Streaming
    let query = "Which city is the farthest?";
    print!("query: {query}\nresponse: ");
    for delta in inference_stream(
        &model,
        &template,
        query,
        InferArgs {
            images,
            ..InferArgs::default()
        },
    )? {
        print!("{}", delta?.text);
        std::io::stdout().flush().ok();
    }
    println!();
    Ok(())
}
