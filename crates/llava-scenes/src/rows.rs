//! Training sets on disk: rendered scenes as PNG files and ms-swift rows (`query`, `response`,
//! `history`, `images`) that ask several questions about each image (6–10 rounds: every
//! family the scene has, then more about its other objects).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use llava_data::rng::SplitMix64;
use rayon::prelude::*;
use serde_json::json;

use crate::palette::{Colour, Shape};
use crate::questions::{Family, Qa, ask, families};
use crate::scene::{Kind, Scene, stream};

/// The mix of scene kinds in training: half the scenes hold shapes, the other half digits,
/// numbers and sums (numbers and sums twice: two glyphs to read, and an addition). A text
/// scene has only two questions (what is written or its sum, and the caption), so at 40% of
/// the scenes reading got a tenth of the questions and stayed near chance the longest.
const TRAINING_KINDS: [Kind; 10] = [
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Objects,
    Kind::Digit,
    Kind::Number,
    Kind::Number,
    Kind::Sum,
    Kind::Sum,
];

/// Which scenes the training set draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mix {
    /// The recipe's mix: half shape scenes, half text (`TRAINING_KINDS`).
    #[default]
    Recipe,
    /// Text scenes only, in the recipe's proportions among them: a diagnostic of whether
    /// reading can be learnt at all when it has every step (an open experiment).
    Text,
    /// Shape scenes asked only where their objects are (left/right/above/below): a
    /// diagnostic of whether relations can be learnt at all when they have every step (an
    /// open experiment).
    Relations,
    /// Shape scenes asked only which half of the image one object is in: whether one
    /// object's place can be read at all, before two are compared (an open experiment).
    Places,
}

impl Mix {
    fn kinds(self) -> &'static [Kind] {
        match self {
            Mix::Recipe => &TRAINING_KINDS,
            // The text kinds are the recipe's last five (the test below checks the split).
            Mix::Text => &TRAINING_KINDS[5..],
            Mix::Relations | Mix::Places => &TRAINING_KINDS[..5],
        }
    }
}

/// How often each family comes up in the extra rounds (after each family once): relations
/// and counts, learnt slowest, most (relations run out of pairs soonest); existence, which
/// has the most subjects (every colour–shape pair), least.
fn extra_weight(family: Family) -> usize {
    match family {
        Family::Position => 3,
        Family::Count | Family::Colour => 2,
        _ => 1,
    }
}

/// Up to `rounds` questions about `scene`, in random order: each family the scene has once,
/// then more of the families that can ask about another object (colour, shape, existence,
/// count, position), never about the same subject twice, so that no answer can be copied
/// from an earlier round.
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
    let again: Vec<Family> = families(scene)
        .into_iter()
        .filter(|f| !matches!(f, Family::Describe | Family::Digit | Family::Sum))
        .flat_map(|f| std::iter::repeat_n(f, extra_weight(f)))
        .collect();
    let mut seen: HashSet<(Family, Vec<&'static str>)> = out.iter().map(subject).collect();
    let mut tries = 0;
    while out.len() < rounds && !again.is_empty() && tries < 6 * rounds {
        tries += 1;
        let family = again[rng.below(again.len())];
        if let Some(qa) = ask(scene, family, rng)
            && seen.insert(subject(&qa))
        {
            out.push(qa);
        }
    }
    out
}

/// What a question is about: its family and the colours and shapes it names (`all` for a
/// count of every object), and for a relation its axis (`x` for left/right, `y` for
/// above/below), whatever the paraphrase or the relation asked: one pair can be asked once
/// across and once up and down, two answers that do not follow from each other.
fn subject(qa: &Qa) -> (Family, Vec<&'static str>) {
    let mut words: Vec<&'static str> = qa
        .question
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter_map(|w| {
            if w == "objects" || w == "shapes" {
                return Some("all");
            }
            Colour::ALL
                .iter()
                .map(|c| c.name())
                .chain(Shape::ALL.iter().map(|s| s.name()))
                .find(|n| *n == w)
                .or_else(|| {
                    Shape::ALL
                        .iter()
                        .find(|s| s.plural() == w)
                        .map(|s| s.name())
                })
        })
        .collect();
    if qa.family == Family::Position {
        let across = qa.question.contains(" left ") || qa.question.contains(" right ");
        words.push(if across { "x" } else { "y" });
    }
    words.sort_unstable();
    (qa.family, words)
}

