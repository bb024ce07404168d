//! A template bound to a tokenizer: what `get_template` returns.

use crate::conversation::Conversation;
use crate::encode::{Encoded, encode};
use crate::spec::{ImagePlaceholder, TEMPLATE_ALIASES, TEMPLATES, TemplateSpec, find_template};
use crate::{Result, TemplateError, Tokenizer};

/// A chat template with its tokenizer, ready to encode conversations.
#[derive(Debug, Clone)]
pub struct Template {
    spec: &'static TemplateSpec,
    tokenizer: Tokenizer,
    default_system: Option<String>,
    /// Longest prompt accepted (an image counts as one token); `None`: no limit.
    pub max_length: Option<usize>,
}

/// ms-swift's `get_template(template_type, tokenizer)`.
pub fn get_template(template_type: &str, tokenizer: Tokenizer) -> Result<Template> {
    Template::new(template_type, tokenizer)
}

impl Template {
    /// The template registered as `template_type` (ms-swift's names and aliases).
    pub fn new(template_type: &str, tokenizer: Tokenizer) -> Result<Self> {
        let spec = find_template(template_type).ok_or_else(|| TemplateError::UnknownTemplate {
            name: template_type.to_string(),
            known: TEMPLATES
                .iter()
                .map(|t| t.name)
                .chain(TEMPLATE_ALIASES.iter().map(|(a, _)| *a))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        Ok(Self {
            spec,
            tokenizer,
            default_system: spec.default_system.map(String::from),
            max_length: None,
        })
    }

    /// Replaces the default system text (`""`: none).
    pub fn with_default_system(mut self, system: impl Into<String>) -> Result<Self> {
        let system = system.into();
        if !system.is_empty() && self.spec.system_prefix.is_none() {
            return Err(TemplateError::Conversation {
                template: self.spec.name.into(),
                message: "the template takes no system text".into(),
            });
        }
        self.default_system = (!system.is_empty()).then_some(system);
        Ok(self)
    }

    /// The pieces.
    pub fn spec(&self) -> &'static TemplateSpec {
        self.spec
    }

    /// The template type.
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The system text used when a conversation gives none.
    pub fn default_system(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// Whether history rounds are accepted.
    pub fn supports_multi_round(&self) -> bool {
        self.spec.chat_sep.is_some()
    }

    /// Whether a system text is accepted.
    pub fn supports_system(&self) -> bool {
        self.spec.system_prefix.is_some()
    }

    /// Text that ends an answer (the suffix).
    pub fn stop_words(&self) -> Vec<String> {
        vec![self.spec.suffix.to_string()]
    }

    /// [`Self::encode`] with every image as [`crate::IMAGE_SENTINEL`], whatever the template
    /// writes (llava-hf templates write the `<image>` token): the form the model expands to
    /// each image's feature rows in either checkpoint layout, as transformers' processor does.
    pub fn encode_with_sentinels(&self, conversation: &Conversation) -> Result<Encoded> {
        let mut encoded = self.encode(conversation)?;
        if let ImagePlaceholder::Token(tag) = self.spec.image_placeholder
            && let Some(id) = self.tokenizer.token_to_id(tag).map(i64::from)
        {
            for t in &mut encoded.input_ids {
                if *t == id {
                    *t = crate::IMAGE_SENTINEL;
                }
            }
        }
        Ok(encoded)
    }

    /// Token ids (and labels when the last round has a response). Errors name the round
    /// or the limit that does not fit.
    pub fn encode(&self, conversation: &Conversation) -> Result<Encoded> {
        let encoded = encode(
            self.spec,
            self.default_system.as_deref(),
            &self.tokenizer,
            conversation,
        )?;
        if let Some(max_length) = self.max_length
            && encoded.input_ids.len() > max_length
        {
            return Err(TemplateError::TooLong {
                len: encoded.input_ids.len(),
                max_length,
            });
        }
        Ok(encoded)
    }
}
