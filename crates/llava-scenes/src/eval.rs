//! Held-out evaluation: scenes drawn from a seed training never used, a few questions of one
//! family each, answers scored by exact match, accuracy per family against stated thresholds.

use std::collections::BTreeMap;
use std::fmt;

use crate::palette::Shape;
use crate::questions::{Family, Qa, ask};
use crate::scene::{Kind, Scene, stream};

/// One question about one scene.
#[derive(Debug, Clone)]
pub struct Case {
    /// The scene.
    pub scene: Scene,
    /// The question and its answer.
    pub qa: Qa,
}

/// A row of the table: a family, or the held-out colour–shape pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Questions of one family (about seen pairs).
    Family(Family),
    /// Colour, shape and existence questions about held-out pairs.
    HeldOut,
}

impl Group {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Group::Family(f) => f.name(),
            Group::HeldOut => "held-out pairs",
        }
    }

    /// The accuracy the demo model must reach (`None`: reported only).
    pub fn threshold(self) -> Option<f64> {
        match self {
            Group::Family(Family::Colour | Family::Shape | Family::Existence | Family::Digit) => {
                Some(0.97)
            }
            Group::Family(Family::Position) => Some(0.95),
            Group::Family(Family::Count | Family::Sum) => Some(0.90),
            Group::HeldOut => Some(0.85),
            Group::Family(Family::Describe) => None,
        }
    }

    fn of(qa: &Qa) -> Group {
        if qa.held_out {
            Group::HeldOut
        } else {
            Group::Family(qa.family)
        }
    }
}

/// The groups scenes are drawn for, in turn.
const SLOTS: [Group; 9] = [
    Group::Family(Family::Colour),
    Group::Family(Family::Shape),
    Group::Family(Family::Existence),
    Group::Family(Family::Count),
    Group::Family(Family::Position),
    Group::Family(Family::Digit),
    Group::Family(Family::Sum),
    Group::HeldOut,
    Group::Family(Family::Describe),
];

/// `scenes` scenes of the evaluation set of `seed`, each asked up to two distinct questions
/// of its slot's group (one for captions).
pub fn cases(seed: u64, scenes: u64) -> Vec<Case> {
    let mut out = Vec::new();
    for i in 0..scenes {
        let slot = SLOTS[i as usize % SLOTS.len()];
        let mut rng = stream(seed, i);
        let kind = match slot {
            Group::HeldOut => Kind::HeldOut,
            Group::Family(Family::Digit) if i % 2 == 0 => Kind::Digit,
            Group::Family(Family::Digit) => Kind::Number,
            Group::Family(Family::Sum) => Kind::Sum,
            Group::Family(_) => Kind::Objects,
        };
        let wanted = if slot == Group::Family(Family::Describe) {
            1
        } else {
            2
        };
        // Scenes that cannot be asked enough (no shape alone of its kind, say) are drawn again.
        let (scene, asked) = loop {
            let scene = Scene::sample(&mut rng, kind);
            let mut asked: Vec<Qa> = Vec::new();
            for _ in 0..40 {
                if asked.len() == wanted {
                    break;
                }
                let family = match slot {
                    Group::Family(f) => f,
                    Group::HeldOut => {
                        [Family::Colour, Family::Shape, Family::Existence][rng.below(3)]
                    }
                };
                let Some(qa) = ask(&scene, family, &mut rng) else {
                    continue;
                };
                if Group::of(&qa) != slot || asked.iter().any(|a| a.question == qa.question) {
                    continue;
                }
                asked.push(qa);
            }
            if asked.len() == wanted {
                break (scene, asked);
            }
        };
        out.extend(asked.into_iter().map(|qa| Case {
            scene: scene.clone(),
            qa,
        }));
    }
    out
}

/// The committed examples (`fixtures/demo-model/examples/`): first the README's scene (two to
/// four circles among other shapes, asked "How many circles are there?"), then one scene of
/// each group of the evaluation set of `seed`.
pub fn examples(seed: u64) -> Vec<Case> {
    let readme = (0..)
        .map(|i| Scene::sample(&mut stream(seed, 1_000_000 + i), Kind::Objects))
        .find(|s| {
            let circles = s
                .objects()
                .iter()
                .filter(|o| o.shape == Shape::Circle)
                .count();
            (2..=4).contains(&circles) && s.objects().len() > circles && s.width == s.height
        })
        .expect("some scene has circles");
    let circles = readme
        .objects()
        .iter()
        .filter(|o| o.shape == Shape::Circle)
        .count();
    let mut out = vec![Case {
        scene: readme,
        qa: Qa {
            family: Family::Count,
            held_out: false,
            question: "How many circles are there?".into(),
            answer: circles.to_string(),
        },
    }];
    let all = cases(seed, SLOTS.len() as u64);
    let mut groups = Vec::new();
    for case in all {
        let g = Group::of(&case.qa);
        if !groups.contains(&g) {
            groups.push(g);
            out.push(case);
        }
    }
    out
}

