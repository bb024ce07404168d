//! Every template against `fixtures/templates/cases.json` (scripts/fixtures/
//! make_template_fixtures.py: ms-swift's encode with transformers' tokenizers): token ids and
//! labels identical, for conversations with and without system, with history, several images,
//! explicit image tags and training responses; real Mistral tokenizer for the Mistral templates,
//! both as legacy llava checkpoints ship it and with Metaspace's `prepend_scheme: "first"`.

use std::path::PathBuf;

use llava_template::{Conversation, Round, Template, TemplateError, Tokenizer, get_template};
use serde_json::Value;

fn root() -> PathBuf {
    llava_testutil::fixture("templates")
}

fn tokenizer(family: &str) -> Tokenizer {
    Tokenizer::from_dir(root().join(family)).unwrap()
}

fn conversation(case: &Value) -> Conversation {
    Conversation {
        system: case["system"].as_str().map(String::from),
        rounds: case["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Round {
                query: r["query"].as_str().unwrap().into(),
                response: r["response"].as_str().map(String::from),
                images: r["images"].as_u64().unwrap() as usize,
            })
            .collect(),
    }
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn every_template_matches_transformers_tokenisation() {
    let text = std::fs::read_to_string(root().join("cases.json")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let families = ["mistral", "mistral-first", "yi", "llama3", "qwen"];
    let toks: Vec<(&str, Tokenizer)> = families.iter().map(|f| (*f, tokenizer(f))).collect();
    let mut templates_seen = std::collections::BTreeSet::new();
    for case in &cases {
        let name = case["template"].as_str().unwrap();
        let family = case["tokenizer"].as_str().unwrap();
        let tok = toks.iter().find(|(f, _)| *f == family).unwrap().1.clone();
        let template = get_template(name, tok).unwrap();
        let encoded = template.encode(&conversation(case)).unwrap();
        let what = format!("{name} / {}", case["case"]);
        assert_eq!(encoded.input_ids, ints(&case["input_ids"]), "{what}: ids");
        match &case["labels"] {
            Value::Null => assert_eq!(encoded.labels, None, "{what}"),
            labels => assert_eq!(encoded.labels, Some(ints(labels)), "{what}: labels"),
        }
        let images: u64 = case["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["images"].as_u64().unwrap())
            .sum();
        assert_eq!(encoded.images as u64, images, "{what}");
        templates_seen.insert(name.to_string());
    }
    assert_eq!(templates_seen.len(), llava_template::TEMPLATES.len());
}

/// With a `prepend_scheme: "first"` tokenizer the BOS is written by id, so `[INST]` after it
/// is tokenized from offset 0 as transformers' processor does (`▁[`, 733; a literal `<s>` in the
/// text gave `[`, 28792); the legacy tokenizer gives the same ids as before.
#[test]
fn mistral_bos_is_a_token_id_for_both_tokenizer_conventions() {
    for family in ["mistral", "mistral-first"] {
        let template = get_template("llava-mistral-instruct", tokenizer(family)).unwrap();
        let encoded = template
            .encode(&Conversation {
                system: None,
                rounds: vec![Round {
                    query: "Hi".into(),
                    response: None,
                    images: 0,
                }],
            })
            .unwrap();
        assert_eq!(encoded.input_ids[..4], [1, 733, 16289, 28793], "{family}");
    }
}

#[test]
fn a_system_text_on_mistral_is_refused() {
    let template = Template::new("llava-mistral-instruct", tokenizer("mistral")).unwrap();
    let err = template
        .encode(&Conversation {
            system: Some("Be brief.".into()),
            rounds: vec![Round::query("Hi", 0)],
        })
        .unwrap_err();
    assert!(
        matches!(err, TemplateError::Conversation { ref message, .. } if message.contains("system")),
        "{err}"
    );
}

#[test]
fn image_tags_must_match_the_images() {
    let template = Template::new("llava-qwen-instruct", tokenizer("qwen")).unwrap();
    let err = template
        .encode(&Conversation {
            system: None,
            rounds: vec![Round::query("<image> and <image>", 1)],
        })
        .unwrap_err();
    assert!(err.to_string().contains("round 0"), "{err}");
    assert!(err.to_string().contains("2 <image> tag(s)"), "{err}");
}

#[test]
fn history_needs_responses_and_unknown_templates_are_named() {
    let template = Template::new("llava-qwen", tokenizer("qwen")).unwrap();
    assert_eq!(template.name(), "llava-qwen-instruct");
    let err = template
        .encode(&Conversation {
            system: None,
            rounds: vec![Round::query("a", 0), Round::query("b", 0)],
        })
        .unwrap_err();
    assert!(err.to_string().contains("history round 0"), "{err}");
    let err = Template::new("llava-nope", tokenizer("qwen")).unwrap_err();
    assert!(err.to_string().contains("llava-nope"), "{err}");
    assert!(err.to_string().contains("llava-qwen-instruct"), "{err}");
}

#[test]
fn max_length_counts_an_image_as_one_token() {
    let mut template = Template::new("llava-mistral-instruct", tokenizer("mistral")).unwrap();
    let conv = Conversation {
        system: None,
        rounds: vec![Round::query("What is shown in this image?", 1)],
    };
    let len = template.encode(&conv).unwrap().input_ids.len();
    assert_eq!(len, 19);
    template.max_length = Some(len);
    assert!(template.encode(&conv).is_ok());
    template.max_length = Some(len - 1);
    let err = template.encode(&conv).unwrap_err();
    assert!(
        matches!(
            err,
            TemplateError::TooLong {
                len: 19,
                max_length: 18
            }
        ),
        "{err}"
    );
}

#[test]
fn special_tokens_come_from_tokenizer_config() {
    let mistral = tokenizer("mistral");
    assert_eq!(mistral.eos_token_id(), Some(2));
    assert_eq!(mistral.token_to_id("<image>"), Some(32000));
    assert_eq!(mistral.model_max_length(), Some(32768));
    let mut yi = tokenizer("yi");
    assert_eq!(yi.eos_token(), Some("<|im_end|>"));
    yi.set_eos_token("<|endoftext|>").unwrap();
    assert_eq!(yi.eos_token_id(), yi.token_to_id("<|endoftext|>"));
    assert!(yi.set_eos_token("<|nope|>").is_err());
    let qwen = tokenizer("qwen");
    assert_eq!(qwen.pad_token_id(), qwen.token_to_id("<|endoftext|>"));
}

/// Slow-tokenizer files converted here give transformers' ids and decodes: Mistral's real
/// SentencePiece `tokenizer.model` (+ `<image>` from `added_tokens_decoder`) and Qwen2-style
/// `vocab.json` + `merges.txt` (scripts/fixtures/make_template_fixtures.py, `conversions.json`).
#[test]
fn slow_tokenizer_files_convert_like_transformers() {
    let text = std::fs::read_to_string(root().join("conversions.json")).unwrap();
    let refs: Value = serde_json::from_str(&text).unwrap();
    for name in ["mistral-sp", "qwen-vocab"] {
        let dir = root().join(name);
        assert!(!dir.join("tokenizer.json").exists());
        let tok = Tokenizer::from_dir(&dir).unwrap();
        let r = &refs[name];
        assert_eq!(
            tok.vocab_size() as u64,
            r["vocab_size"].as_u64().unwrap(),
            "{name}"
        );
        for case in r["cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let ids: Vec<i64> = tok
                .encode_segment(text)
                .unwrap()
                .into_iter()
                .map(i64::from)
                .collect();
            assert_eq!(ids, ints(&case["ids"]), "{name}: {text:?}");
            let as_u32: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
            assert_eq!(
                tok.decode(&as_u32, false).unwrap(),
                case["decoded"].as_str().unwrap(),
                "{name}: {text:?}"
            );
        }
    }
    // The converted Mistral tokenizer renders the Mistral templates exactly as the fast one.
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(root().join("cases.json")).unwrap()).unwrap();
    let sp = Tokenizer::from_dir(root().join("mistral-sp")).unwrap();
    assert_eq!(sp.eos_token_id(), Some(2));
    for case in cases.iter().filter(|c| c["tokenizer"] == "mistral") {
        let template = get_template(case["template"].as_str().unwrap(), sp.clone()).unwrap();
        let encoded = template.encode(&conversation(case)).unwrap();
        assert_eq!(
            encoded.input_ids,
            ints(&case["input_ids"]),
            "{}",
            case["case"]
        );
    }
    let err = Tokenizer::from_dir(root()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.model"), "{err}");
}
