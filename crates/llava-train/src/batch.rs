//! Samples → a batch the model trains on: images loaded (URLs from the cache) and processed,
//! ids with one sentinel per image, labels expanded like the sequence and padded on the right
//! (decision 5: rows of any aspect ratio mix, every image keeps its own tiles).

use burn::tensor::Tensor;
use llava_data::{ImageCache, Sample};
use llava_model::{LlavaNext, Padding, Prompt};
use llava_template::IGNORE_INDEX;
use llava_vision::Processor;
use rayon::prelude::*;

use crate::error::{Result, TrainError};
use crate::loss::{LossParts, lm_loss};

/// One micro-batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The model's prompts.
    pub prompts: Vec<Prompt>,
    /// Expanded labels, right-padded with −100 to the longest row.
    pub labels: Vec<Vec<i64>>,
    /// Trained tokens.
    pub tokens: usize,
}

impl Batch {
    /// Loads and processes the images of `samples`.
    pub fn new(samples: &[&Sample], cache: &ImageCache, processor: &Processor) -> Result<Self> {
        // Images decode and tile in parallel, one sample per task.
        let loaded = samples
            .par_iter()
            .map(|s| -> Result<(Prompt, Vec<i64>)> {
                let images = s
                    .images
                    .iter()
                    .map(|i| cache.load(i))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|source| TrainError::Image {
                        origin: s.origin.to_string(),
                        source,
                    })?;
                let processed = processor
                    .process(&images)
                    .map_err(|source| TrainError::Image {
                        origin: s.origin.to_string(),
                        source,
                    })?;
                let counted: Vec<usize> =
                    processed.iter().map(|p| p.layout.tokens as usize).collect();
                if counted != s.image_tokens {
                    return Err(TrainError::Internal(format!(
                        "{}: the images give {counted:?} tokens where the check counted {:?} (was a file changed since?)",
                        s.origin, s.image_tokens
                    )));
                }
                let prompt = Prompt {
                    ids: s.input_ids.clone(),
                    images: processed,
                };
                Ok((prompt, s.expanded_labels()))
            })
            .collect::<Result<Vec<_>>>()?;
        let (prompts, mut labels): (Vec<Prompt>, Vec<Vec<i64>>) = loaded.into_iter().unzip();
        let len = labels.iter().map(Vec::len).max().unwrap_or(0);
        for l in &mut labels {
            l.resize(len, IGNORE_INDEX);
        }
        let tokens = samples.iter().map(|s| s.trained_tokens()).sum();
        Ok(Self {
            prompts,
            labels,
            tokens,
        })
    }

    /// Runs the model to the last decoder layer's output (`[batch, len, hidden]`, before the
    /// final norm), with a graph where the model is on an autodiff device. With `seed`, the
    /// device is seeded with it before the embeddings and with [`layer_seed`] before each
    /// layer, so the dropout drawn depends on the seed only.
    pub fn states(&self, model: &LlavaNext, seed: Option<u64>) -> Result<Tensor<3>> {
        let device = model.device();
        if let Some(seed) = seed {
            device.seed(seed);
        }
        let prepared = model.prepare_padded(&self.prompts, Padding::Right)?;
        let lm = &model.language_model;
        let (mut x, tables) = lm.layer_tables(prepared.embeds)?;
        for (i, layer) in lm.model.layers.iter().enumerate() {
            if let Some(seed) = seed {
                device.seed(layer_seed(seed, i));
            }
            x = lm.layer_forward(layer, i, x, &tables);
        }
        Ok(x)
    }

    /// Runs the model and returns the loss parts (the sum tracked for backward), no reseeding.
    pub fn loss(&self, model: &LlavaNext) -> Result<LossParts> {
        lm_loss(
            &model.language_model,
            self.states(model, None)?,
            &self.labels,
        )
    }
}

/// The seed decoder layer `i` draws its dropout from in a micro-batch seeded with `seed`.
pub fn layer_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_add(1 + i as u64)
}
