//! LLaVA-NeXT "anyres" geometry as pure functions (spec §1.2–§1.5, §1.13, §3.2): which canvas
//! an image is resized onto, how it is padded and tiled, and how many feature rows and columns
//! survive the unpadding. [`ImageLayout`] computes all of it once; preprocessing, the token
//! count and the feature packing all read the same layout, so they cannot disagree.

/// Which code base's conventions apply (spec README, decision 1: geometry follows the
/// checkpoint family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Convention {
    /// Original LLaVA / LLaVA-NeXT (liuhaotian, lmms-lab checkpoints): pinpoints and sizes as
    /// (width, height), plain truncation when unpadding.
    Original,
    /// transformers (llava-hf checkpoints): pinpoints and sizes as (height, width), unpadding
    /// rounds to 7 decimals before truncating.
    Transformers,
}

/// Width and height of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

impl Size {
    /// A size from width and height.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

/// The anyres settings of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct AnyresConfig {
    /// `image_grid_pinpoints` exactly as the config lists them (their orientation depends on
    /// the convention).
    pub pinpoints: Vec<[u32; 2]>,
    /// Tile side in pixels (336 for CLIP, 384 for SigLIP).
    pub tile: u32,
    /// Vision patch side in pixels (14).
    pub patch: u32,
    /// `anyres_max_N` (OneVision): downscale the unpadded feature map to about N tiles.
    pub max_tiles: Option<u32>,
    /// Which code base's rules apply.
    pub convention: Convention,
}

/// The LLaVA-NeXT pinpoints of every target checkpoint.
pub const LLAVA_NEXT_PINPOINTS: [[u32; 2]; 5] =
    [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]];

impl AnyresConfig {
    /// LLaVA-NeXT with CLIP-336 in the given convention.
    pub fn llava_next(convention: Convention) -> Self {
        Self {
            pinpoints: LLAVA_NEXT_PINPOINTS.to_vec(),
            tile: 336,
            patch: 14,
            max_tiles: None,
            convention,
        }
    }

    /// LLaVA-OneVision with SigLIP-384 and `anyres_max_9`: 36 pinpoints 384·i × 384·j.
    pub fn onevision(convention: Convention) -> Self {
        let pinpoints = (1..=6)
            .flat_map(|i| (1..=6).map(move |j| [384 * i, 384 * j]))
            .collect();
        Self {
            pinpoints,
            tile: 384,
            patch: 14,
            max_tiles: Some(9),
            convention,
        }
    }

    /// Feature-map side of one tile (24 for CLIP-336, 27 for SigLIP-384).
    pub fn tile_features(&self) -> u32 {
        self.tile / self.patch
    }
}

/// Where one image goes: canvas, resize, padding, tiles, and the feature rows it yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLayout {
    /// The original image.
    pub image: Size,
    /// The chosen pinpoint canvas.
    pub canvas: Size,
    /// The image resized (aspect preserved) to fit the canvas.
    pub resized: Size,
    /// Top-left corner of the resized image on the black canvas.
    pub offset: (u32, u32),
    /// Tile rows and columns of the canvas.
    pub grid: (u32, u32),
    /// Feature rows and columns kept after unpadding, before any OneVision downscale; the
    /// crop is symmetric, so `(grid·s − unpadded) / 2` rows / columns go on each side.
    pub unpadded: (u32, u32),
    /// Feature rows and columns kept after unpadding (and the OneVision downscale).
    pub features: (u32, u32),
    /// Whether the OneVision downscale applies to the unpadded map.
    pub downscaled: bool,
    /// Tokens of the image: base tile, then each kept feature row plus its newline.
    pub tokens: u32,
}

