//! `get_model_tokenizer` + `get_template` + `inference` / `inference_stream` on the tiny LLaVA
//! fixtures against transformers (scripts/fixtures/make_inference_fixtures.py): for each
//! registered model type a fixture stands for, one image, text only, and two rounds with an
//! image each — the greedy response text, the generated ids, the prompt's token count and
//! each image's token count are identical; the streamed deltas add up to the same text.

use std::path::{Path, PathBuf};

use llava::{
    GenerationConfig, InferArgs, LlavaError, Model, ModelKwargs, Template, Turn,
    get_default_template_type, get_model_tokenizer, get_template, inference_stream,
    inference_with_info,
};
use llava_checkpoint::Progress;
use serde_json::Value;

fn root() -> PathBuf {
    llava_testutil::fixtures()
}

fn image(name: &str) -> llava::ImageInput {
    llava::ImageInput::Path(root().join("vision/images").join(name))
}

fn load(dir: &Path, model_type: &str) -> (Model, Template) {
    let (model, tokenizer) = get_model_tokenizer(
        model_type,
        None,
        ModelKwargs {
            model_id_or_path: Some(dir.to_str().unwrap().into()),
            progress: Progress::Hidden,
            ..ModelKwargs::default()
        },
    )
    .unwrap();
    let template = get_template(get_default_template_type(model_type).unwrap(), tokenizer).unwrap();
    (model, template)
}

fn greedy(max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: Some(max_new_tokens),
        ..GenerationConfig::default()
    }
}

fn args(case: &Value) -> InferArgs {
    let names = |v: &Value| -> Vec<llava::ImageInput> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| image(n.as_str().unwrap()))
            .collect()
    };
    InferArgs {
        images: names(&case["images"]),
        history: case["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Turn {
                query: h["query"].as_str().unwrap().into(),
                response: h["response"].as_str().unwrap().into(),
                images: names(&h["images"]),
            })
            .collect(),
        system: case["system"].as_str().map(String::from),
        generation_config: Some(greedy(case["max_new_tokens"].as_u64().unwrap() as usize)),
        ..InferArgs::default()
    }
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

fn check_fixture(name: &str, layout: &str) {
    let dir = root().join("llava").join(name).join(layout);
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inference.json")).unwrap())
            .unwrap();
    let model_type = cases[0]["model_type"].as_str().unwrap();
    let (model, template) = load(&dir, model_type);
    assert_eq!(template.name(), cases[0]["template"].as_str().unwrap());
    for case in &cases {
        let what = format!("{name}/{layout}/{}", case["case"]);
        let query = case["query"].as_str().unwrap();
        let (response, history, info) =
            inference_with_info(&model, &template, query, args(case)).unwrap();
        assert_eq!(
            response,
            case["response"].as_str().unwrap(),
            "{what}: response"
        );
        let got: Vec<u64> = info.token_ids.iter().map(|&t| t as u64).collect();
        assert_eq!(got, ids(&case["token_ids"]), "{what}: ids");
        assert_eq!(
            info.prompt_tokens as u64,
            case["prompt_tokens"].as_u64().unwrap(),
            "{what}"
        );
        let counts: Vec<u64> = info.image_tokens.iter().map(|&t| t as u64).collect();
        assert_eq!(counts, ids(&case["image_tokens"]), "{what}: image tokens");
        assert_eq!(history.len(), case["history"].as_array().unwrap().len() + 1);
        assert_eq!(history.last().unwrap().response, response);
        assert_eq!(history.last().unwrap().query, query);

        if case["case"] == "one_image" {
            // Streaming: the deltas add up to the same answer; each carries the text so far.
            let mut stream = inference_stream(&model, &template, query, args(case)).unwrap();
            let mut joined = String::new();
            let mut deltas = 0;
            for delta in &mut stream {
                let delta = delta.unwrap();
                assert!(!delta.text.is_empty());
                joined.push_str(&delta.text);
                assert_eq!(delta.response, joined, "{what}");
                deltas += 1;
            }
            assert!(deltas > 3, "{what}: {deltas} deltas");
            assert_eq!(joined, response, "{what}: streamed");
            assert_eq!(stream.into_result().0, response);
        }
    }
}

#[test]
fn mistral_original_layout() {
    check_fixture("clip-mistral", "original");
}

#[test]
fn mistral_llava_hf_layout() {
    check_fixture("clip-mistral", "hf");
}

#[test]
fn qwen_original_layout() {
    check_fixture("clip-qwen2", "original");
}

#[test]
fn qwen_llava_hf_layout() {
    check_fixture("clip-qwen2", "hf");
}

#[test]
fn onevision_llava_hf_layout() {
    check_fixture("siglip-qwen2", "hf");
}

