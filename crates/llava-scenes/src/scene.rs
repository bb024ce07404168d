//! A scene: a plain background with 1–5 non-overlapping shapes, or a digit, a number or a sum
//! written in the bitmap font. Scenes are drawn from a seed and an index, so any one of them
//! can be made again alone, and rendered to pixels.

use image::{Rgb, RgbImage};
use llava_data::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::font;
use crate::palette::{Background, Colour, Shape, is_held_out};

/// The image sizes (width, height): square, landscape and portrait, so that the model's anyres
/// grids (2×2, 1×2, 2×1 tiles of 112 pixels) all occur.
pub const SIZES: [(u32, u32); 3] = [(224, 224), (224, 112), (112, 224)];

/// One shape in a scene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Whether it is drawn large.
    pub large: bool,
    /// Centre, pixels from the left.
    pub x: f32,
    /// Centre, pixels from the top.
    pub y: f32,
    /// Radius of its bounding circle, pixels.
    pub r: f32,
}

/// What a text scene writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Text {
    /// One digit.
    Digit(u8),
    /// A two-digit number.
    Number(u8),
    /// `a+b=`.
    Sum(u8, u8),
}

impl Text {
    /// The characters drawn.
    pub fn written(self) -> String {
        match self {
            Text::Digit(d) | Text::Number(d) => d.to_string(),
            Text::Sum(a, b) => format!("{a}+{b}="),
        }
    }
}

/// What a scene shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Content {
    /// Shapes.
    Objects(Vec<Object>),
    /// A text in one colour, `scale` image pixels per font pixel, its top-left corner at
    /// (`x`, `y`).
    Text {
        text: Text,
        colour: Colour,
        scale: u32,
        x: u32,
        y: u32,
    },
}

/// A scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Its background.
    pub background: Background,
    /// What is on it.
    pub content: Content,
    /// Seeds the small colour variations of the rendering.
    pub jitter: u64,
}

/// What kind of scene to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Shapes, no held-out colour–shape pair among them.
    Objects,
    /// Shapes, one of them of a held-out pair.
    HeldOut,
    /// A digit.
    Digit,
    /// A number from 10 to 99.
    Number,
    /// A sum of two digits.
    Sum,
}