/// `select_best_resolution` (spec §1.3), for an image of `size` in `config`'s convention.
/// Returns the canvas as width × height.
pub fn best_canvas(size: Size, config: &AnyresConfig) -> Size {
    // (a, b) is the image and (A, B) each pinpoint, both in the convention's orientation.
    let (a, b) = match config.convention {
        Convention::Transformers => (size.height as f64, size.width as f64),
        Convention::Original => (size.width as f64, size.height as f64),
    };
    let mut best = config
        .pinpoints
        .first()
        .copied()
        .unwrap_or([config.tile; 2]);
    let mut best_effective = 0u64;
    let mut best_wasted = u64::MAX;
    for &[pa, pb] in &config.pinpoints {
        let scale = (pa as f64 / a).min(pb as f64 / b);
        let (da, db) = ((a * scale).trunc() as u64, (b * scale).trunc() as u64);
        let effective = (da * db).min(a as u64 * b as u64);
        let wasted = pa as u64 * pb as u64 - effective;
        if effective > best_effective || (effective == best_effective && wasted < best_wasted) {
            best = [pa, pb];
            best_effective = effective;
            best_wasted = wasted;
        }
    }
    match config.convention {
        Convention::Transformers => Size::new(best[1], best[0]),
        Convention::Original => Size::new(best[0], best[1]),
    }
}

/// The aspect-preserving resize onto `canvas` (spec §1.4), with f64 arithmetic in the order
/// both code bases use (an exact integer ceiling differs by a pixel in some cases).
pub fn resized_size(size: Size, canvas: Size) -> Size {
    let (w, h) = (size.width as f64, size.height as f64);
    let (tw, th) = (canvas.width as f64, canvas.height as f64);
    let (scale_w, scale_h) = (tw / w, th / h);
    if scale_w < scale_h {
        Size::new(
            canvas.width,
            ((h * scale_w).ceil() as u32).min(canvas.height),
        )
    } else {
        Size::new(
            ((w * scale_h).ceil() as u32).min(canvas.width),
            canvas.height,
        )
    }
}

/// transformers' `int(round(x, 7))`: truncation, except that a value within 5·10⁻⁸ below an
/// integer counts as that integer (PR #34522); the original code truncates.
fn snap(x: f64, convention: Convention) -> u32 {
    match convention {
        Convention::Original => x.trunc() as u32,
        Convention::Transformers => {
            let up = x.ceil();
            if up - x < 5e-8 {
                up as u32
            } else {
                x.trunc() as u32
            }
        }
    }
}

/// Feature rows and columns kept of an `(h0, w0)` feature canvas for an image of `size`
/// (spec §1.13: symmetric crop of the padding).
pub fn unpadded(size: Size, h0: u32, w0: u32, convention: Convention) -> (u32, u32) {
    let (w, h) = (size.width as f64, size.height as f64);
    if w / h > w0 as f64 / h0 as f64 {
        let n = snap(h * (w0 as f64 / w), convention);
        let pad = h0.saturating_sub(n) / 2;
        (h0 - 2 * pad, w0)
    } else {
        let n = snap(w * (h0 as f64 / h), convention);
        let pad = w0.saturating_sub(n) / 2;
        (h0, w0 - 2 * pad)
    }
}

/// OneVision's `anyres_max_N` downscale of an unpadded `(h, w)` map of `s`-wide tiles:
/// r = √(h·w / (N·s²)); above 1.1 both sides become ⌊side / r⌋.
pub fn max_tiles_downscale(h: u32, w: u32, s: u32, max_tiles: u32) -> Option<(u32, u32)> {
    let r = ((h as f64 * w as f64) / (max_tiles as f64 * (s * s) as f64)).sqrt();
    (r > 1.1).then(|| ((h as f64 / r).floor() as u32, (w as f64 / r).floor() as u32))
}

