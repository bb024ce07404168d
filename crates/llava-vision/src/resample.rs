//! Pillow's bicubic resize of 8-bit RGB images, reproduced bit for bit (spec §1.4.1, Pillow
//! `libImaging/Resample.c`): separable, two passes through an 8-bit intermediate,
//! weights normalised in f64 then fixed point with 22 fractional bits.
//!
//! Written here rather than taken from `fast_image_resize`, whose convolution stores 16-bit
//! coefficients with a per-filter precision (the Pillow-SIMD scheme) and so can differ from
//! Pillow by one level: a one-level pixel difference moves CLIP-normalised inputs by 0.015,
//! far beyond the 1e-4 logits parity the model is held to.

use rayon::prelude::*;

const PRECISION_BITS: u32 = 22;

/// Pillow's bicubic kernel (a = −0.5), with its exact arithmetic order.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index: the first source index and the fixed-point weights of the window.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for `input` → `output` samples.
fn coefficients(input: usize, output: usize) -> Coefficients {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    // Pillow multiplies by the reciprocal (not a division: the rounding differs).
    let ss = 1.0 / filterscale;
    let mut bounds = Vec::with_capacity(output);
    let mut weights = Vec::with_capacity(output);
    for i in 0..output {
        let center = (i as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let raw: Vec<f64> = (0..count)
            .map(|x| bicubic(((x + xmin) as f64 - center + 0.5) * ss))
            .collect();
        let sum: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if sum != 0.0 { w / sum } else { w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
            })
            .collect();
        bounds.push((xmin, count));
        weights.push(fixed);
    }
    Coefficients { bounds, weights }
}

fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes a packed RGB image (`width × height × 3` bytes) to `out_w × out_h` as Pillow's
/// `Image.resize(size, Image.BICUBIC)` does. Same size returns a copy, as Pillow does.
///
/// Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by
/// more than twice as many pixels as the width does; the 8-bit intermediate makes the order
/// visible in the output (up to 11 levels on a 10×500 → 336×336 squash), so it is followed here.
pub fn resize_bicubic(
    rgb: &[u8],
    width: usize,
    height: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<u8> {
    debug_assert_eq!(rgb.len(), width * height * 3);
    let (w, h, ow, oh) = (width as i64, height as i64, out_w as i64, out_h as i64);
    let vertical_first = oh < h && h - oh > 2 * (w - ow);
    if vertical_first {
        let tall = resize_vertical(rgb, width, height, out_h);
        resize_horizontal(&tall, width, out_h, out_w)
    } else {
        let wide = resize_horizontal(rgb, width, height, out_w);
        resize_vertical(&wide, out_w, height, out_h)
    }
}

/// One horizontal pass (`width` → `out_w` columns), rows in parallel.
fn resize_horizontal(rgb: &[u8], width: usize, height: usize, out_w: usize) -> Vec<u8> {
    if out_w == width {
        return rgb.to_vec();
    }
    let c = coefficients(width, out_w);
    let mut out = vec![0u8; out_w * height * 3];
    out.par_chunks_mut(out_w * 3)
        .zip(rgb.par_chunks(width * 3))
        .for_each(|(dst, src)| {
            for (x, ((start, count), w)) in c.bounds.iter().zip(&c.weights).enumerate() {
                let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                for (k, &wk) in w.iter().take(*count).enumerate() {
                    let p = &src[(start + k) * 3..(start + k) * 3 + 3];
                    for ch in 0..3 {
                        acc[ch] += p[ch] as i32 * wk;
                    }
                }
                for ch in 0..3 {
                    dst[x * 3 + ch] = clip8(acc[ch]);
                }
            }
        });
    out
}

/// One vertical pass (`height` → `out_h` rows), output rows in parallel.
fn resize_vertical(rgb: &[u8], width: usize, height: usize, out_h: usize) -> Vec<u8> {
    if out_h == height {
        return rgb.to_vec();
    }
    let c = coefficients(height, out_h);
    let row = width * 3;
    let mut out = vec![0u8; width * out_h * 3];
    out.par_chunks_mut(row)
        .zip(c.bounds.par_iter().zip(&c.weights))
        .for_each(|(dst, ((start, count), w))| {
            for (i, value) in dst.iter_mut().enumerate() {
                let mut acc = 1i32 << (PRECISION_BITS - 1);
                for (k, &wk) in w.iter().take(*count).enumerate() {
                    acc += rgb[(start + k) * row + i] as i32 * wk;
                }
                *value = clip8(acc);
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let img: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_bicubic(&img, 4, 3, 4, 3), img);
        let flat = vec![200u8; 10 * 7 * 3];
        for (w, h) in [(3, 2), (25, 13), (10, 1), (1, 30)] {
            assert!(resize_bicubic(&flat, 10, 7, w, h).iter().all(|&v| v == 200));
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (input, output) in [(500, 336), (10, 336), (1000, 7), (336, 336)] {
            let c = coefficients(input, output);
            for w in &c.weights {
                let sum: i64 = w.iter().map(|&v| v as i64).sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= w.len() as i64,
                    "{input}->{output}"
                );
            }
        }
    }
}