/// The random stream of scene `index` of the set drawn from `seed`.
pub fn stream(seed: u64, index: u64) -> SplitMix64 {
    let mut mix = SplitMix64::new(seed ^ 0x5CE4_E5B9_0000_0000);
    let base = mix.next_u64();
    let mut rng = SplitMix64::new(base ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64();
    rng
}

/// A uniform draw in `[lo, hi)`.
pub fn uniform(rng: &mut SplitMix64, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
}

/// One of `items`.
pub fn pick<T: Copy>(rng: &mut SplitMix64, items: &[T]) -> T {
    items[rng.below(items.len())]
}

impl Scene {
    /// A scene of `kind` drawn from `rng`.
    pub fn sample(rng: &mut SplitMix64, kind: Kind) -> Scene {
        let (width, height) = pick(rng, &SIZES);
        let background = pick(rng, &Background::ALL);
        let content = match kind {
            Kind::Objects | Kind::HeldOut => Content::Objects(objects(
                rng,
                width,
                height,
                background,
                kind == Kind::HeldOut,
            )),
            Kind::Digit | Kind::Number | Kind::Sum => {
                let written = match kind {
                    Kind::Digit => Text::Digit(rng.below(10) as u8),
                    Kind::Number => Text::Number(10 + rng.below(90) as u8),
                    _ => Text::Sum(rng.below(10) as u8, rng.below(10) as u8),
                };
                text(rng, width, height, background, written)
            }
        };
        Scene {
            width,
            height,
            background,
            content,
            jitter: rng.next_u64(),
        }
    }

    /// The shapes (none for a text scene).
    pub fn objects(&self) -> &[Object] {
        match &self.content {
            Content::Objects(o) => o,
            Content::Text { .. } => &[],
        }
    }

    /// The pixels.
    pub fn render(&self) -> RgbImage {
        let mut rng = SplitMix64::new(self.jitter);
        let bg = jittered(&mut rng, self.background.rgb(), 8);
        let mut image = RgbImage::from_pixel(self.width, self.height, Rgb(bg));
        match &self.content {
            Content::Objects(objects) => {
                for o in objects {
                    let ink = jittered(&mut rng, o.colour.rgb(), 12);
                    fill(&mut image, o, ink);
                }
            }
            Content::Text {
                text,
                colour,
                scale,
                x,
                y,
            } => {
                let ink = Rgb(jittered(&mut rng, colour.rgb(), 12));
                for (cx, cy) in font::ink(&text.written()) {
                    for dy in 0..*scale {
                        for dx in 0..*scale {
                            image.put_pixel(x + cx * scale + dx, y + cy * scale + dy, ink);
                        }
                    }
                }
            }
        }
        image
    }
}

fn jittered(rng: &mut SplitMix64, rgb: [u8; 3], by: i32) -> [u8; 3] {
    rgb.map(|c| (c as i32 + rng.below(2 * by as usize + 1) as i32 - by).clamp(0, 255) as u8)
}

/// 1–5 shapes that do not touch; a third of scenes draw from one or two shapes only, so that
/// counts of one shape up to five occur.
fn objects(
    rng: &mut SplitMix64,
    width: u32,
    height: u32,
    background: Background,
    held_out: bool,
) -> Vec<Object> {
    let n = 1 + rng.below(5);
    let shapes: Vec<Shape> = if rng.below(3) == 0 {
        (0..1 + rng.below(2))
            .map(|_| pick(rng, &Shape::ALL))
            .collect()
    } else {
        Shape::ALL.to_vec()
    };
    let colours: Vec<Colour> = Colour::ALL
        .into_iter()
        .filter(|c| c.shows_on(background))
        .collect();
    let mut out: Vec<Object> = Vec::with_capacity(n);
    let mut tries = 0;
    while out.len() < n && tries < 400 {
        tries += 1;
        let (colour, shape) = if held_out && out.is_empty() {
            loop {
                let pair = pick(rng, &crate::palette::HELD_OUT);
                if pair.0.shows_on(background) {
                    break pair;
                }
            }
        } else {
            let pair = (pick(rng, &colours), pick(rng, &shapes));
            if is_held_out(pair.0, pair.1) {
                continue;
            }
            pair
        };
        let large = rng.below(2) == 0;
        // Two to four of the tower's 14-pixel patches across, so that a shape's outline
        // spans several patches of a tile (half as many in the base image).
        let r = if large {
            uniform(rng, 20.0, 26.0)
        } else {
            uniform(rng, 13.0, 17.0)
        };
        let x = uniform(rng, r + 3.0, width as f32 - r - 3.0);
        let y = uniform(rng, r + 3.0, height as f32 - r - 3.0);
        if out
            .iter()
            .any(|o| ((o.x - x).powi(2) + (o.y - y).powi(2)).sqrt() < o.r + r + 4.0)
        {
            continue;
        }
        out.push(Object {
            shape,
            colour,
            large,
            x,
            y,
            r,
        });
    }
    out
}

fn text(
    rng: &mut SplitMix64,
    width: u32,
    height: u32,
    background: Background,
    text: Text,
) -> Content {
    let colour = loop {
        let c = pick(rng, &Colour::ALL);
        if c.shows_on(background) {
            break c;
        }
    };
    let written = text.written();
    let fits =
        |s: u32| font::text_width(&written, s) + 8 <= width && font::GLYPH_H * s + 8 <= height;
    // Font pixels of 5–10 image pixels where the text fits (a glyph 25–50 pixels wide, two
    // or more patches), smaller only where it does not (a sum in a portrait image).
    let max = (3..=10).rev().find(|&s| fits(s)).unwrap_or(2);
    let min = 5.min(max);
    let scale = min + rng.below((max - min + 1) as usize) as u32;
    let w = font::text_width(&written, scale);
    let h = font::GLYPH_H * scale;
    let x = 4 + rng.below((width - w - 8 + 1) as usize) as u32;
    let y = 4 + rng.below((height - h - 8 + 1) as usize) as u32;
    Content::Text {
        text,
        colour,
        scale,
        x,
        y,
    }
}

/// Whether the point (`u`, `v`), in units of the radius from the centre (y down), is inside
/// `shape`.
fn inside(shape: Shape, u: f32, v: f32) -> bool {
    match shape {
        Shape::Circle => u * u + v * v <= 1.0,
        Shape::Square => u.abs() <= 0.78 && v.abs() <= 0.78,
        Shape::Diamond => u.abs() + v.abs() <= 1.0,
        Shape::Cross => (u.abs() <= 0.3 && v.abs() <= 0.92) || (v.abs() <= 0.3 && u.abs() <= 0.92),
        Shape::Triangle => {
            // Apex up, base at v = 0.8; its sides through (0, −1) and (±0.95, 0.8).
            (-1.0..=0.8).contains(&v) && u.abs() <= 0.95 * (v + 1.0) / 1.8
        }
        Shape::Star => in_polygon(&star(), u, v),
    }
}

/// The five-pointed star's outline, point up.
fn star() -> [(f32, f32); 10] {
    std::array::from_fn(|i| {
        let radius = if i % 2 == 0 { 1.0 } else { 0.42 };
        let angle = -std::f32::consts::FRAC_PI_2 + i as f32 * std::f32::consts::PI / 5.0;
        (radius * angle.cos(), radius * angle.sin())
    })
}

fn in_polygon(points: &[(f32, f32)], u: f32, v: f32) -> bool {
    let mut inside = false;
    let mut j = points.len() - 1;
    for i in 0..points.len() {
        let (xi, yi) = points[i];
        let (xj, yj) = points[j];
        if (yi > v) != (yj > v) && u < (xj - xi) * (v - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Paints `o` with 4×4 supersampled coverage, blended over what is there.
fn fill(image: &mut RgbImage, o: &Object, ink: [u8; 3]) {
    let (w, h) = image.dimensions();
    let x0 = (o.x - o.r).floor().max(0.0) as u32;
    let x1 = ((o.x + o.r).ceil() as u32).min(w - 1);
    let y0 = (o.y - o.r).floor().max(0.0) as u32;
    let y1 = ((o.y + o.r).ceil() as u32).min(h - 1);
    for py in y0..=y1 {
        for px in x0..=x1 {
            let mut hits = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let u = (px as f32 + (sx as f32 + 0.5) / 4.0 - o.x) / o.r;
                    let v = (py as f32 + (sy as f32 + 0.5) / 4.0 - o.y) / o.r;
                    hits += inside(o.shape, u, v) as u32;
                }
            }
            if hits == 0 {
                continue;
            }
            let a = hits as f32 / 16.0;
            let p = image.get_pixel_mut(px, py);
            for (c, &i) in p.0.iter_mut().zip(&ink) {
                *c = (*c as f32 * (1.0 - a) + i as f32 * a).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_are_reproducible_from_seed_and_index() {
        for kind in [
            Kind::Objects,
            Kind::HeldOut,
            Kind::Digit,
            Kind::Number,
            Kind::Sum,
        ] {
            let a = Scene::sample(&mut stream(7, 3), kind);
            let b = Scene::sample(&mut stream(7, 3), kind);
            assert_eq!(a, b);
            assert_eq!(a.render(), b.render());
            assert_ne!(a, Scene::sample(&mut stream(7, 4), kind));
        }
    }

    #[test]
    fn objects_fit_do_not_touch_and_avoid_held_out_pairs_unless_asked() {
        for i in 0..300 {
            let s = Scene::sample(&mut stream(1, i), Kind::Objects);
            let objects = s.objects();
            assert!((1..=5).contains(&objects.len()));
            for (k, a) in objects.iter().enumerate() {
                assert!(!is_held_out(a.colour, a.shape));
                assert!(a.colour.shows_on(s.background));
                assert!(a.x - a.r >= 0.0 && a.x + a.r <= s.width as f32);
                assert!(a.y - a.r >= 0.0 && a.y + a.r <= s.height as f32);
                for b in &objects[k + 1..] {
                    assert!(((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt() > a.r + b.r);
                }
            }
            let h = Scene::sample(&mut stream(1, i), Kind::HeldOut);
            let first = h.objects()[0];
            assert!(is_held_out(first.colour, first.shape));
        }
    }

    #[test]
    fn a_circle_is_painted_where_it_is_and_nowhere_else() {
        let scene = Scene {
            width: 112,
            height: 112,
            background: Background::White,
            content: Content::Objects(vec![Object {
                shape: Shape::Circle,
                colour: Colour::Black,
                large: true,
                x: 40.0,
                y: 60.0,
                r: 20.0,
            }]),
            jitter: 0,
        };
        let image = scene.render();
        assert!(image.get_pixel(40, 60).0.iter().all(|&c| c < 20));
        assert!(image.get_pixel(90, 60).0.iter().all(|&c| c > 230));
        assert!(image.get_pixel(40, 85).0.iter().all(|&c| c > 230));
        let dark = image.pixels().filter(|p| p.0[0] < 128).count() as f32;
        let area = std::f32::consts::PI * 400.0;
        assert!((dark - area).abs() / area < 0.03, "{dark} vs {area}");
    }

    #[test]
    fn texts_fit_every_size() {
        for i in 0..200 {
            for kind in [Kind::Digit, Kind::Number, Kind::Sum] {
                let s = Scene::sample(&mut stream(2, i), kind);
                let Content::Text {
                    text, scale, x, y, ..
                } = s.content
                else {
                    panic!("a text scene")
                };
                assert!(scale >= 3, "{s:?}");
                assert!(x + font::text_width(&text.written(), scale) <= s.width);
                assert!(y + font::GLYPH_H * scale <= s.height);
                s.render();
            }
        }
    }
}
