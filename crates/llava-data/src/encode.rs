//! A row → token ids, labels and image references for one template and one image processor.
//! Image tokens are counted as they really expand (decision 3), from the image sizes the check
//! found, so `max_length` and the batches see the sequence the model sees.

use llava_template::{Conversation, IGNORE_INDEX, IMAGE_SENTINEL, IMAGE_TAG, Round, Template};
use llava_vision::{Processor, Size};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Problem, Result};
use crate::images::ImageRef;
use crate::row::{Origin, Row};

/// What happens to a row longer than `max_length` (ms-swift's `--truncation_strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncationStrategy {
    /// Drop the row (ms-swift's default; `ignore` is its alias there).
    #[default]
    Delete,
    /// Keep the last `max_length` tokens; a row whose cut would split an image is dropped.
    TruncationLeft,
}

/// An encoded row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Token ids, one [`IMAGE_SENTINEL`] per image.
    pub input_ids: Vec<i64>,
    /// Labels aligned with `input_ids`: [`IGNORE_INDEX`] on the prompt and the images.
    pub labels: Vec<i64>,
    /// The images, in order.
    pub images: Vec<ImageRef>,
    /// Each image's feature rows in the model.
    pub image_tokens: Vec<usize>,
    /// The row it came from.
    pub origin: Origin,
}

impl Sample {
    /// The sequence length the decoder sees (images expanded).
    pub fn expanded_len(&self) -> usize {
        self.input_ids.len() - self.images.len() + self.image_tokens.iter().sum::<usize>()
    }

    /// Labels expanded as the sequence is: each image's sentinel becomes its rows of
    /// [`IGNORE_INDEX`].
    pub fn expanded_labels(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.expanded_len());
        let mut image = 0;
        for (&id, &label) in self.input_ids.iter().zip(&self.labels) {
            if id == IMAGE_SENTINEL {
                out.extend(std::iter::repeat_n(IGNORE_INDEX, self.image_tokens[image]));
                image += 1;
            } else {
                out.push(label);
            }
        }
        out
    }

    /// Positions that carry loss: the next token's label is trained.
    pub fn trained_tokens(&self) -> usize {
        self.labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count()
    }
}

/// Rows → samples for one model.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// The chat template.
    pub template: Template,
    /// The model's image processor (for token counts).
    pub processor: Processor,
    /// Longest expanded sequence kept; `None`: no limit.
    pub max_length: Option<usize>,
    /// What happens to longer rows.
    pub truncation: TruncationStrategy,
}

impl Encoder {
    /// Encodes `row`, whose images have `sizes`; `Ok(None)` when truncation drops it.
    pub fn encode(&self, row: &Row, sizes: &[Size]) -> Result<Option<Sample>> {
        let conversation = conversation(row)?;
        let encoded = self
            .template
            .encode_with_sentinels(&conversation)
            .map_err(|source| DataError::Template {
                origin: row.origin.clone(),
                source,
            })?;
        let Some(labels) = encoded.labels else {
            unreachable!("a row always has a response");
        };
        let layouts = self.processor.layouts(sizes);
        let mut sample = Sample {
            input_ids: encoded.input_ids,
            labels,
            images: ImageRef::of_row(row),
            image_tokens: layouts.iter().map(|l| l.tokens as usize).collect(),
            origin: row.origin.clone(),
        };
        let Some(max) = self.max_length else {
            return Ok(Some(sample));
        };
        let len = sample.expanded_len();
        if len <= max {
            return Ok(Some(sample));
        }
        match self.truncation {
            TruncationStrategy::Delete => Ok(None),
            TruncationStrategy::TruncationLeft => {
                let cut = len - max;
                let text_before_first_image = sample
                    .input_ids
                    .iter()
                    .position(|&t| t == IMAGE_SENTINEL)
                    .unwrap_or(sample.input_ids.len());
                if cut >= text_before_first_image && !sample.images.is_empty()
                    || cut >= sample.input_ids.len()
                {
                    return Ok(None);
                }
                sample.input_ids.drain(..cut);
                sample.labels.drain(..cut);
                Ok((sample.trained_tokens() > 0).then_some(sample))
            }
        }
    }
}

/// The row as the template's conversation. Images are placed by `<image>` tags in the queries;
/// a row without tags gives all its images to its first round (where LLaVA's data puts the
/// image).
fn conversation(row: &Row) -> Result<Conversation> {
    let queries: Vec<&str> = row
        .history
        .iter()
        .map(|(q, _)| q.as_str())
        .chain(std::iter::once(row.query.as_str()))
        .collect();
    let tags: Vec<usize> = queries
        .iter()
        .map(|q| q.matches(IMAGE_TAG).count())
        .collect();
    let total: usize = tags.iter().sum();
    let per_round: Vec<usize> = if total == 0 {
        let mut v = vec![0; queries.len()];
        v[0] = row.images.len();
        v
    } else if total == row.images.len() {
        tags
    } else {
        return Err(DataError::Rows(vec![Problem {
            origin: row.origin.clone(),
            field: Some("images".into()),
            message: format!(
                "{} image(s) but {total} {IMAGE_TAG} tag(s) in the queries",
                row.images.len()
            ),
        }]));
    };
    let mut rounds: Vec<Round> = row
        .history
        .iter()
        .zip(&per_round)
        .map(|((q, r), &n)| Round::answered(q.clone(), r.clone(), n))
        .collect();
    rounds.push(Round::answered(
        row.query.clone(),
        row.response.clone(),
        *per_round.last().expect("at least the last round"),
    ));
    Ok(Conversation {
        system: row.system.clone(),
        rounds,
    })
}