/// Whether `said` answers `expected`: equal after trimming spaces and a final full stop, case
/// aside.
pub fn matches(said: &str, expected: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('.').trim().to_lowercase();
    norm(said) == norm(expected)
}

/// Correct and asked counts per group.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// (correct, asked) per group.
    pub groups: BTreeMap<Group, (usize, usize)>,
    /// Wrong answers: (question, expected, said), the first few per group.
    pub misses: Vec<(Group, String, String, String)>,
    /// (correct, asked) of the position questions per expected answer (`yes`, `left`, …): a
    /// model that gives one answer to every relation shows as all of one and none of the other.
    pub position_answers: BTreeMap<String, (usize, usize)>,
}

impl Table {
    /// Records one answer.
    pub fn record(&mut self, qa: &Qa, said: &str) {
        let group = Group::of(qa);
        let right = matches(said, &qa.answer);
        if group == Group::Family(Family::Position) {
            let entry = self.position_answers.entry(qa.answer.clone()).or_default();
            entry.0 += usize::from(right);
            entry.1 += 1;
        }
        let entry = self.groups.entry(group).or_default();
        entry.1 += 1;
        if right {
            entry.0 += 1;
        } else if self.misses.iter().filter(|m| m.0 == group).count() < 3 {
            self.misses.push((
                group,
                qa.question.clone(),
                qa.answer.clone(),
                said.to_string(),
            ));
        }
    }

    /// Accuracy of `group` (`None` when nothing was asked).
    pub fn accuracy(&self, group: Group) -> Option<f64> {
        self.groups
            .get(&group)
            .filter(|(_, n)| *n > 0)
            .map(|&(c, n)| c as f64 / n as f64)
    }

    /// The groups under their thresholds.
    pub fn failures(&self) -> Vec<Group> {
        self.groups
            .keys()
            .copied()
            .filter(|&g| match (g.threshold(), self.accuracy(g)) {
                (Some(t), Some(a)) => a < t,
                _ => false,
            })
            .collect()
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| question family | asked | right | accuracy | threshold |"
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        for (group, &(right, asked)) in &self.groups {
            let threshold = group
                .threshold()
                .map_or("—".to_string(), |t| format!("{:.0}%", t * 100.0));
            writeln!(
                f,
                "| {} | {asked} | {right} | {:.1}% | {threshold} |",
                group.name(),
                100.0 * right as f64 / asked.max(1) as f64
            )?;
        }
        if !self.position_answers.is_empty() {
            let parts: Vec<String> = self
                .position_answers
                .iter()
                .map(|(a, (right, asked))| format!("{a} {right}/{asked}"))
                .collect();
            writeln!(f, "position by answer: {}", parts.join(", "))?;
        }
        for (group, q, expected, said) in &self.misses {
            writeln!(
                f,
                "miss ({}): {q:?} expected {expected:?}, said {said:?}",
                group.name()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_covers_every_group_evenly_and_is_reproducible() {
        let cases = cases(2026, 300);
        let mut per: BTreeMap<Group, usize> = BTreeMap::new();
        for c in &cases {
            *per.entry(Group::of(&c.qa)).or_default() += 1;
        }
        assert_eq!(per.len(), SLOTS.len(), "{per:?}");
        for (g, n) in &per {
            let least = if *g == Group::Family(Family::Describe) {
                33
            } else {
                60
            };
            assert!(*n >= least, "{g:?}: {n}");
        }
        let again = super::cases(2026, 300);
        assert_eq!(again.len(), cases.len());
        assert!(
            again
                .iter()
                .zip(&cases)
                .all(|(a, b)| a.qa == b.qa && a.scene == b.scene)
        );
    }

    #[test]
    fn the_examples_open_with_the_readme_question_and_cover_every_group() {
        let ex = examples(77);
        assert_eq!(ex[0].qa.question, "How many circles are there?");
        let n: usize = ex[0].qa.answer.parse().unwrap();
        assert!((2..=4).contains(&n));
        assert_eq!(ex.len(), 1 + SLOTS.len());
    }

    #[test]
    fn scoring_is_exact_but_for_case_spaces_and_a_full_stop() {
        assert!(matches(" Red.", "red"));
        assert!(!matches("red circle", "red"));
        let qa = cases(5, 9).remove(0).qa;
        let mut table = Table::default();
        table.record(&qa, &qa.answer);
        table.record(&qa, "nonsense");
        assert_eq!(table.accuracy(Group::of(&qa)), Some(0.5));
        assert_eq!(table.failures(), vec![Group::of(&qa)]);
        assert!(table.to_string().contains("50.0%"));
        let position = |answer: &str| Qa {
            family: Family::Position,
            held_out: false,
            question: "Is the red star above the blue circle?".into(),
            answer: answer.into(),
        };
        table.record(&position("yes"), "no");
        table.record(&position("no"), "no");
        table.record(&position("left"), "left");
        assert!(
            table
                .to_string()
                .contains("position by answer: left 1/1, no 1/1, yes 0/1"),
            "{table}"
        );
    }
}
