//! ms-swift's `inference` and `inference_stream` (`../shared/spec/swift-llava.md` §3): a query,
//! its images, the history and a system text → the templated prompt → generation → the
//! response, streamed as text deltas that never split a UTF-8 character and never show a
//! stop word (spec README, decision 8).

use std::sync::atomic::{AtomicU64, Ordering};

use llava_llm::{GenerateOptions, GenerationConfig, Generator};
use llava_template::{Conversation, Round, StreamDecoder, Template};

use crate::Model;
use crate::{LlavaError, Prompt, Result};
use llava_vision::{FetchOptions, ImageInput};

/// One finished round of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The user's text.
    pub query: String,
    /// The model's answer.
    pub response: String,
    /// The images of the round (kept so later rounds can show them to the model again).
    pub images: Vec<ImageInput>,
}

/// Earlier rounds, oldest first.
pub type History = Vec<Turn>;

/// Everything of a query besides its text.
#[derive(Debug, Clone, Default)]
pub struct InferArgs {
    /// This round's images (placed at the query's `<image>` tags, else before the text).
    pub images: Vec<ImageInput>,
    /// Earlier rounds.
    pub history: History,
    /// `None`: the template's default system; `Some("")`: none.
    pub system: Option<String>,
    /// Decoding settings; the model's `generation_config.json` when unset.
    pub generation_config: Option<GenerationConfig>,
    /// Extra texts that end the answer (the template's suffix and EOS always do).
    pub stop_words: Vec<String>,
    /// Limits on images fetched by URL.
    pub fetch: FetchOptions,
    /// Limits on decoding images (`None`: the model's processor's, Pillow's pixel limit).
    pub decode: Option<llava_vision::DecodeOptions>,
}

/// New text of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// Text added since the previous delta (whole characters).
    pub text: String,
    /// The answer so far (ms-swift's cumulative `response`).
    pub response: String,
}

/// Sizes of a generation (ms-swift's `generation_info`, and more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerationInfo {
    /// Prompt length with every image expanded to its feature rows.
    pub prompt_tokens: usize,
    /// Feature rows of each image, in prompt order (history images first).
    pub image_tokens: Vec<usize>,
    /// Generated ids (up to and including the one that ended the answer).
    pub token_ids: Vec<u32>,
}

static DEFAULT_SEED: AtomicU64 = AtomicU64::new(42);

/// Sets the seed used by sampling when a generation config carries none, and returns it; a
/// random seed when `None` (ms-swift's `seed_everything`).
pub fn seed_everything(seed: Option<u64>) -> u64 {
    let seed = seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    DEFAULT_SEED.store(seed, Ordering::Relaxed);
    tracing::info!(seed, "global seed set");
    seed
}

/// Generates the answer to `query` and returns it with the history extended by this round.
pub fn inference(
    model: &Model,
    template: &Template,
    query: &str,
    args: InferArgs,
) -> Result<(String, History)> {
    let (response, history, _) = inference_with_info(model, template, query, args)?;
    Ok((response, history))
}

/// [`inference`] plus the token counts and generated ids.
pub fn inference_with_info(
    model: &Model,
    template: &Template,
    query: &str,
    args: InferArgs,
) -> Result<(String, History, GenerationInfo)> {
    let mut stream = inference_stream(model, template, query, args)?;
    for delta in &mut stream {
        delta?;
    }
    let info = stream.info();
    let (response, history) = stream.into_result();
    Ok((response, history, info))
}

/// A query made ready for the generator.
struct Prepared {
    prompt: Prompt,
    options: GenerateOptions,
    stop_words: Vec<String>,
    info: GenerationInfo,
}

/// Encodes `query` with its history and images, and works out the generation options.
fn prepare(model: &Model, template: &Template, query: &str, args: &InferArgs) -> Result<Prepared> {
    let tokenizer = template.tokenizer();
    let rounds: Vec<Round> = args
        .history
        .iter()
        .map(|t| Round::answered(t.query.clone(), t.response.clone(), t.images.len()))
        .chain(std::iter::once(Round::query(query, args.images.len())))
        .collect();
    let encoded = template.encode_with_sentinels(&Conversation {
        system: args.system.clone(),
        rounds,
    })?;

    let decode = args
        .decode
        .unwrap_or_else(|| model.llava.processor().decode_options());
    let inputs: Vec<&ImageInput> = args
        .history
        .iter()
        .flat_map(|t| t.images.iter())
        .chain(args.images.iter())
        .collect();
    let decoded = inputs
        .iter()
        .map(|i| i.load(&decode, &args.fetch))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let images = model.llava.process_images(&decoded)?;
    let image_tokens: Vec<usize> = images.iter().map(|i| i.layout.tokens as usize).collect();

    let ids = encoded.input_ids;
    let prompt_tokens = ids.len() - encoded.images + image_tokens.iter().sum::<usize>();

    let config = args
        .generation_config
        .clone()
        .unwrap_or_else(|| model.generation_config.clone());
    let context = model.max_model_len;
    if prompt_tokens >= context {
        return Err(LlavaError::PromptTooLong {
            prompt: prompt_tokens,
            context,
        });
    }
    let wanted = match (config.max_new_tokens, config.max_length) {
        (Some(n), _) => n,
        (None, Some(total)) => total.saturating_sub(prompt_tokens),
        (None, None) => DEFAULT_MAX_NEW_TOKENS,
    };
    let max_new_tokens = wanted.min(context - prompt_tokens);
    if max_new_tokens < wanted {
        tracing::info!(
            wanted,
            max_new_tokens,
            context,
            "max_new_tokens clipped to the context"
        );
    }

    let mut eos_token_ids = config.eos_token_ids();
    eos_token_ids.extend(tokenizer.eos_token_id());
    let mut stop_words = template.stop_words();
    stop_words.extend(args.stop_words.iter().cloned());
    for &eos in &eos_token_ids {
        if let Ok(text) = tokenizer.decode(&[eos], false)
            && !text.is_empty()
        {
            stop_words.push(text);
        }
    }
    let options = GenerateOptions {
        max_new_tokens,
        sampling: config.sampling(),
        seed: config
            .seed
            .unwrap_or_else(|| DEFAULT_SEED.load(Ordering::Relaxed)),
        eos_token_ids,
    };
    Ok(Prepared {
        prompt: Prompt { ids, images },
        options,
        stop_words,
        info: GenerationInfo {
            prompt_tokens,
            image_tokens,
            token_ids: Vec::new(),
        },
    })
}

