//! The streaming detokenizer: deltas never hold half a UTF-8 character or any part of a stop
//! word, and they add up to the full decode cut at the first stop word.

use llava_template::{StreamDecoder, Tokenizer};

fn tokenizer(family: &str) -> Tokenizer {
    Tokenizer::from_dir(llava_testutil::fixture("templates").join(family)).unwrap()
}

/// Pushes every id and collects the deltas (finish included).
fn run(tok: &Tokenizer, ids: &[u32], stops: &[&str]) -> (Vec<String>, bool) {
    let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
    let mut dec = StreamDecoder::new(tok, &stops);
    let mut deltas = Vec::new();
    for &id in ids {
        let step = dec.push(id).unwrap();
        deltas.push(step.delta);
        if step.stopped {
            return (deltas, true);
        }
    }
    deltas.push(dec.finish().unwrap().delta);
    assert_eq!(dec.text(), deltas.concat());
    (deltas, false)
}

#[test]
fn byte_level_pieces_never_split_a_character() {
    let tok = tokenizer("qwen");
    let text = "Tokyo is 東京, a smile is 😀, and café is naïve.";
    let ids = tok.encode_segment(text).unwrap();
    // The fixture BPE splits these characters into byte pieces: the test means something.
    let pieces: Vec<String> = ids
        .iter()
        .map(|&i| tok.decode(&[i], false).unwrap())
        .collect();
    assert!(
        pieces.iter().any(|p| p.contains('\u{FFFD}')),
        "no token splits a character: {pieces:?}"
    );
    let (deltas, stopped) = run(&tok, &ids, &[]);
    assert!(!stopped);
    for d in &deltas {
        assert!(!d.contains('\u{FFFD}'), "half a character in {d:?}");
    }
    assert_eq!(deltas.concat(), text);
    assert!(deltas.iter().filter(|d| !d.is_empty()).count() > 10);
}

#[test]
fn sentencepiece_spaces_survive_the_window() {
    let tok = tokenizer("mistral");
    let text = "The image shows 東京 at night.\nSecond line: 😀 done";
    let ids = tok.encode_segment(text).unwrap();
    let (deltas, _) = run(&tok, &ids, &[]);
    assert_eq!(deltas.concat(), tok.decode(&ids, false).unwrap());
    for d in &deltas {
        assert!(!d.contains('\u{FFFD}'), "{d:?}");
    }
}

#[test]
fn stop_words_are_held_back_and_cut() {
    let tok = tokenizer("qwen");
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    let mut ids = tok.encode_segment("A cat sat. STOP here").unwrap();
    ids.push(im_end);
    // A textual stop word spread over several byte pieces: nothing of it is ever emitted.
    let (deltas, stopped) = run(&tok, &ids, &["<|im_end|>", "STOP"]);
    assert!(stopped);
    assert_eq!(deltas.concat(), "A cat sat. ");
    for d in &deltas {
        assert!(
            !d.contains('S'),
            "part of the stop word was emitted: {deltas:?}"
        );
    }
    // The special-token stop word alone.
    let (deltas, stopped) = run(&tok, &ids, &["<|im_end|>"]);
    assert!(stopped);
    assert_eq!(deltas.concat(), "A cat sat. STOP here");
}

#[test]
fn a_held_prefix_that_is_not_a_stop_word_is_released() {
    let tok = tokenizer("qwen");
    let ids = tok.encode_segment("a <| b").unwrap();
    let (deltas, stopped) = run(&tok, &ids, &["<|im_end|>"]);
    assert!(!stopped);
    assert_eq!(deltas.concat(), "a <| b");
    // While "<|" is pending it is not shown.
    let mut shown = String::new();
    let stops = vec!["<|im_end|>".to_string()];
    let mut dec = StreamDecoder::new(&tok, &stops);
    let prefix_ids = tok.encode_segment("a <|").unwrap();
    for &id in &prefix_ids {
        shown.push_str(&dec.push(id).unwrap().delta);
    }
    assert_eq!(shown, "a ");
    assert_eq!(dec.finish().unwrap().delta, "<|");
}
