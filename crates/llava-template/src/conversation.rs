//! What a template renders: an optional system text and rounds of query, response and images.

/// One round of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// The user's text. `<image>` tags in it place this round's images; without tags the
    /// images go before the text (ms-swift's default tags).
    pub query: String,
    /// The assistant's answer: always set on history rounds; on the last round only when
    /// training (it is then what the labels keep).
    pub response: Option<String>,
    /// How many images this round carries.
    pub images: usize,
}

impl Round {
    /// A round with a query and its images, no response yet.
    pub fn query(query: impl Into<String>, images: usize) -> Self {
        Self {
            query: query.into(),
            response: None,
            images,
        }
    }

    /// A finished round.
    pub fn answered(query: impl Into<String>, response: impl Into<String>, images: usize) -> Self {
        Self {
            query: query.into(),
            response: Some(response.into()),
            images,
        }
    }
}

/// A conversation to encode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// `None`: the template's default system; `Some("")`: no system; otherwise this text.
    pub system: Option<String>,
    /// History rounds, then the current one.
    pub rounds: Vec<Round>,
}

/// The image tag of queries (as in ms-swift and LLaVA).
pub const IMAGE_TAG: &str = "<image>";
