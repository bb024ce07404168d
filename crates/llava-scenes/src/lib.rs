//! The world of the embedded demo model (`docs/demo-model.md`): seeded flat scenes of shapes,
//! colours, digits and sums, questions whose answers the generator knows, the tokenizer trained
//! on their text, the training rows written for `sft`, and the held-out evaluation.

pub mod eval;
pub mod font;
pub mod palette;
pub mod questions;
pub mod rows;
pub mod scene;
pub mod tokenizer;

pub use eval::{Case, Group, Table};
pub use palette::{Background, Colour, HELD_OUT, Shape};
pub use questions::{Family, Qa, ask, caption, families};
pub use rows::{Mix, training_example, write_training_set};
pub use scene::{Content, Kind, Object, Scene, Text};
