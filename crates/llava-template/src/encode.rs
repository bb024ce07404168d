//! A conversation → token ids and labels, as ms-swift's `Template.encode` builds them
//! (`../shared/spec/swift-llava.md` §2.1):
//! 1. the context: system prefix (or plain prefix), then per round the prompt with the query
//!    substituted, and for answered rounds the response followed by the chat separator (history)
//!    or the suffix (the last round, when training);
//! 2. trained pieces: every response and the end-of-turn text (the suffix) after it;
//! 3. adjacent untrained texts are joined, then each text is tokenized on its own, without the
//!    tokenizer's special tokens; images become the sentinel -200 or stay the `<image>` token.

use crate::conversation::{Conversation, IMAGE_TAG, Round};
use crate::spec::{ImagePlaceholder, TemplateSpec};
use crate::{Result, TemplateError, Tokenizer};

/// Original LLaVA's image id in `input_ids`, one per image.
pub const IMAGE_SENTINEL: i64 = -200;

/// Label of a position that is not trained.
pub const IGNORE_INDEX: i64 = -100;

/// An encoded conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids; each image is one [`IMAGE_SENTINEL`] or one `<image>` token id, as the
    /// template's placeholder says (expansion to feature rows happens in the model).
    pub input_ids: Vec<i64>,
    /// Training labels: the ids of trained pieces, [`IGNORE_INDEX`] elsewhere; `None` when
    /// the last round has no response (inference).
    pub labels: Option<Vec<i64>>,
    /// Images in the ids, in order.
    pub images: usize,
}

/// One piece of the context.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// A special token written by id.
    Token(u32),
    Text(String),
    Image,
}

/// Renders and tokenizes `conversation` with `spec`.
pub(crate) fn encode(
    spec: &TemplateSpec,
    default_system: Option<&str>,
    tokenizer: &Tokenizer,
    conversation: &Conversation,
) -> Result<Encoded> {
    let err = |message: String| TemplateError::Conversation {
        template: spec.name.to_string(),
        message,
    };
    let rounds = &conversation.rounds;
    let Some(last) = rounds.last() else {
        return Err(err("the conversation has no round".into()));
    };
    if let Some(i) = rounds[..rounds.len() - 1]
        .iter()
        .position(|r| r.response.is_none())
    {
        return Err(err(format!("history round {i} has no response")));
    }
    if rounds.len() > 1 && spec.chat_sep.is_none() {
        return Err(err("the template does not support multi-round chat".into()));
    }
    let system = match conversation.system.as_deref() {
        None => default_system.filter(|s| !s.is_empty()),
        Some("") => None,
        Some(s) => Some(s),
    };

    let mut context: Vec<(Piece, bool)> = Vec::new();
    if let Some(bos) = spec.bos {
        let id = tokenizer
            .token_to_id(bos)
            .ok_or_else(|| err(format!("the tokenizer has no {bos} token to begin with")))?;
        context.push((Piece::Token(id), false));
    }
    match (system, spec.system_prefix) {
        (Some(s), Some(prefix)) => push_text(&mut context, prefix.replace("{{SYSTEM}}", s), false),
        (Some(_), None) => {
            return Err(err("the template takes no system text".into()));
        }
        (None, _) => push_text(&mut context, spec.prefix.to_string(), false),
    }
    let training = last.response.is_some();
    for (i, round) in rounds.iter().enumerate() {
        let is_last = i + 1 == rounds.len();
        if round.query.is_empty() && round.response.as_deref().unwrap_or("").is_empty() {
            if round.images > 0 {
                return Err(err(format!("round {i} has images but no text")));
            }
            continue;
        }
        let query = place_images(round).ok_or_else(|| {
            err(format!(
                "round {i}: the query has {} {IMAGE_TAG} tag(s) but the round has {} image(s)",
                round.query.matches(IMAGE_TAG).count(),
                round.images
            ))
        })?;
        let (before, after) = spec
            .prompt
            .split_once("{{QUERY}}")
            .expect("every prompt has {{QUERY}}");
        push_text(&mut context, before.to_string(), false);
        push_query(&mut context, spec, &query);
        push_text(&mut context, after.to_string(), false);
        if let Some(response) = &round.response
            && (!is_last || training)
        {
            push_text(&mut context, response.clone(), true);
            let closing = if is_last {
                spec.suffix
            } else {
                spec.chat_sep.unwrap_or(spec.suffix)
            };
            // The end-of-turn token after every response is trained (ms-swift 2.x's
            // `use_dynamic_eos`); the rest of a separator is not.
            match closing.strip_prefix(spec.suffix) {
                Some(rest) => {
                    push_text(&mut context, spec.suffix.to_string(), true);
                    push_text(&mut context, rest.to_string(), false);
                }
                None => push_text(&mut context, closing.to_string(), false),
            }
        }
    }

    let mut input_ids = Vec::new();
    let mut labels = Vec::new();
    let mut images = 0;
    for (piece, trained) in merge_untrained(context) {
        match piece {
            Piece::Token(id) => {
                input_ids.push(i64::from(id));
                labels.push(IGNORE_INDEX);
            }
            Piece::Image => {
                input_ids.push(IMAGE_SENTINEL);
                labels.push(IGNORE_INDEX);
                images += 1;
            }
            Piece::Text(text) => {
                for id in tokenizer.encode_segment(&text)? {
                    input_ids.push(i64::from(id));
                    labels.push(if trained { i64::from(id) } else { IGNORE_INDEX });
                }
            }
        }
    }
    if let ImagePlaceholder::Token(tag) = spec.image_placeholder {
        let id = tokenizer.token_to_id(tag).ok_or_else(|| {
            err(format!(
                "the tokenizer has no {tag} token for the image placeholder"
            ))
        })?;
        images = input_ids.iter().filter(|&&t| t == i64::from(id)).count();
        for (l, &t) in labels.iter_mut().zip(&input_ids) {
            if t == i64::from(id) {
                *l = IGNORE_INDEX;
            }
        }
    }
    let expected: usize = rounds.iter().map(|r| r.images).sum();
    if images != expected {
        return Err(err(format!(
            "the encoded prompt holds {images} image placeholder(s) for {expected} image(s)"
        )));
    }
    Ok(Encoded {
        input_ids,
        labels: training.then_some(labels),
        images,
    })
}