impl ImageLayout {
    /// The layout of an image of `size` under `config`. Sizes must be non-zero.
    pub fn new(size: Size, config: &AnyresConfig) -> Self {
        let canvas = best_canvas(size, config);
        let resized = resized_size(size, canvas);
        let offset = (
            (canvas.width - resized.width) / 2,
            (canvas.height - resized.height) / 2,
        );
        let grid = (canvas.height / config.tile, canvas.width / config.tile);
        let s = config.tile_features();
        let (mut h, mut w) = unpadded(size, grid.0 * s, grid.1 * s, config.convention);
        let kept = (h, w);
        let mut downscaled = false;
        if let Some(n) = config.max_tiles
            && let Some((dh, dw)) = max_tiles_downscale(h, w, s, n)
        {
            (h, w, downscaled) = (dh, dw, true);
        }
        Self {
            image: size,
            canvas,
            resized,
            offset,
            grid,
            unpadded: kept,
            features: (h, w),
            downscaled,
            tokens: s * s + h * (w + 1),
        }
    }

    /// The layout of an image that is not tiled: transformers' OneVision processor pads each
    /// image of a several-image prompt to a square and resizes it to one tile, which yields the
    /// tile's features plus one newline.
    pub fn single(size: Size, config: &AnyresConfig) -> Self {
        let side = size.width.max(size.height);
        let s = config.tile_features();
        Self {
            image: size,
            canvas: Size::new(side, side),
            resized: size,
            offset: ((side - size.width) / 2, (side - size.height) / 2),
            grid: (0, 0),
            unpadded: (0, 0),
            features: (0, 0),
            downscaled: false,
            tokens: s * s + 1,
        }
    }

    /// Tiles cut from the canvas (row-major), not counting the base image.
    pub fn tiles(&self) -> u32 {
        self.grid.0 * self.grid.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(w: u32, h: u32, convention: Convention) -> u32 {
        ImageLayout::new(Size::new(w, h), &AnyresConfig::llava_next(convention)).tokens
    }

    /// The worked examples of spec §1.13.
    #[test]
    fn spec_examples_llava_next() {
        use Convention::*;
        for (w, h, hf, orig) in [
            (640, 480, 2340, 2340),
            (480, 640, 2352, 2352),
            (1000, 300, 2182, 2182),
            (300, 1000, 2232, 2232),
            (336, 336, 1176, 1176),
            (300, 200, 1464, 976),
            (1024, 899, 2634, 2634),
            (1920, 1080, 1948, 1948),
            (704, 396, 1948, 1850),
            (800, 800, 2928, 2928),
            (500, 500, 2928, 2928),
            (672, 672, 2928, 2928),
        ] {
            assert_eq!(tokens(w, h, Transformers), hf, "HF {w}x{h}");
            assert_eq!(tokens(w, h, Original), orig, "orig {w}x{h}");
        }
    }

    #[test]
    fn small_images_tie_differently_per_convention() {
        let hf = ImageLayout::new(
            Size::new(300, 200),
            &AnyresConfig::llava_next(Convention::Transformers),
        );
        let orig = ImageLayout::new(
            Size::new(300, 200),
            &AnyresConfig::llava_next(Convention::Original),
        );
        assert_eq!((hf.canvas, hf.grid), (Size::new(672, 336), (1, 2)));
        assert_eq!((orig.canvas, orig.grid), (Size::new(336, 672), (2, 1)));
    }

    #[test]
    fn resize_uses_the_f64_ceiling() {
        // Spec §1.4: W=51, H=288 onto 336×672 gives 120 wide, not the exact 119.
        assert_eq!(
            resized_size(Size::new(51, 288), Size::new(336, 672)),
            Size::new(120, 672)
        );
    }

    #[test]
    fn spec_examples_onevision() {
        for (w, h, tokens, downscaled) in [
            (640, 480, 2929, false),
            (1000, 300, 2779, false),
            (336, 336, 1485, false),
            (1024, 899, 6551, false),
            (1920, 1080, 7269, true),
            (4000, 3000, 7309, true),
        ] {
            let layout = ImageLayout::new(
                Size::new(w, h),
                &AnyresConfig::onevision(Convention::Transformers),
            );
            assert_eq!(
                (layout.tokens, layout.downscaled),
                (tokens, downscaled),
                "{w}x{h}"
            );
        }
    }
}
