//! Training sets on disk: rendered scenes as PNG files and ms-swift rows (`query`, `response`,
//! `history`, `images`) that ask several questions about each image (3–6 rounds of distinct
//! question families, as many as the scene has), one round each.

use std::io::Write;
use std::path::{Path, PathBuf};

use llava_data::rng::SplitMix64;
use rayon::prelude::*;
use serde_json::json;

use crate::questions::{Family, Qa, ask, families};
use crate::scene::{Kind, Scene, stream};

/// The mix of scene kinds in training: most scenes hold shapes; digits, numbers and sums share
/// the rest (sums twice, since they need the digits read and added).
const TRAINING_KINDS: [Kind; 10] = [
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Digit,
    Kind::Number,
    Kind::Sum,
    Kind::Sum,
];

/// Up to `rounds` questions of distinct families about `scene`, in random order.
pub fn conversation(scene: &Scene, rng: &mut SplitMix64, rounds: usize) -> Vec<Qa> {
    let mut left: Vec<Family> = families(scene);
    let mut out = Vec::new();
    while out.len() < rounds && !left.is_empty() {
        let family = left.swap_remove(rng.below(left.len()));
        // A family can come up empty for one draw (two objects too close to compare): retry.
        if let Some(qa) = (0..4).find_map(|_| ask(scene, family, rng)) {
            out.push(qa);
        }
    }
    out
}

/// Scene `index` of the training set of `seed` and its questions.
pub fn training_example(seed: u64, index: u64) -> (Scene, Vec<Qa>) {
    let mut rng = stream(seed, index);
    let kind = TRAINING_KINDS[rng.below(TRAINING_KINDS.len())];
    let scene = Scene::sample(&mut rng, kind);
    // Rounds are cheap beside the image's tokens: more of them teach more per rendered image.
    let rounds = 3 + rng.below(4);
    let qas = conversation(&scene, &mut rng, rounds);
    (scene, qas)
}

/// Writes `images` scenes of the training set of `seed` under `dir` (`images/<i>.png` and
/// `train.jsonl`, one row per image) and returns the jsonl's path.
pub fn write_training_set(dir: &Path, seed: u64, images: u64) -> std::io::Result<PathBuf> {
    let image_dir = dir.join("images");
    std::fs::create_dir_all(&image_dir)?;
    let rows: Vec<String> = (0..images)
        .into_par_iter()
        .map(|i| -> std::io::Result<String> {
            let (scene, qas) = training_example(seed, i);
            let name = format!("images/{i:07}.png");
            scene
                .render()
                .save(dir.join(&name))
                .map_err(std::io::Error::other)?;
            let (last, history) = qas.split_last().expect("every scene has a question");
            let history: Vec<[&str; 2]> = history
                .iter()
                .map(|qa| [qa.question.as_str(), qa.answer.as_str()])
                .collect();
            Ok(json!({
                "query": last.question,
                "response": last.answer,
                "history": history,
                "images": [name],
            })
            .to_string())
        })
        .collect::<std::io::Result<_>>()?;
    let path = dir.join("train.jsonl");
    let tmp = dir.join("train.jsonl.tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for row in rows {
        writeln!(file, "{row}")?;
    }
    file.flush()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_ms_swift_rows_with_images_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_training_set(dir.path(), 3, 20).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 20);
        for (i, row) in rows.iter().enumerate() {
            let image = row["images"][0].as_str().unwrap();
            assert_eq!(image, format!("images/{i:07}.png"));
            assert!(dir.path().join(image).is_file());
            assert!(!row["response"].as_str().unwrap().is_empty());
            let (_, qas) = training_example(3, i as u64);
            assert_eq!(row["history"].as_array().unwrap().len(), qas.len() - 1);
            assert!(qas.iter().all(|qa| !qa.held_out));
        }
    }
}
