//! The checkpoint's tokenizer: `tokenizer.json` (the `tokenizers` crate, the same code as
//! transformers' fast tokenizers) plus the special-token names of `tokenizer_config.json`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Result, TemplateError, convert};

/// A tokenizer with its special tokens by role.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: PathBuf,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    model_max_length: Option<usize>,
}

impl Tokenizer {
    /// Reads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` and
    /// `dir/special_tokens_map.json` (for the names of BOS, EOS and PAD). A directory without
    /// `tokenizer.json` may hold a slow tokenizer's files instead: SentencePiece's
    /// `tokenizer.model`, or Qwen2's `vocab.json` + `merges.txt`; they are converted as
    /// transformers converts them.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let fast = dir.join("tokenizer.json");
        let mut tokenizer = if fast.is_file() {
            Self::from_file(&fast)?
        } else {
            let config_path = dir.join("tokenizer_config.json");
            let config: Value = if config_path.is_file() {
                let text =
                    std::fs::read_to_string(&config_path).map_err(|source| TemplateError::Io {
                        path: config_path.clone(),
                        source,
                    })?;
                serde_json::from_str(&text).map_err(|e| TemplateError::TokenizerFile {
                    path: config_path.clone(),
                    message: e.to_string(),
                })?
            } else {
                Value::Null
            };
            let (sp, vocab, merges) = (
                dir.join("tokenizer.model"),
                dir.join("vocab.json"),
                dir.join("merges.txt"),
            );
            let (text, origin) = if sp.is_file() {
                (convert::sentencepiece_json(&sp, &config)?, sp)
            } else if vocab.is_file() && merges.is_file() {
                (convert::qwen2_json(&vocab, &merges, &config)?, vocab)
            } else {
                return Err(TemplateError::TokenizerFile {
                    path: dir.to_path_buf(),
                    message: "no tokenizer: expected tokenizer.json, tokenizer.model, or \
                              vocab.json with merges.txt"
                        .into(),
                });
            };
            Self::from_bytes(text.as_bytes(), &origin)?
        };
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            let path = dir.join(name);
            if path.is_file() {
                tokenizer.read_config(&path)?;
            }
        }
        Ok(tokenizer)
    }

    /// Reads one `tokenizer.json`; special-token roles stay unset.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TemplateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// A tokenizer from `tokenizer.json` text; `origin` names it in errors.
    fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| TemplateError::TokenizerFile {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self {
            inner,
            origin: origin.to_path_buf(),
            bos_token: None,
            eos_token: None,
            pad_token: None,
            model_max_length: None,
        })
    }

    fn read_config(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| TemplateError::TokenizerFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        // A token is a string or an AddedToken object `{"content": ...}`.
        let token = |key: &str| match value.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(String::from),
            _ => None,
        };
        self.bos_token = token("bos_token").or(self.bos_token.take());
        self.eos_token = token("eos_token").or(self.eos_token.take());
        self.pad_token = token("pad_token").or(self.pad_token.take());
        // transformers writes 1e30-ish values for "no limit".
        if let Some(n) = value.get("model_max_length").and_then(Value::as_f64)
            && n > 0.0
            && n < 1e9
        {
            self.model_max_length = Some(n as usize);
        }
        Ok(())
    }

    /// Tokens of one template segment, without the tokenizer's own special tokens (BOS is
    /// written by the template where it belongs); special-token strings inside the text are
    /// recognised as single ids.
    pub fn encode_segment(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TemplateError::Tokenizer(format!("encoding {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`; special tokens are kept unless `skip_special_tokens`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TemplateError::Tokenizer(format!("decoding {} ids: {e}", ids.len())))
    }

    /// The id of a token string (special or not).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Entries of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The end-of-sequence token, as `tokenizer_config.json` names it.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Its id.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// Replaces the end-of-sequence token (ms-swift does this per model type, e.g. Yi's
    /// `<|im_end|>`). Errors if the vocabulary lacks it.
    pub fn set_eos_token(&mut self, token: &str) -> Result<()> {
        if self.token_to_id(token).is_none() {
            return Err(TemplateError::TokenizerFile {
                path: self.origin.clone(),
                message: format!("eos token {token:?} is not in the vocabulary"),
            });
        }
        self.eos_token = Some(token.to_string());
        Ok(())
    }

    /// The beginning-of-sequence token.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The padding id; ms-swift falls back to EOS when the tokenizer has no pad token.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
            .or_else(|| self.eos_token_id())
    }

    /// `model_max_length` of `tokenizer_config.json`, when it states a real limit.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    /// Where the tokenizer was read from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
