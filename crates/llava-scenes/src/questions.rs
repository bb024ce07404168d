//! Questions about a scene with the answers the generator knows, in a few paraphrases each,
//! and the scene's canonical caption.

use llava_data::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::palette::{Colour, Shape};
use crate::scene::{Content, Object, Scene, Text, pick};

/// The kinds of question, scored separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// The colour of the only ⟨shape⟩.
    Colour,
    /// The shape of the only ⟨colour⟩ object.
    Shape,
    /// Is there a ⟨colour⟩ ⟨shape⟩?
    Existence,
    /// How many ⟨shape⟩s, or objects in all.
    Count,
    /// Left/right/above/below between two objects.
    Position,
    /// The digit or number written.
    Digit,
    /// The result of the written sum.
    Sum,
    /// The canonical caption.
    Describe,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 8] = [
        Family::Colour,
        Family::Shape,
        Family::Existence,
        Family::Count,
        Family::Position,
        Family::Digit,
        Family::Sum,
        Family::Describe,
    ];

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Family::Colour => "colour",
            Family::Shape => "shape",
            Family::Existence => "existence",
            Family::Count => "count",
            Family::Position => "position",
            Family::Digit => "digit",
            Family::Sum => "sum",
            Family::Describe => "describe",
        }
    }
}

/// A question and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qa {
    /// Its family.
    pub family: Family,
    /// Whether it asks about a held-out colour–shape pair.
    pub held_out: bool,
    /// The question.
    pub question: String,
    /// The answer, exactly as the model should say it.
    pub answer: String,
}

fn qa(family: Family, question: String, answer: impl Into<String>) -> Qa {
    Qa {
        family,
        held_out: false,
        question,
        answer: answer.into(),
    }
}

/// The families that can be asked about `scene`.
pub fn families(scene: &Scene) -> Vec<Family> {
    match &scene.content {
        Content::Text { text, .. } => match text {
            Text::Digit(_) | Text::Number(_) => vec![Family::Digit, Family::Describe],
            Text::Sum(..) => vec![Family::Sum, Family::Describe],
        },
        Content::Objects(objects) => {
            let mut out = vec![Family::Existence, Family::Count, Family::Describe];
            if unique_shapes(objects).next().is_some() {
                out.push(Family::Colour);
            }
            if unique_colours(objects).next().is_some() {
                out.push(Family::Shape);
            }
            if !position_pairs(objects).is_empty() {
                out.push(Family::Position);
            }
            out.sort();
            out
        }
    }
}