/// Scene `index` of the training set of `seed` and its questions.
pub fn training_example(seed: u64, index: u64, mix: Mix) -> (Scene, Vec<Qa>) {
    let mut rng = stream(seed, index);
    let kinds = mix.kinds();
    let kind = kinds[rng.below(kinds.len())];
    let mut scene = Scene::sample(&mut rng, kind);
    // Rounds are cheap beside the image's ~300 tokens: more of them teach more per image.
    let rounds = 6 + rng.below(5);
    if matches!(mix, Mix::Relations | Mix::Places) {
        // A scene with no pair far enough apart (no object clear of the middle) is drawn again.
        let ask_one: fn(&Scene, &mut SplitMix64) -> Option<Qa> = if mix == Mix::Places {
            crate::questions::place
        } else {
            |scene: &Scene, rng: &mut SplitMix64| ask(scene, Family::Position, rng)
        };
        loop {
            let qas = positions(&scene, &mut rng, rounds, ask_one);
            if !qas.is_empty() {
                return (scene, qas);
            }
            scene = Scene::sample(&mut rng, kind);
        }
    }
    let qas = conversation(&scene, &mut rng, rounds);
    (scene, qas)
}

/// Up to `rounds` position questions about `scene` drawn by `ask_one`, each subject (a pair
/// or an object) at most once per axis.
fn positions(
    scene: &Scene,
    rng: &mut SplitMix64,
    rounds: usize,
    ask_one: fn(&Scene, &mut SplitMix64) -> Option<Qa>,
) -> Vec<Qa> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for _ in 0..6 * rounds {
        if out.len() == rounds {
            break;
        }
        if let Some(qa) = ask_one(scene, rng)
            && seen.insert(subject(&qa))
        {
            out.push(qa);
        }
    }
    out
}