/// The round's query with one `<image>` tag per image: the user's own tags when they match
/// the image count, else tags put in front (ms-swift's `add_default_tags`); `None` when the
/// query has tags but not as many as the round has images.
fn place_images(round: &Round) -> Option<String> {
    let tags = round.query.matches(IMAGE_TAG).count();
    if tags == round.images {
        return Some(round.query.clone());
    }
    if tags > 0 {
        return None;
    }
    Some(format!("{}{}", IMAGE_TAG.repeat(round.images), round.query))
}

/// Writes the query, each `<image>` tag becoming the image placeholder and the template's
/// text after an image.
fn push_query(context: &mut Vec<(Piece, bool)>, spec: &TemplateSpec, query: &str) {
    let mut parts = query.split(IMAGE_TAG);
    push_text(context, parts.next().unwrap_or("").to_string(), false);
    for rest in parts {
        match spec.image_placeholder {
            ImagePlaceholder::Sentinel => context.push((Piece::Image, false)),
            ImagePlaceholder::Token(tag) => push_text(context, tag.to_string(), false),
        }
        push_text(context, spec.image_suffix.to_string(), false);
        push_text(context, rest.to_string(), false);
    }
}

fn push_text(context: &mut Vec<(Piece, bool)>, text: String, trained: bool) {
    if !text.is_empty() || trained {
        context.push((Piece::Text(text), trained));
    }
}

/// ms-swift's `_simplify_context_list`: runs of untrained text become one segment; trained
/// pieces and images stay on their own.
fn merge_untrained(context: Vec<(Piece, bool)>) -> Vec<(Piece, bool)> {
    let mut out: Vec<(Piece, bool)> = Vec::new();
    for (piece, trained) in context {
        if let (Piece::Text(text), false) = (&piece, trained)
            && let Some((Piece::Text(prev), false)) = out.last_mut()
        {
            prev.push_str(text);
            continue;
        }
        out.push((piece, trained));
    }
    out
}