/// A question of `family` about `scene` (`None` when the family does not apply).
pub fn ask(scene: &Scene, family: Family, rng: &mut SplitMix64) -> Option<Qa> {
    let objects = scene.objects();
    Some(match family {
        Family::Colour => {
            let o = pick_from(rng, unique_shapes(objects).collect())?;
            let q = pick(
                rng,
                &[
                    "What colour is the {s}?",
                    "What color is the {s}?",
                    "Which colour is the {s}?",
                ],
            );
            let mut a = qa(family, q.replace("{s}", o.shape.name()), o.colour.name());
            a.held_out = crate::palette::is_held_out(o.colour, o.shape);
            a
        }
        Family::Shape => {
            let o = pick_from(rng, unique_colours(objects).collect())?;
            let q = pick(
                rng,
                &[
                    "What shape is the {c} object?",
                    "What is the shape of the {c} object?",
                    "Which shape is {c}?",
                ],
            );
            let mut a = qa(family, q.replace("{c}", o.colour.name()), o.shape.name());
            a.held_out = crate::palette::is_held_out(o.colour, o.shape);
            a
        }
        Family::Existence => {
            if objects.is_empty() {
                return None;
            }
            let yes = rng.below(2) == 0;
            let (colour, shape) = if yes {
                let o = pick(rng, objects);
                (o.colour, o.shape)
            } else {
                absent_pair(rng, scene)?
            };
            let q = pick(
                rng,
                &[
                    "Is there a {c} {s}?",
                    "Is there a {c} {s} in the image?",
                    "Does the image contain a {c} {s}?",
                ],
            );
            let mut a = qa(
                family,
                q.replace("a {c}", &with_article(colour))
                    .replace("{s}", shape.name()),
                if yes { "yes" } else { "no" },
            );
            a.held_out = crate::palette::is_held_out(colour, shape);
            a
        }
        Family::Count => {
            if objects.is_empty() {
                return None;
            }
            if rng.below(3) == 0 {
                let q = pick(
                    rng,
                    &[
                        "How many objects are there?",
                        "How many shapes are in the image?",
                        "How many objects are in the image?",
                    ],
                );
                qa(family, q.to_string(), objects.len().to_string())
            } else {
                // Mostly shapes that are there; sometimes one that is not (answer 0).
                let shape = if rng.below(6) == 0 {
                    pick(rng, &Shape::ALL)
                } else {
                    pick(rng, objects).shape
                };
                let n = objects.iter().filter(|o| o.shape == shape).count();
                let q = pick(
                    rng,
                    &[
                        "How many {p} are there?",
                        "How many {p} are in the image?",
                        "Count the {p}.",
                    ],
                );
                qa(family, q.replace("{p}", shape.plural()), n.to_string())
            }
        }
        Family::Position => {
            let (a, b) = pick_from(rng, position_pairs(objects))?;
            let across = rng.below(2) == 0;
            // Only ask an axis the two are well apart on.
            let apart = if across {
                (a.x - b.x).abs()
            } else {
                (a.y - b.y).abs()
            };
            if apart < 0.6 * (a.r + b.r) {
                return None;
            }
            // Half the questions name the side to answer: a yes/no answer alone is the
            // exclusive-or of the side and the word asked, which no single feature predicts
            // (relations asked only as yes/no kept the loss at ln 2 per answer for 650 steps);
            // the side's answer follows one object's place directly. Whether it is learnt
            // sooner is still open (docs/demo-model.md).
            let (q, answer) = if rng.below(2) == 0 {
                let (q, side) = if across {
                    (
                        "Is the {a} to the left or to the right of the {b}?",
                        if a.x < b.x { "left" } else { "right" },
                    )
                } else {
                    (
                        "Is the {a} above or below the {b}?",
                        if a.y < b.y { "above" } else { "below" },
                    )
                };
                (q.to_string(), side)
            } else {
                let (word, truth) = match (across, rng.below(2) == 0) {
                    (true, true) => ("to the left of", a.x < b.x),
                    (true, false) => ("to the right of", a.x > b.x),
                    (false, true) => ("above", a.y < b.y),
                    (false, false) => ("below", a.y > b.y),
                };
                let q = pick(
                    rng,
                    &[
                        "Is the {a} {w} the {b}?",
                        "Is the {a} {w} the {b} in the image?",
                    ],
                );
                (q.replace("{w}", word), if truth { "yes" } else { "no" })
            };
            qa(
                family,
                q.replace("{a}", &name(&a)).replace("{b}", &name(&b)),
                answer,
            )
        }
        Family::Digit => match scene.content {
            Content::Text {
                text: Text::Digit(d),
                ..
            } => {
                let q = pick(
                    rng,
                    &[
                        "What digit is written?",
                        "Which digit is shown?",
                        "What digit is in the image?",
                    ],
                );
                qa(family, q.to_string(), d.to_string())
            }
            Content::Text {
                text: Text::Number(n),
                ..
            } => {
                let q = pick(
                    rng,
                    &[
                        "What number is written?",
                        "What number is shown in the image?",
                        "Read the number.",
                    ],
                );
                qa(family, q.to_string(), n.to_string())
            }
            _ => return None,
        },
        Family::Sum => match scene.content {
            Content::Text {
                text: Text::Sum(a, b),
                ..
            } => {
                let q = pick(
                    rng,
                    &[
                        "What is the calculation result?",
                        "What is the sum?",
                        "What does the sum equal?",
                        "Calculate the result.",
                    ],
                );
                qa(family, q.to_string(), (a + b).to_string())
            }
            _ => return None,
        },
        Family::Describe => {
            let q = pick(
                rng,
                &[
                    "Describe the image.",
                    "What is in the image?",
                    "Describe this picture.",
                ],
            );
            qa(family, q.to_string(), caption(scene))
        }
    })
}

fn pick_from<T: Copy>(rng: &mut SplitMix64, items: Vec<T>) -> Option<T> {
    (!items.is_empty()).then(|| pick(rng, &items))
}

/// "a red", "an orange".
fn with_article(colour: Colour) -> String {
    let article = if colour == Colour::Orange { "an" } else { "a" };
    format!("{article} {}", colour.name())
}

fn name(o: &Object) -> String {
    format!("{} {}", o.colour.name(), o.shape.name())
}

/// Objects whose shape no other object has.
fn unique_shapes(objects: &[Object]) -> impl Iterator<Item = Object> + '_ {
    objects
        .iter()
        .filter(|o| objects.iter().filter(|p| p.shape == o.shape).count() == 1)
        .copied()
}

/// Objects whose colour no other object has.
fn unique_colours(objects: &[Object]) -> impl Iterator<Item = Object> + '_ {
    objects
        .iter()
        .filter(|o| objects.iter().filter(|p| p.colour == o.colour).count() == 1)
        .copied()
}