/// Writes `images` scenes of the training set of `seed` (drawn from `mix`) under `dir`
/// (`images/<i>.png` and `train.jsonl`, one row per image) and returns the jsonl's path.
pub fn write_training_set(
    dir: &Path,
    seed: u64,
    images: u64,
    mix: Mix,
) -> std::io::Result<PathBuf> {
    let image_dir = dir.join("images");
    std::fs::create_dir_all(&image_dir)?;
    let rows: Vec<String> = (0..images)
        .into_par_iter()
        .map(|i| -> std::io::Result<String> {
            let (scene, qas) = training_example(seed, i, mix);
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
        let path = write_training_set(dir.path(), 3, 20, Mix::Recipe).unwrap();
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
            let (_, qas) = training_example(3, i as u64, Mix::Recipe);
            assert_eq!(row["history"].as_array().unwrap().len(), qas.len() - 1);
            assert!(qas.iter().all(|qa| !qa.held_out));
        }
    }

    #[test]
    fn half_the_scenes_are_text_and_counts_and_relations_are_asked_more() {
        let mut per: std::collections::HashMap<Family, usize> = Default::default();
        let mut text = 0;
        for i in 0..1000 {
            let (scene, qas) = training_example(8, i, Mix::Recipe);
            if scene.objects().is_empty() {
                text += 1;
            }
            for qa in qas {
                *per.entry(qa.family).or_default() += 1;
            }
        }
        assert!((430..570).contains(&text), "{text} text scenes in 1000");
        let n = |f| per.get(&f).copied().unwrap_or(0);
        // Object scenes (~500) ask every family they have once, then counts and relations
        // most; relations are bounded by the pairs a scene has (each asked at most once per
        // axis), about one a scene (468 with one question per pair).
        assert!(n(Family::Count) > n(Family::Shape), "{per:?}");
        assert!(n(Family::Count) > n(Family::Colour) * 2, "{per:?}");
        assert!(n(Family::Position) > 500, "{per:?}");
        assert!(n(Family::Digit) + n(Family::Sum) >= 430, "{per:?}");
    }

    #[test]
    fn the_text_mix_draws_only_text_scenes_in_the_recipes_proportions() {
        let (mut digits, mut numbers, mut sums) = (0, 0, 0);
        for i in 0..1000 {
            let (scene, qas) = training_example(8, i, Mix::Text);
            assert!(scene.objects().is_empty(), "scene {i} has shapes");
            assert_eq!(qas.len(), 2, "scene {i}: {qas:?}");
            match qas
                .iter()
                .find(|qa| qa.family != Family::Describe)
                .map(|qa| (qa.family, qa.answer.len()))
            {
                Some((Family::Digit, 1)) => digits += 1,
                Some((Family::Digit, 2)) => numbers += 1,
                Some((Family::Sum, _)) => sums += 1,
                other => panic!("scene {i}: {other:?}"),
            }
        }
        // 1 : 2 : 2 of 1000.
        assert!((150..250).contains(&digits), "{digits} digits");
        assert!((340..460).contains(&numbers), "{numbers} numbers");
        assert!((340..460).contains(&sums), "{sums} sums");
        // The recipe's first scenes differ from the text mix's: the mix picks the kind.
        assert_ne!(
            training_example(8, 0, Mix::Text).1,
            training_example(8, 0, Mix::Recipe).1
        );
    }

    #[test]
    fn the_relations_mix_asks_only_where_objects_are_about_distinct_pairs() {
        let (mut yes, mut yes_no, mut total) = (0, 0, 0);
        for i in 0..300 {
            let (scene, qas) = training_example(8, i, Mix::Relations);
            assert!(scene.objects().len() >= 2, "scene {i}");
            assert!(!qas.is_empty() && qas.len() <= 10, "scene {i}: {qas:?}");
            let subjects: HashSet<_> = qas.iter().map(subject).collect();
            assert_eq!(subjects.len(), qas.len(), "scene {i}: {qas:?}");
            for qa in &qas {
                assert_eq!(qa.family, Family::Position, "scene {i}: {qa:?}");
                total += 1;
                if ["yes", "no"].contains(&qa.answer.as_str()) {
                    yes_no += 1;
                    yes += usize::from(qa.answer == "yes");
                }
            }
        }
        // The relation asked is drawn apart from the truth: about half the yes/no answers are yes.
        assert!(total > 600, "{total} questions in 300 scenes");
        assert!(
            (total * 2 / 5..total * 3 / 5).contains(&yes_no),
            "{yes_no} of {total} yes/no"
        );
        let total = yes_no;
        assert!(
            (total * 2 / 5..total * 3 / 5).contains(&yes),
            "{yes} of {total} yes"
        );
    }

    #[test]
    fn the_places_mix_asks_only_which_half_an_object_is_in() {
        let mut answers = std::collections::HashMap::<String, usize>::new();
        for i in 0..200 {
            let (scene, qas) = training_example(8, i, Mix::Places);
            assert!(!qas.is_empty() && qas.len() <= 10, "scene {i}: {qas:?}");
            for qa in &qas {
                assert!(qa.question.ends_with("half of the image?"), "{qa:?}");
                let o = scene
                    .objects()
                    .iter()
                    .find(|o| {
                        qa.question
                            .contains(&format!(" {} {} ", o.colour.name(), o.shape.name()))
                    })
                    .expect("names an object");
                let truth = match qa.answer.as_str() {
                    "left" => o.x < scene.width as f32 / 2.0,
                    "right" => o.x > scene.width as f32 / 2.0,
                    "top" => o.y < scene.height as f32 / 2.0,
                    "bottom" => o.y > scene.height as f32 / 2.0,
                    other => panic!("answer {other}"),
                };
                assert!(truth, "scene {i}: {qa:?} {o:?}");
                *answers.entry(qa.answer.clone()).or_default() += 1;
            }
        }
        for a in ["left", "right", "top", "bottom"] {
            assert!(answers.get(a).copied().unwrap_or(0) > 100, "{answers:?}");
        }
    }

    #[test]
    fn shape_scenes_get_more_rounds_but_never_one_subject_twice() {
        let mut long = 0;
        for i in 0..200 {
            let (scene, qas) = training_example(5, i, Mix::Recipe);
            let subjects: HashSet<_> = qas.iter().map(subject).collect();
            assert_eq!(subjects.len(), qas.len(), "{:?}", qas);
            if scene.objects().len() >= 3 && qas.len() > 6 {
                long += 1;
            }
            assert!(qas.len() <= 10);
        }
        assert!(
            long > 40,
            "{long} scenes of 3+ objects with more than 6 rounds"
        );
        let q = |family, question: &str| Qa {
            family,
            held_out: false,
            question: question.into(),
            answer: String::new(),
        };
        assert_eq!(
            subject(&q(Family::Count, "Count the circles.")),
            subject(&q(Family::Count, "How many circles are in the image?"))
        );
        assert_eq!(
            subject(&q(Family::Count, "How many shapes are in the image?")),
            (Family::Count, vec!["all"])
        );
        assert_eq!(
            subject(&q(
                Family::Position,
                "Is the red star above the blue circle?"
            )),
            (Family::Position, vec!["blue", "circle", "red", "star", "y"])
        );
    }
}
