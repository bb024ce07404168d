//! LLaVA-NeXT image preprocessing (spec §1.4–§1.8): resize onto the best canvas, pad black,
//! cut tiles row-major, squash the whole image into the base tile, rescale and normalise.

use rayon::prelude::*;

use crate::anyres::{AnyresConfig, Convention, ImageLayout, Size};
use crate::image_io::{DecodeOptions, RgbImage};
use crate::resample::resize_bicubic;

/// Everything the image processor needs besides the image.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Canvas and tile geometry.
    pub anyres: AnyresConfig,
    /// Per-channel mean (RGB) subtracted after rescaling.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (RGB).
    pub std: [f32; 3],
}

/// CLIP's normalisation (OpenAI CLIP ViT-L/14-336).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's normalisation.
#[allow(clippy::excessive_precision)] // written as in preprocessor_config.json
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

impl ProcessorConfig {
    /// LLaVA-NeXT with CLIP-336.
    pub fn llava_next(convention: Convention) -> Self {
        Self {
            anyres: AnyresConfig::llava_next(convention),
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// LLaVA-OneVision with SigLIP-384 (mean and std 0.5).
    pub fn onevision(convention: Convention) -> Self {
        Self {
            anyres: AnyresConfig::onevision(convention),
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }

    /// How image files are decoded for this checkpoint family (spec §1.9): transformers'
    /// `load_image` applies the EXIF orientation, original LLaVA's `Image.open` does not; both
    /// drop alpha (`convert("RGB")`).
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            exif_orientation: self.anyres.convention == Convention::Transformers,
            ..DecodeOptions::default()
        }
    }
}

/// One preprocessed image.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// Canvas, tiles and token count.
    pub layout: ImageLayout,
    /// `[1 + tiles, 3, tile, tile]` row-major, f32: the base image, then the tiles.
    pub pixel_values: Vec<f32>,
}

impl ProcessedImage {
    /// Patches (base + tiles).
    pub fn patches(&self) -> usize {
        1 + self.layout.tiles() as usize
    }
}

/// The uint8 planes before normalisation: the base image and every tile, each `tile × tile`
/// RGB (packed). Exposed for parity tests against Pillow.
pub fn patches_u8(image: &RgbImage, config: &ProcessorConfig) -> (ImageLayout, Vec<Vec<u8>>) {
    let size = Size::new(image.width, image.height);
    let layout = ImageLayout::new(size, &config.anyres);
    let (w, h) = (image.width as usize, image.height as usize);
    let tile = config.anyres.tile as usize;

    let resized = resize_bicubic(
        &image.pixels,
        w,
        h,
        layout.resized.width as usize,
        layout.resized.height as usize,
    );
    let (cw, ch) = (layout.canvas.width as usize, layout.canvas.height as usize);
    let (rw, rh) = (
        layout.resized.width as usize,
        layout.resized.height as usize,
    );
    let (ox, oy) = (layout.offset.0 as usize, layout.offset.1 as usize);
    // Black canvas with the resized image pasted at the (floor-)centred offset.
    let mut canvas = vec![0u8; cw * ch * 3];
    for y in 0..rh {
        let dst = ((oy + y) * cw + ox) * 3;
        canvas[dst..dst + rw * 3].copy_from_slice(&resized[y * rw * 3..(y + 1) * rw * 3]);
    }
    let base = resize_bicubic(&image.pixels, w, h, tile, tile);
    let (rows, cols) = (layout.grid.0 as usize, layout.grid.1 as usize);
    let mut patches = vec![base];
    patches.extend((0..rows * cols).map(|t| {
        let (r, c) = (t / cols, t % cols);
        let mut out = Vec::with_capacity(tile * tile * 3);
        for y in 0..tile {
            let start = ((r * tile + y) * cw + c * tile) * 3;
            out.extend_from_slice(&canvas[start..start + tile * 3]);
        }
        out
    }));
    (layout, patches)
}

/// Preprocesses one decoded image. Patches are normalised in parallel.
pub fn preprocess(image: &RgbImage, config: &ProcessorConfig) -> ProcessedImage {
    let (layout, patches) = patches_u8(image, config);
    let tile = config.anyres.tile as usize;
    let plane = tile * tile;
    let mut pixel_values = vec![0f32; patches.len() * 3 * plane];
    pixel_values
        .par_chunks_mut(3 * plane)
        .zip(patches.par_iter())
        .for_each(|(out, rgb)| normalise(rgb, out, config));
    ProcessedImage {
        layout,
        pixel_values,
    }
}

/// transformers' OneVision processor for an image of a several-image prompt: pad to a square
/// with the mean colour (`int(mean·255)`, centred, floor offset), resize to one tile, normalise.
pub fn preprocess_single_patch(image: &RgbImage, config: &ProcessorConfig) -> ProcessedImage {
    let size = Size::new(image.width, image.height);
    let layout = ImageLayout::single(size, &config.anyres);
    let side = layout.canvas.width as usize;
    let background: [u8; 3] = config.mean.map(|m| (m * 255.0) as u8);
    let mut square: Vec<u8> = background
        .iter()
        .copied()
        .cycle()
        .take(side * side * 3)
        .collect();
    let (w, h) = (image.width as usize, image.height as usize);
    let (ox, oy) = (layout.offset.0 as usize, layout.offset.1 as usize);
    for y in 0..h {
        let dst = ((oy + y) * side + ox) * 3;
        square[dst..dst + w * 3].copy_from_slice(&image.pixels[y * w * 3..(y + 1) * w * 3]);
    }
    let tile = config.anyres.tile as usize;
    let patch = resize_bicubic(&square, side, side, tile, tile);
    let mut pixel_values = vec![0f32; 3 * tile * tile];
    normalise(&patch, &mut pixel_values, config);
    ProcessedImage {
        layout,
        pixel_values,
    }
}

/// Packed RGB u8 → planar (C, H, W) f32: `x = f32(p · (1/255))`, then `(x − mean) / std` in
/// f32, as transformers' `rescale` and `normalize` compute it (spec §1.7).
fn normalise(rgb: &[u8], out: &mut [f32], config: &ProcessorConfig) {
    let plane = rgb.len() / 3;
    let scale = 1.0f64 / 255.0;
    for c in 0..3 {
        let (mean, std) = (config.mean[c], config.std[c]);
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            let x = (px[c] as f64 * scale) as f32;
            out[c * plane + i] = (x - mean) / std;
        }
    }
}
