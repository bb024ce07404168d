//! Token ids → text deltas while generating: never half a UTF-8 character, never a stop word
//! or any part of one (spec README decision 8).
//!
//! Decoding re-reads only a short window of ids (text-generation-inference's prefix/read
//! offsets), so a step costs the same at token 10 and token 2000; a window whose text ends in
//! U+FFFD is an incomplete character and waits for the next token. Text that could still be
//! the start of a stop word is held back until the next token decides it.

use crate::{Result, Tokenizer};

/// What one token added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStep {
    /// Text that became final with this token (may be empty).
    pub delta: String,
    /// A stop word was reached: the response ends before it, and generation should stop.
    pub stopped: bool,
}

/// Incremental detokenizer with stop words.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    stop_words: Vec<String>,
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
    /// Complete characters decoded so far (stop word cut off once found).
    text: String,
    /// Bytes of `text` handed out.
    emitted: usize,
    stopped: bool,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder that ends the response at the first of `stop_words` (empty ones are ignored).
    pub fn new(tokenizer: &'t Tokenizer, stop_words: &[String]) -> Self {
        Self {
            tokenizer,
            stop_words: stop_words
                .iter()
                .filter(|w| !w.is_empty())
                .cloned()
                .collect(),
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds one generated id.
    pub fn push(&mut self, id: u32) -> Result<StreamStep> {
        if self.stopped {
            return Ok(StreamStep {
                delta: String::new(),
                stopped: true,
            });
        }
        self.ids.push(id);
        let before = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..self.read_offset], false)?;
        let after = self
            .tokenizer
            .decode(&self.ids[self.prefix_offset..], false)?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            match after.strip_prefix(before.as_str()) {
                Some(new) => self.text.push_str(new),
                // The window re-decoded differently (rare normalisation effects): fall back
                // to the whole sequence.
                None => self.resync()?,
            }
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
        }
        Ok(self.release(false))
    }

    /// Ends the stream: the held-back text (an incomplete stop word, a trailing incomplete
    /// character as the tokenizer renders it) is released.
    pub fn finish(&mut self) -> Result<StreamStep> {
        if !self.stopped && self.read_offset < self.ids.len() {
            let before = self
                .tokenizer
                .decode(&self.ids[self.prefix_offset..self.read_offset], false)?;
            let after = self
                .tokenizer
                .decode(&self.ids[self.prefix_offset..], false)?;
            match after.strip_prefix(before.as_str()) {
                Some(new) => self.text.push_str(new),
                None => self.resync()?,
            }
            self.read_offset = self.ids.len();
        }
        Ok(self.release(true))
    }

    /// The response so far: everything handed out.
    pub fn text(&self) -> &str {
        &self.text[..self.emitted]
    }

    /// Ids pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Whether a stop word ended the response.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    fn resync(&mut self) -> Result<()> {
        let full = self.tokenizer.decode(&self.ids, false)?;
        // Keep what was already handed out; take the rest from the full decode.
        let keep = &self.text[..self.emitted];
        self.text = match full.strip_prefix(keep) {
            Some(rest) => format!("{keep}{rest}"),
            None => full,
        };
        self.emitted = self.emitted.min(self.text.len());
        Ok(())
    }

    fn release(&mut self, last: bool) -> StreamStep {
        if !self.stopped
            && let Some(at) = self.first_stop()
        {
            self.text.truncate(at);
            self.stopped = true;
        }
        let end = if self.stopped || last {
            self.text.len()
        } else {
            self.text.len() - self.held_back()
        };
        let delta = self.text[self.emitted..end].to_string();
        self.emitted = end;
        StreamStep {
            delta,
            stopped: self.stopped,
        }
    }

    /// Byte offset of the earliest stop word in the text not yet handed out (a stop word may
    /// begin in held-back text only, since handed-out text never starts one).
    fn first_stop(&self) -> Option<usize> {
        let from = self.emitted;
        self.stop_words
            .iter()
            .filter_map(|w| self.text[from..].find(w.as_str()).map(|i| from + i))
            .min()
    }

    /// Bytes at the end of the text that are a proper prefix of some stop word.
    fn held_back(&self) -> usize {
        let pending = &self.text[self.emitted..];
        let mut longest = 0;
        for word in &self.stop_words {
            for (i, _) in word.char_indices().skip(1) {
                if i > longest && pending.ends_with(&word[..i]) {
                    longest = i;
                }
            }
        }
        longest
    }
}
