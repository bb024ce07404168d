//! A `tokenizers` tokenizer from the files a slow tokenizer saves, for checkpoints without
//! `tokenizer.json` (LLaVA trained with `use_fast=False`, so original checkpoints may ship only
//! these): SentencePiece `tokenizer.model` (Mistral, Yi, Llama 2) and Qwen2's `vocab.json` +
//! `merges.txt`. Built as transformers' `LlamaTokenizer` / `Qwen2Tokenizer` build them, then
//! loaded from the equivalent `tokenizer.json` text.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::{Result, TemplateError};

/// Qwen2's pre-tokenizer split (transformers `PRETOKENIZE_REGEX`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn file_error(path: &Path, message: impl Into<String>) -> TemplateError {
    TemplateError::TokenizerFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Added tokens of `tokenizer_config.json` (`added_tokens_decoder`) and `added_tokens.json`.
fn added_tokens(config: &Value, dir: &Path) -> Result<Vec<(u32, String, bool)>> {
    let mut out = Vec::new();
    if let Some(map) = config
        .get("added_tokens_decoder")
        .and_then(Value::as_object)
    {
        for (id, token) in map {
            let id: u32 = id.parse().map_err(|_| {
                file_error(
                    &dir.join("tokenizer_config.json"),
                    format!("added token id {id:?}"),
                )
            })?;
            let content = token
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let special = token
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            out.push((id, content.to_string(), special));
        }
    }
    let extra = dir.join("added_tokens.json");
    if extra.is_file() {
        let value: Value = serde_json::from_slice(&read(&extra)?)
            .map_err(|e| file_error(&extra, e.to_string()))?;
        for (content, id) in value.as_object().into_iter().flatten() {
            if let Some(id) = id.as_u64()
                && !out.iter().any(|(_, c, _)| c == content)
            {
                out.push((id as u32, content.clone(), true));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn added_json(tokens: &[(u32, String, bool)]) -> Vec<Value> {
    tokens
        .iter()
        .map(|(id, content, special)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": special})
        })
        .collect()
}

// ---- SentencePiece ----------------------------------------------------------------------

/// The parts of sentencepiece's `ModelProto` a tokenizer needs.
struct SpModel {
    /// (piece, score, type): type 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte.
    pieces: Vec<(String, f32, u64)>,
    /// 1 unigram, 2 BPE.
    model_type: u64,
    unk_id: u64,
    add_dummy_prefix: bool,
}

/// Protobuf wire reader: just varints, fixed 32/64-bit and length-delimited fields.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// The next (field number, value); `None` at the end; `Some(Err)` on malformed input.
    fn next_field(&mut self) -> Option<std::result::Result<(u64, Field<'a>), ()>> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Field::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Field::Other
                }
                2 => {
                    let n = usize::try_from(self.varint()?).ok()?;
                    Field::Bytes(self.take(n)?)
                }
                5 => Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().ok()?)),
                _ => return None,
            };
            Some((key >> 3, value))
        })();
        Some(field.ok_or(()))
    }
}

fn fields(bytes: &[u8]) -> Wire<'_> {
    Wire { bytes, at: 0 }
}

fn parse_sp(bytes: &[u8]) -> Option<SpModel> {
    let mut model = SpModel {
        pieces: Vec::new(),
        model_type: 1,
        unk_id: 0,
        add_dummy_prefix: true,
    };
    let mut wire = fields(bytes);
    while let Some(field) = wire.next_field() {
        match field.ok()? {
            (1, Field::Bytes(piece)) => {
                let (mut text, mut score, mut kind) = (String::new(), 0.0, 1);
                let mut w = fields(piece);
                while let Some(f) = w.next_field() {
                    match f.ok()? {
                        (1, Field::Bytes(s)) => text = String::from_utf8(s.to_vec()).ok()?,
                        (2, Field::Fixed32(v)) => score = f32::from_bits(v),
                        (3, Field::Varint(v)) => kind = v,
                        _ => {}
                    }
                }
                model.pieces.push((text, score, kind));
            }
            (2, Field::Bytes(spec)) => {
                let mut w = fields(spec);
                while let Some(f) = w.next_field() {
                    match f.ok()? {
                        (3, Field::Varint(v)) => model.model_type = v,
                        (40, Field::Varint(v)) => model.unk_id = v,
                        _ => {}
                    }
                }
            }
            (3, Field::Bytes(spec)) => {
                let mut w = fields(spec);
                while let Some(f) = w.next_field() {
                    if let (3, Field::Varint(v)) = f.ok()? {
                        model.add_dummy_prefix = v != 0;
                    }
                }
            }
            _ => {}
        }
    }
    (!model.pieces.is_empty()).then_some(model)
}

