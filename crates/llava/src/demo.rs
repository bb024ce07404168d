//! The demo model's held-out evaluation (`docs/demo-model.md`): rendered scenes asked their
//! questions through [`inference_batch`], greedy, answers scored per question family.

use llava_scenes::{Case, Table};
use llava_template::Template;

use crate::{GenerationConfig, ImageInput, InferArgs, Model, Result, RgbImage, inference_batch};

/// Answers `cases` greedily, `batch` at a time, and returns the scored table. `progress` is
/// called after each batch with the number answered.
pub fn evaluate_scenes(
    model: &Model,
    template: &Template,
    cases: &[Case],
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Result<Table> {
    let generation = GenerationConfig {
        max_new_tokens: Some(40),
        do_sample: false,
        ..GenerationConfig::default()
    };
    let mut table = Table::default();
    let mut done = 0;
    for chunk in cases.chunks(batch.max(1)) {
        let queries: Vec<(String, InferArgs)> = chunk
            .iter()
            .map(|c| {
                let args = InferArgs {
                    images: vec![ImageInput::Image(pixels(&c.scene))],
                    generation_config: Some(generation.clone()),
                    ..InferArgs::default()
                };
                (c.qa.question.clone(), args)
            })
            .collect();
        let answers = inference_batch(model, template, &queries)?;
        for (case, (said, _)) in chunk.iter().zip(answers) {
            table.record(&case.qa, &said);
        }
        done += chunk.len();
        progress(done);
    }
    Ok(table)
}

/// The scene's pixels as the vision crate holds them.
pub fn pixels(scene: &llava_scenes::Scene) -> RgbImage {
    let image = scene.render();
    let (w, h) = image.dimensions();
    RgbImage::new(w, h, image.into_raw()).expect("a rendered image has w × h × 3 bytes")
}
