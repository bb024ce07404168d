//! The demo model's tokenizer: byte-level BPE (every byte is a token of the alphabet, so any
//! prompt tokenizes) trained with the `tokenizers` crate on the questions, answers and
//! captions the scenes produce and the Mistral template's words, with `<unk> <s> </s> <pad>` as
//! ids 0–3 and `<image>` as the last id, as the llava-hf layout wants. Digits are split one per
//! token before BPE (as Llama's tokenizer does): "47" is read glyph by glyph as `4 7`, ten
//! classes shared by every number and sum, instead of 90 number tokens each with and without a
//! leading space.

use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::questions::{ask, families};
use crate::scene::{Kind, Scene, stream};

/// Special tokens, in id order from 0.
pub const SPECIAL: [&str; 4] = ["<unk>", "<s>", "</s>", "<pad>"];
/// The image token (the last id).
pub const IMAGE_TOKEN: &str = "<image>";

/// Errors of training.
#[derive(Debug, thiserror::Error)]
#[error("training the tokenizer: {0}")]
pub struct TokenizerError(String);

/// The text the tokenizer learns from: `scenes` scenes' questions (every family) with answers,
/// their captions, and the template's words.
pub fn corpus(seed: u64, scenes: u64) -> Vec<String> {
    let kinds = [
        Kind::Objects,
        Kind::Objects,
        Kind::Digit,
        Kind::Number,
        Kind::Sum,
    ];
    let mut out = Vec::new();
    for i in 0..scenes {
        let mut rng = stream(seed, i);
        let scene = Scene::sample(&mut rng, kinds[i as usize % kinds.len()]);
        for family in families(&scene) {
            if let Some(qa) = ask(&scene, family, &mut rng) {
                out.push(format!("[INST] {} [/INST]{}", qa.question, qa.answer));
            }
        }
    }
    out
}

/// Digits one per piece, then GPT-2's byte-level split (no prefix space).
pub fn pre_tokenizer() -> Sequence {
    Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::default().add_prefix_space(false).into(),
    ])
}

/// A tokenizer of at most `vocab_size` ids (`<image>` included) trained on `corpus`: fewer
/// when every word of the corpus is one token before that; its `tokenizer.json` text comes
/// from [`Tokenizer::to_string`].
pub fn train(corpus: &[String], vocab_size: usize) -> Result<Tokenizer, TokenizerError> {
    let err = |e: tokenizers::Error| TokenizerError(e.to_string());
    let mut trainer: tokenizers::models::TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size - 1)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(SPECIAL.iter().map(|s| AddedToken::from(*s, true)).collect())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer()));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.train(&mut trainer, corpus.iter()).map_err(err)?;
    tokenizer.add_special_tokens(&[AddedToken::from(IMAGE_TOKEN, true)]);
    let bos = tokenizer
        .token_to_id("<s>")
        .ok_or_else(|| TokenizerError("no <s>".into()))?;
    let post = TemplateProcessing::builder()
        .try_single("<s> $A")
        .map_err(|e| TokenizerError(e.to_string()))?
        .try_pair("<s> $A <s> $B")
        .map_err(|e| TokenizerError(e.to_string()))?
        .special_tokens(vec![("<s>", bos)])
        .build()
        .map_err(|e| TokenizerError(e.to_string()))?;
    tokenizer.with_post_processor(Some(post));
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_where_the_model_expects_them_and_any_text_round_trips() {
        let tokenizer = train(&corpus(1, 3000), 448).unwrap();
        for (id, token) in SPECIAL.iter().enumerate() {
            assert_eq!(tokenizer.token_to_id(token), Some(id as u32));
        }
        assert_eq!(tokenizer.token_to_id(IMAGE_TOKEN), Some(447));
        assert_eq!(tokenizer.get_vocab_size(true), 448);
        // A vocabulary larger than the corpus has words for stops at the words.
        let all = train(&corpus(1, 3000), 4096).unwrap();
        let n = all.get_vocab_size(true) as u32;
        assert!(n < 4096);
        assert_eq!(all.token_to_id(IMAGE_TOKEN), Some(n - 1));
        // Words of the corpus are few tokens; anything else still tokenizes, byte by byte.
        let circle = tokenizer.encode(" circle", false).unwrap();
        assert!(circle.get_ids().len() <= 2, "{:?}", circle.get_tokens());
        // Numbers are one token per digit; no token of the vocabulary holds two digits.
        for (text, pieces) in [("47", vec!["4", "7"]), ("The number 47.", vec!["4", "7"])] {
            let tokens = tokenizer.encode(text, false).unwrap().get_tokens().to_vec();
            let digits: Vec<&str> = tokens
                .iter()
                .map(String::as_str)
                .filter(|t| t.chars().any(|c| c.is_ascii_digit()))
                .collect();
            assert_eq!(digits, pieces, "{tokens:?}");
        }
        assert!(
            all.get_vocab(true)
                .keys()
                .all(|t| t.chars().filter(|c| c.is_ascii_digit()).count() <= 1)
        );
        for text in [
            "How many circles are there?",
            "Ünïcode ✓ 猫 \u{7}",
            "12+7=19",
        ] {
            let ids = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
            assert!(ids.iter().all(|&i| i > 3 && i < 447));
            assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        }
    }
}