/// transformers' `generate_merges` without scores: every split of a piece into two pieces of
/// the vocabulary, ordered by the merged piece's id, then the left part's length.
fn sp_merges(vocab: &HashMap<&str, usize>, pieces: &[(String, f32, u64)]) -> Vec<[String; 2]> {
    let mut merges: Vec<(usize, usize, usize, [String; 2])> = Vec::new();
    for (id, (piece, _, _)) in pieces.iter().enumerate() {
        let chars: Vec<(usize, char)> = piece.char_indices().collect();
        for &(at, _) in chars.iter().skip(1) {
            let (l, r) = piece.split_at(at);
            if vocab.contains_key(l) && vocab.contains_key(r) {
                let (ll, rl) = (l.chars().count(), r.chars().count());
                merges.push((id, ll, rl, [l.to_string(), r.to_string()]));
            }
        }
    }
    merges.sort_by_key(|m| (m.0, m.1, m.2));
    merges.into_iter().map(|m| m.3).collect()
}

/// `tokenizer.json` text equivalent to transformers' `LlamaTokenizer` built from `model`.
pub(crate) fn sentencepiece_json(model_path: &Path, config: &Value) -> Result<String> {
    let dir = model_path.parent().unwrap_or(Path::new("."));
    let sp = parse_sp(&read(model_path)?).ok_or_else(|| {
        file_error(
            model_path,
            "not a SentencePiece model (protobuf parse failed)",
        )
    })?;
    let legacy = config
        .get("legacy")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let add_prefix_space = config
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(sp.add_dummy_prefix);
    let prepend = match (add_prefix_space, legacy) {
        (false, _) => "never",
        (true, true) => "always",
        (true, false) => "first",
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_prefix_space {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    // Control and unknown pieces are special; user-defined ones are added but not special.
    let mut added: Vec<(u32, String, bool)> = sp
        .pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.2, 2..=4))
        .map(|(i, p)| (i as u32, p.0.clone(), p.2 != 4))
        .collect();
    for token in added_tokens(config, dir)? {
        if !added.iter().any(|(id, _, _)| *id == token.0) {
            added.push(token);
        }
    }
    let model = match sp.model_type {
        2 => {
            let vocab: HashMap<&str, usize> = sp
                .pieces
                .iter()
                .enumerate()
                .map(|(i, p)| (p.0.as_str(), i))
                .collect();
            let merges = sp_merges(&vocab, &sp.pieces);
            let vocab_json: serde_json::Map<String, Value> = sp
                .pieces
                .iter()
                .enumerate()
                .map(|(i, p)| (p.0.clone(), json!(i)))
                .collect();
            json!({"type": "BPE", "dropout": null, "unk_token": null,
                   "continuing_subword_prefix": null, "end_of_word_suffix": null,
                   "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                   "vocab": vocab_json, "merges": merges})
        }
        1 => json!({"type": "Unigram", "unk_id": sp.unk_id, "byte_fallback": true,
                    "vocab": sp.pieces.iter().map(|p| json!([p.0, p.1])).collect::<Vec<_>>()}),
        other => {
            return Err(file_error(
                model_path,
                format!("SentencePiece model type {other} (only unigram and BPE are supported)"),
            ));
        }
    };
    Ok(json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added_json(&added),
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": prepend,
                          "split": false},
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": model,
    })
    .to_string())
}

// ---- vocab.json + merges.txt ------------------------------------------------------------

/// `tokenizer.json` text equivalent to transformers' `Qwen2Tokenizer` built from these files.
pub(crate) fn qwen2_json(vocab_path: &Path, merges_path: &Path, config: &Value) -> Result<String> {
    let dir = vocab_path.parent().unwrap_or(Path::new("."));
    let class = config
        .get("tokenizer_class")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !class.starts_with("Qwen2Tokenizer") {
        return Err(file_error(
            &dir.join("tokenizer_config.json"),
            format!(
                "tokenizer_class {class:?} with vocab.json + merges.txt and no tokenizer.json: \
                 only Qwen2Tokenizer is converted; save the tokenizer with a fast tokenizer"
            ),
        ));
    }
    let vocab: Value = serde_json::from_slice(&read(vocab_path)?)
        .map_err(|e| file_error(vocab_path, e.to_string()))?;
    let text = String::from_utf8(read(merges_path)?)
        .map_err(|e| file_error(merges_path, e.to_string()))?;
    let merges: Vec<[&str; 2]> = text
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(|l| {
            l.split_once(' ')
                .map(|(a, b)| [a, b])
                .ok_or_else(|| file_error(merges_path, format!("merge line {l:?}")))
        })
        .collect::<Result<_>>()?;
    let add_prefix_space = config
        .get("add_prefix_space")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let added = added_tokens(config, dir)?;
    Ok(json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added_json(&added),
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated",
             "invert": false},
            {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": true,
             "use_regex": false},
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false,
                  "byte_fallback": false, "ignore_merges": false, "vocab": vocab,
                  "merges": merges},
    })
    .to_string())
}