/// A stop word taken from the middle of the reference answer ends it there, in both APIs.
#[test]
fn stop_words_end_the_answer() {
    let dir = root().join("llava/clip-qwen2/hf");
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("inference.json")).unwrap())
            .unwrap();
    let case = &cases[0];
    let full = case["response"].as_str().unwrap();
    let (model, template) = load(&dir, case["model_type"].as_str().unwrap());
    // A word of the answer that is not at its start.
    let at = full.char_indices().nth(full.chars().count() / 2).unwrap().0;
    let word: String = full[at..].chars().take(3).collect();
    let cut = full.find(&word).unwrap();
    let mut a = args(case);
    a.stop_words = vec![word.clone()];
    let (response, _, info) = inference_with_info(
        &model,
        &template,
        case["query"].as_str().unwrap(),
        a.clone(),
    )
    .unwrap();
    assert_eq!(response, &full[..cut], "stop word {word:?}");
    assert!(info.token_ids.len() < ids(&case["token_ids"]).len());
    let streamed: String = inference_stream(&model, &template, case["query"].as_str().unwrap(), a)
        .unwrap()
        .map(|d| d.unwrap().text)
        .collect();
    assert_eq!(streamed, response);
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let dir = root().join("llava/clip-mistral/original");
    let (mut model, template) = load(&dir, "llava1d6-mistral-7b-instruct");
    assert_eq!(model.max_model_len, 4096); // tokenizer_model_max_length of the config
    model.max_model_len = 100;
    let args = InferArgs {
        images: vec![image("coco_640x480.png")],
        generation_config: Some(greedy(4)),
        ..InferArgs::default()
    };
    let err = llava::inference(&model, &template, "Describe it.", args).unwrap_err();
    assert!(
        matches!(err, LlavaError::PromptTooLong { context: 100, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("100 tokens"), "{err}");
    // max_new_tokens is clipped to what the context leaves.
    model.max_model_len = 25;
    let args = InferArgs {
        generation_config: Some(greedy(50)),
        ..InferArgs::default()
    };
    let (_, _, info) = inference_with_info(&model, &template, "Hi", args).unwrap();
    assert_eq!(info.prompt_tokens + info.token_ids.len(), 25, "{info:?}");
}

#[test]
fn bad_images_and_model_types_are_named() {
    let dir = root().join("llava/clip-mistral/original");
    let (model, template) = load(&dir, "llava1_6-mistral-7b-instruct");
    let args = InferArgs {
        images: vec![llava::ImageInput::Path("/nonexistent/cat.png".into())],
        generation_config: Some(greedy(2)),
        ..InferArgs::default()
    };
    let err = llava::inference(&model, &template, "Hi", args).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cat.png"), "{err}");
    let err = get_model_tokenizer("llava-nope", None, ModelKwargs::default()).unwrap_err();
    assert!(err.to_string().contains("llava-nope"), "{err}");
    assert!(
        err.to_string().contains("llava1d6-mistral-7b-instruct"),
        "{err}"
    );
}

#[test]
fn the_registry_names_ms_swift_types() {
    let expected = [
        ("llava1d6-mistral-7b-instruct", "llava-mistral-instruct"),
        ("llava1_6-mistral-7b-instruct", "llava-mistral-instruct"),
        ("llava1d6-yi-34b-instruct", "llava-yi-instruct"),
        ("llava1_6-yi-34b-instruct", "llava-yi-instruct"),
        ("llama3-llava-next-8b", "llama-llava-next"),
        ("llava-next-72b", "llava-qwen-instruct"),
        ("llava-next-110b", "llava-qwen-instruct"),
        ("llava1_6-mistral-7b-instruct-hf", "llava-mistral"),
        ("llama3-llava-next-8b-hf", "llama3-llava-next-hf"),
        ("llava-next-110b-hf", "llava-qwen-hf"),
        ("llava-onevision-qwen2-7b-ov", "llava-onevision-qwen"),
    ];
    for (model_type, template) in expected {
        assert_eq!(
            get_default_template_type(model_type).unwrap(),
            template,
            "{model_type}"
        );
        // Every default template exists.
        assert!(
            llava_template::find_template(template).is_some(),
            "{template}"
        );
    }
    let yi = llava::ModelInfo::find("llava1d6-yi-34b-instruct").unwrap();
    assert_eq!(yi.eos_token, Some("<|im_end|>"));
    assert_eq!(yi.hf_model_id, "liuhaotian/llava-v1.6-34b");
    assert_eq!(yi.lora_target_modules, ["q_proj", "k_proj", "v_proj"]);
    assert_eq!(
        llava::ModelInfo::for_hub_id("lmms-lab/llava-next-72b")
            .unwrap()
            .model_type,
        "llava-next-72b"
    );
    for m in llava::MODELS {
        assert!(
            llava_template::find_template(m.template_type).is_some(),
            "{}",
            m.model_type
        );
    }
}
