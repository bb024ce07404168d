//! The world's vocabulary: six shapes, eight colours, three backgrounds.

use serde::{Deserialize, Serialize};

/// A shape an object can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Diamond,
    Cross,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 6] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Star,
        Shape::Diamond,
        Shape::Cross,
    ];

    /// Its English name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Star => "star",
            Shape::Diamond => "diamond",
            Shape::Cross => "cross",
        }
    }

    /// Its plural.
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Cross => "crosses",
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Star => "stars",
            Shape::Diamond => "diamonds",
        }
    }
}

/// A colour an object or a text can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Orange,
    Purple,
    White,
    Black,
}

impl Colour {
    /// Every colour.
    pub const ALL: [Colour; 8] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Orange,
        Colour::Purple,
        Colour::White,
        Colour::Black,
    ];

    /// Its English name.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Orange => "orange",
            Colour::Purple => "purple",
            Colour::White => "white",
            Colour::Black => "black",
        }
    }

    /// Its nominal sRGB value (scenes jitter it a little).
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Green => [30, 170, 50],
            Colour::Blue => [40, 70, 220],
            Colour::Yellow => [240, 220, 30],
            Colour::Orange => [245, 140, 20],
            Colour::Purple => [140, 50, 180],
            Colour::White => [255, 255, 255],
            Colour::Black => [0, 0, 0],
        }
    }

    /// Whether it shows on `background` (white on white and black on black do not).
    pub fn shows_on(self, background: Background) -> bool {
        !matches!(
            (self, background),
            (Colour::White, Background::White) | (Colour::Black, Background::Black)
        )
    }
}

/// The plain background of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    White,
    Grey,
    Black,
}

impl Background {
    /// Every background.
    pub const ALL: [Background; 3] = [Background::White, Background::Grey, Background::Black];

    /// Its English name.
    pub fn name(self) -> &'static str {
        match self {
            Background::White => "white",
            Background::Grey => "grey",
            Background::Black => "black",
        }
    }

    /// Its nominal sRGB value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Background::White => [255, 255, 255],
            Background::Grey => [128, 128, 128],
            Background::Black => [0, 0, 0],
        }
    }
}

/// Colour–shape pairs that never appear in training: questions about them test whether the
/// model composes what it learnt separately. Each shape and six of the colours appear once.
pub const HELD_OUT: [(Colour, Shape); 6] = [
    (Colour::Green, Shape::Triangle),
    (Colour::Blue, Shape::Star),
    (Colour::Yellow, Shape::Cross),
    (Colour::Purple, Shape::Circle),
    (Colour::Orange, Shape::Diamond),
    (Colour::Red, Shape::Square),
];

/// Whether `colour` `shape` is a held-out pair.
pub fn is_held_out(colour: Colour, shape: Shape) -> bool {
    HELD_OUT.contains(&(colour, shape))
}