/// Starts generating the answer to `query`; iterate for the deltas, then
/// [`InferenceStream::into_result`] gives the response and history.
pub fn inference_stream<'a>(
    model: &'a Model,
    template: &'a Template,
    query: &str,
    args: InferArgs,
) -> Result<InferenceStream<'a>> {
    let p = prepare(model, template, query, &args)?;
    let generator = model.llava.generator(&[p.prompt], p.options)?;
    Ok(InferenceStream {
        generator,
        decoder: StreamDecoder::new(template.tokenizer(), &p.stop_words),
        query: query.to_string(),
        args,
        info: p.info,
        done: false,
    })
}

/// Answers several queries in one batch (left-padded together, as transformers batches
/// `generate`): each answer and its sizes, in order. The first query's generation settings
/// apply to all; each answer ends at its own EOS or stop word.
pub fn inference_batch(
    model: &Model,
    template: &Template,
    queries: &[(String, InferArgs)],
) -> Result<Vec<(String, GenerationInfo)>> {
    if queries.is_empty() {
        return Ok(Vec::new());
    }
    let prepared = queries
        .iter()
        .map(|(q, a)| prepare(model, template, q, a))
        .collect::<Result<Vec<_>>>()?;
    let mut options = prepared[0].options.clone();
    options.max_new_tokens = prepared
        .iter()
        .map(|p| p.options.max_new_tokens)
        .min()
        .unwrap_or(options.max_new_tokens);
    let prompts: Vec<Prompt> = prepared.iter().map(|p| p.prompt.clone()).collect();
    let rows = model.llava.generate(&prompts, options)?;
    let mut out = Vec::with_capacity(rows.len());
    for (p, ids) in prepared.into_iter().zip(rows) {
        let mut decoder = StreamDecoder::new(template.tokenizer(), &p.stop_words);
        let mut info = p.info;
        for id in ids {
            info.token_ids.push(id);
            if decoder.push(id)?.stopped {
                break;
            }
        }
        decoder.finish()?;
        out.push((decoder.text().to_string(), info));
    }
    Ok(out)
}

/// When neither `max_new_tokens` nor `max_length` is configured (the CLI's default too).
const DEFAULT_MAX_NEW_TOKENS: usize = 2048;

/// A streamed answer: an iterator of [`Delta`]s.
pub struct InferenceStream<'a> {
    generator: Generator<'a>,
    decoder: StreamDecoder<'a>,
    query: String,
    args: InferArgs,
    info: GenerationInfo,
    done: bool,
}

impl std::fmt::Debug for InferenceStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceStream")
            .field("query", &self.query)
            .field("response", &self.decoder.text())
            .field("done", &self.done)
            .finish()
    }
}

impl InferenceStream<'_> {
    /// The answer so far.
    pub fn response(&self) -> &str {
        self.decoder.text()
    }

    /// Token counts and the ids generated so far.
    pub fn info(&self) -> GenerationInfo {
        self.info.clone()
    }

    /// The response and the history extended by this round (stopping early keeps what was
    /// generated).
    pub fn into_result(self) -> (String, History) {
        let response = self.decoder.text().to_string();
        let mut history = self.args.history;
        history.push(Turn {
            query: self.query,
            response: response.clone(),
            images: self.args.images,
        });
        (response, history)
    }

    fn delta(&self, text: String) -> Option<Result<Delta>> {
        (!text.is_empty()).then(|| {
            Ok(Delta {
                text,
                response: self.decoder.text().to_string(),
            })
        })
    }

    fn step(&mut self) -> Result<Option<String>> {
        match self.generator.step()? {
            None => {
                self.done = true;
                Ok(Some(self.decoder.finish()?.delta))
            }
            Some(tokens) => {
                let id = tokens[0];
                self.info.token_ids.push(id);
                let step = self.decoder.push(id)?;
                if step.stopped {
                    self.done = true;
                }
                Ok(Some(step.delta))
            }
        }
    }
}

impl Iterator for InferenceStream<'_> {
    type Item = Result<Delta>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.step() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Some(text)) => {
                    if let Some(delta) = self.delta(text) {
                        return Some(delta);
                    }
                }
                Ok(None) => {}
            }
        }
        None
    }
}