/// Objects no other object shares colour and shape with (so "the red circle" names one).
fn named(objects: &[Object]) -> Vec<Object> {
    objects
        .iter()
        .filter(|o| {
            objects
                .iter()
                .filter(|p| p.shape == o.shape && p.colour == o.colour)
                .count()
                == 1
        })
        .copied()
        .collect()
}

/// A question about which half of the image one object is in ("Is the red circle in the left
/// or the right half of the image?" → `left`), asked only of an object clear of the middle:
/// the diagnostic `Mix::Places` asks only these, to tell whether the model can read one
/// object's place at all (open experiment, docs/demo-model.md). Position family.
pub fn place(scene: &Scene, rng: &mut SplitMix64) -> Option<Qa> {
    let a = pick_from(rng, named(scene.objects()))?;
    let across = rng.below(2) == 0;
    let (centre, at) = if across {
        (scene.width as f32 / 2.0, a.x)
    } else {
        (scene.height as f32 / 2.0, a.y)
    };
    if (at - centre).abs() < a.r {
        return None;
    }
    let (q, answer) = match (across, at < centre) {
        (true, true) => ("left or the right", "left"),
        (true, false) => ("left or the right", "right"),
        (false, true) => ("top or the bottom", "top"),
        (false, false) => ("top or the bottom", "bottom"),
    };
    Some(qa(
        Family::Position,
        format!("Is the {} in the {q} half of the image?", name(&a)),
        answer,
    ))
}

/// Ordered pairs of distinct objects each named by a colour–shape pair no other object has.
fn position_pairs(objects: &[Object]) -> Vec<(Object, Object)> {
    let named = named(objects);
    let mut out = Vec::new();
    for (i, a) in named.iter().enumerate() {
        for (j, b) in named.iter().enumerate() {
            if i != j {
                out.push((*a, *b));
            }
        }
    }
    out
}

/// A colour–shape pair absent from the scene: half the time a near miss (a shape that is there
/// in another colour, or a colour that is there on another shape). Never a held-out pair unless
/// the scene holds one.
fn absent_pair(rng: &mut SplitMix64, scene: &Scene) -> Option<(Colour, Shape)> {
    let objects = scene.objects();
    let allow_held_out = objects
        .iter()
        .any(|o| crate::palette::is_held_out(o.colour, o.shape));
    for _ in 0..100 {
        let near = pick(rng, objects);
        let (colour, shape) = match rng.below(3) {
            0 => (pick(rng, &Colour::ALL), near.shape),
            1 => (near.colour, pick(rng, &Shape::ALL)),
            _ => (pick(rng, &Colour::ALL), pick(rng, &Shape::ALL)),
        };
        let there = objects
            .iter()
            .any(|o| o.colour == colour && o.shape == shape);
        if there || (!allow_held_out && crate::palette::is_held_out(colour, shape)) {
            continue;
        }
        return Some((colour, shape));
    }
    None
}

const NUMBERS: [&str; 6] = ["no", "a", "two", "three", "four", "five"];

