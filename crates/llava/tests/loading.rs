//! Loading errors name what is wrong; the tower comes from the checkpoint when it has one and
//! from `mm_vision_tower` otherwise; bad prompts are errors, not panics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use llava::{IMAGE_SENTINEL, LlavaError, LlavaNext, LoadOptions, Prompt, open_image};
use llava_checkpoint::{CheckpointError, Progress};

type Entry = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

fn fixture(name: &str, layout: &str) -> PathBuf {
    llava_testutil::fixture("llava").join(name).join(layout)
}

fn image_path(name: &str) -> PathBuf {
    llava_testutil::fixture("vision/images").join(name)
}

fn options() -> LoadOptions {
    LoadOptions {
        progress: Progress::Hidden,
        ..LoadOptions::default()
    }
}

fn read_tensors(path: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect()
}

fn write_tensors(path: &Path, tensors: &[Entry]) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, d, s, b)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

/// A copy of a fixture layout directory (with its `vision_tower/` subdirectory) whose weights
/// are `edit(original weights)`.
fn edited(name: &str, layout: &str, edit: impl FnOnce(&mut Vec<Entry>)) -> tempfile::TempDir {
    let src = fixture(name, layout);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let mut tensors = read_tensors(&src.join("model.safetensors"));
    edit(&mut tensors);
    write_tensors(&dir.path().join("model.safetensors"), &tensors);
    dir
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn load(dir: &Path) -> Result<LlavaNext, LlavaError> {
    LlavaNext::from_pretrained(dir, &Device::flex(), &options())
}

/// Logits of the last position for a one-image prompt (original placeholder convention).
fn last_logits(model: &LlavaNext) -> Vec<f32> {
    let image = open_image(
        &image_path("tie_300x200.png"),
        &model.processor().decode_options(),
    )
    .unwrap();
    let prompt = Prompt {
        ids: vec![1, 5, IMAGE_SENTINEL, 7, 9],
        images: vec![model.process_image(&image).unwrap()],
    };
    let (logits, _) = model.forward(&[prompt]).unwrap();
    let [_, len, vocab] = logits.dims();
    logits
        .slice([0..1, len - 1..len, 0..vocab])
        .try_into_vec_as::<f32>()
        .unwrap()
}

#[test]
fn unused_tensors_are_named() {
    let dir = edited("clip-mistral", "hf", |t| {
        let extra = t.iter().find(|e| e.0 == "image_newline").unwrap().clone();
        t.push((
            "multi_modal_projector.linear_3.bias".into(),
            extra.1,
            extra.2,
            extra.3,
        ));
    });
    match load(dir.path()) {
        Err(LlavaError::UnusedTensors { names, .. }) => {
            assert_eq!(
                names,
                vec!["multi_modal_projector.linear_3.bias".to_string()]
            )
        }
        other => panic!("expected UnusedTensors, got {other:?}"),
    }
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let dir = edited("clip-mistral", "original", |t| {
        t.retain(|e| e.0 != "model.mm_projector.2.bias")
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            LlavaError::Checkpoint(CheckpointError::MissingTensors { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("linear_2.bias"), "{err}");

    let dir = edited("clip-mistral", "hf", |t| {
        let e = t.iter_mut().find(|e| e.0 == "image_newline").unwrap();
        e.2 = vec![e.2[0] / 2];
        e.3.truncate(e.3.len() / 2);
    });
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("image_newline"), "{err}");
}

#[test]
fn config_errors_name_the_key() {
    let dir = edited("clip-mistral", "hf", |_| {});
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("text_config");
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("text_config") && err.contains("config.json"),
        "{err}"
    );

    let dir = edited("clip-mistral", "hf", |_| {});
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["vision_feature_layer"] = serde_json::json!(-9);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("vision feature layer -9") && err.contains("4 hidden states"),
        "{err}"
    );

    let dir = edited("clip-mistral", "original", |_| {});
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("mlp2x_gelu", "linear");
    std::fs::write(&path, text).unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("mm_projector_type") && err.contains("linear"),
        "{err}"
    );
}

#[test]
fn the_checkpoints_own_tower_wins_and_mm_vision_tower_fills_in() {
    let reference = last_logits(&load(&fixture("clip-mistral", "original")).unwrap());
    let prefix = "model.vision_tower.vision_tower.";
    let tensors = read_tensors(&fixture("clip-mistral", "original").join("model.safetensors"));
    let tower: Vec<Entry> = tensors
        .iter()
        .filter(|e| e.0.starts_with(prefix))
        .map(|e| {
            (
                e.0[prefix.len()..].to_string(),
                e.1,
                e.2.clone(),
                e.3.clone(),
            )
        })
        .collect();

    // No tower in the checkpoint: the one in `vision_tower/` (mm_vision_tower) is used.
    let dir = edited("clip-mistral", "original", |t| {
        t.retain(|e| !e.0.starts_with(prefix))
    });
    write_tensors(&dir.path().join("vision_tower/model.safetensors"), &tower);
    let fallback = last_logits(&load(dir.path()).unwrap());
    assert_eq!(fallback, reference);

    // Both: the checkpoint's (fine-tuned) tower wins over a different stock one.
    let dir = edited("clip-mistral", "original", |_| {});
    let zeroed: Vec<Entry> = tower
        .iter()
        .map(|e| (e.0.clone(), e.1, e.2.clone(), vec![0; e.3.len()]))
        .collect();
    write_tensors(&dir.path().join("vision_tower/model.safetensors"), &zeroed);
    assert_eq!(last_logits(&load(dir.path()).unwrap()), reference);

    // No tower anywhere local: the error says what to do.
    let dir = edited("clip-mistral", "original", |t| {
        t.retain(|e| !e.0.starts_with(prefix))
    });
    std::fs::remove_dir_all(dir.path().join("vision_tower")).unwrap();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#""mm_vision_tower": "vision_tower""#,
        r#""mm_vision_tower": "openai/clip-vit-large-patch14-336""#,
    );
    std::fs::write(&path, text).unwrap();
    let err = load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("mm_vision_tower") && err.contains("openai/clip-vit-large-patch14-336"),
        "{err}"
    );
}

#[test]
fn prompts_that_do_not_match_their_images_are_errors() {
    let model = load(&fixture("clip-mistral", "hf")).unwrap();
    let image = open_image(
        &image_path("square_336.png"),
        &model.processor().decode_options(),
    )
    .unwrap();
    let processed = model.process_image(&image).unwrap();
    let image_id = model.config().image_token_index.unwrap() as i64;
    let check = |ids: Vec<i64>, images: usize, needle: &str| {
        let prompt = Prompt {
            ids,
            images: vec![processed.clone(); images],
        };
        let err = model.forward(&[prompt]).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err}");
    };
    // 1176 rows expected, 10 placeholders given.
    let mut ids = vec![1, 5];
    ids.extend(std::iter::repeat_n(image_id, 10));
    check(
        ids,
        1,
        "10 image tokens but its 1 image(s) give 1176 feature rows",
    );
    check(
        vec![1, IMAGE_SENTINEL, 5],
        2,
        "1 image placeholder(s) (-200) but 2 image(s)",
    );
    check(vec![1, IMAGE_SENTINEL, image_id, 5], 1, "mixes");
    check(
        vec![1, 100_000, 5],
        0,
        "token id 100000 is outside the vocabulary of 576",
    );
    check(vec![], 0, "prompt 0 is empty");
    let empty = llava::RgbImage {
        width: 0,
        height: 4,
        pixels: vec![],
    };
    let err = model.process_image(&empty).unwrap_err().to_string();
    assert!(err.contains("0×4"), "{err}");
}