/// The scene's canonical caption: its groups of same-coloured same shapes from left to right
/// (by their leftmost member), then the background; or what is written, in which colour.
pub fn caption(scene: &Scene) -> String {
    let background = scene.background.name();
    match &scene.content {
        Content::Text { text, colour, .. } => {
            let what = match text {
                Text::Digit(d) => format!("The digit {d}"),
                Text::Number(n) => format!("The number {n}"),
                Text::Sum(a, b) => format!("The sum {a}+{b}"),
            };
            format!(
                "{what} written in {} on a {background} background.",
                colour.name()
            )
        }
        Content::Objects(objects) => {
            let mut groups: Vec<(Colour, Shape, usize, f32)> = Vec::new();
            for o in objects {
                match groups
                    .iter_mut()
                    .find(|g| g.0 == o.colour && g.1 == o.shape)
                {
                    Some(g) => {
                        g.2 += 1;
                        g.3 = g.3.min(o.x);
                    }
                    None => groups.push((o.colour, o.shape, 1, o.x)),
                }
            }
            groups.sort_by(|a, b| a.3.total_cmp(&b.3));
            let parts: Vec<String> = groups
                .iter()
                .map(|&(colour, shape, n, _)| {
                    let article = if n == 1 && colour == Colour::Orange {
                        "an"
                    } else {
                        NUMBERS[n.min(5)]
                    };
                    let noun = if n == 1 { shape.name() } else { shape.plural() };
                    format!("{article} {} {noun}", colour.name())
                })
                .collect();
            let list = match parts.len() {
                1 => parts[0].clone(),
                n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
            };
            let mut s = format!("{list} on a {background} background.");
            s[..1].make_ascii_uppercase();
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::Background;
    use crate::scene::{Kind, stream};

    fn object(shape: Shape, colour: Colour, x: f32, y: f32) -> Object {
        Object {
            shape,
            colour,
            large: false,
            x,
            y,
            r: 10.0,
        }
    }

    fn scene(objects: Vec<Object>) -> Scene {
        Scene {
            width: 224,
            height: 224,
            background: Background::White,
            content: Content::Objects(objects),
            jitter: 0,
        }
    }

    #[test]
    fn the_caption_counts_groups_from_left_to_right() {
        let s = scene(vec![
            object(Shape::Square, Colour::Blue, 150.0, 50.0),
            object(Shape::Circle, Colour::Red, 30.0, 50.0),
            object(Shape::Circle, Colour::Red, 90.0, 150.0),
            object(Shape::Star, Colour::Orange, 200.0, 150.0),
        ]);
        assert_eq!(
            caption(&s),
            "Two red circles, a blue square and an orange star on a white background."
        );
    }

    #[test]
    fn answers_follow_the_scene() {
        let s = scene(vec![
            object(Shape::Square, Colour::Blue, 150.0, 50.0),
            object(Shape::Circle, Colour::Red, 30.0, 150.0),
            object(Shape::Circle, Colour::Green, 90.0, 150.0),
        ]);
        let mut rng = SplitMix64::new(0);
        for _ in 0..200 {
            for family in families(&s) {
                let Some(qa) = ask(&s, family, &mut rng) else {
                    continue;
                };
                let q = &qa.question;
                let a = qa.answer.as_str();
                match family {
                    Family::Colour => assert_eq!((q.contains("square"), a), (true, "blue")),
                    Family::Shape => assert!(
                        (q.contains("blue") && a == "square")
                            || (q.contains("red") || q.contains("green")) && a == "circle"
                    ),
                    Family::Count if q.contains("circles") => assert_eq!(a, "2"),
                    Family::Count if q.contains("squares") => assert_eq!(a, "1"),
                    Family::Count if q.contains("objects") || q.contains("shapes") => {
                        assert_eq!(a, "3")
                    }
                    Family::Count => assert_eq!(a, "0", "{q}"),
                    Family::Existence => {
                        let present = ["blue square", "red circle", "green circle"]
                            .iter()
                            .any(|p| q.contains(p));
                        assert_eq!(a, if present { "yes" } else { "no" }, "{q}");
                    }
                    Family::Position => {
                        if q.starts_with("Is the blue square above the") {
                            assert_eq!(a, "yes");
                        }
                        if q.starts_with("Is the blue square above or below") {
                            assert_eq!(a, "above");
                        }
                        if q.starts_with("Is the red circle to the right of the green") {
                            assert_eq!(a, "no");
                        }
                        if q.starts_with(
                            "Is the red circle to the left or to the right of the green",
                        ) {
                            assert_eq!(a, "left");
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn position_is_asked_both_as_yes_no_and_as_the_side() {
        let mut answers = std::collections::HashMap::<String, usize>::new();
        for i in 0..400 {
            let mut rng = stream(11, i);
            let s = Scene::sample(&mut rng, Kind::Objects);
            if let Some(qa) = ask(&s, Family::Position, &mut rng) {
                let side = qa.question.contains(" or ");
                let expected: &[&str] = if !side {
                    &["yes", "no"]
                } else if qa.question.contains(" left ") {
                    &["left", "right"]
                } else {
                    &["above", "below"]
                };
                assert!(expected.contains(&qa.answer.as_str()), "{qa:?}");
                *answers.entry(qa.answer).or_default() += 1;
            }
        }
        for a in ["yes", "no", "left", "right", "above", "below"] {
            assert!(answers.get(a).copied().unwrap_or(0) > 10, "{answers:?}");
        }
    }

    #[test]
    fn every_family_is_asked_somewhere_and_text_answers_are_numbers() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..400 {
            let kind = [Kind::Objects, Kind::Digit, Kind::Number, Kind::Sum][i % 4];
            let mut rng = stream(9, i as u64);
            let s = Scene::sample(&mut rng, kind);
            for f in families(&s) {
                if let Some(qa) = ask(&s, f, &mut rng) {
                    seen.insert(f);
                    if let (
                        Family::Sum,
                        Content::Text {
                            text: Text::Sum(a, b),
                            ..
                        },
                    ) = (f, &s.content)
                    {
                        assert_eq!(qa.answer, (a + b).to_string());
                    }
                }
            }
        }
        assert_eq!(seen.len(), Family::ALL.len());
    }
}
