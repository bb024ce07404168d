use burn::tensor::{Tensor, TensorData};
use llava_vision::ImageLayout;

/// Packs one image's projected features `[1 + tiles, s², D]` into its token rows
/// `[layout.tokens, D]`: the base tile's `s²` rows, then the tiles as one `(R·s) × (C·s)` map,
/// cropped symmetrically to `layout.unpadded`, resized bilinearly to `layout.features` when
/// OneVision's downscale applies, each row followed by `newline`.
///
/// A single-patch input (no tiles) gives the base rows and one newline, as transformers does.
pub fn pack_image(features: Tensor<3>, layout: &ImageLayout, newline: Tensor<1>) -> Tensor<2> {
    let d = features.dims()[2];
    let rows = pack_images(features.unsqueeze::<4>(), layout, newline);
    let n = rows.dims()[1];
    rows.reshape([n, d])
}

/// [`pack_image`] for `n` images of the same layout at once: `[n, 1 + tiles, s², D]` →
/// `[n, layout.tokens, D]` (the same ops with a leading dim, so a batch's images of one layout
/// take one launch per op, not one per image).
pub fn pack_images(features: Tensor<4>, layout: &ImageLayout, newline: Tensor<1>) -> Tensor<3> {
    let [n, patches, tokens, d] = features.dims();
    let s = (tokens as f64).sqrt().round() as usize;
    let newline = newline.cast(features.dtype());
    let row_newlines = |count: usize| newline.clone().reshape([1, 1, d]).expand([n, count, d]);
    let base = features
        .clone()
        .slice([0..n, 0..1, 0..tokens, 0..d])
        .reshape([n, tokens, d]);
    if patches == 1 {
        return Tensor::cat(vec![base, row_newlines(1)], 1);
    }
    let (rows, cols) = (layout.grid.0 as usize, layout.grid.1 as usize);
    let (h0, w0) = (rows * s, cols * s);
    let (h, w) = (layout.unpadded.0 as usize, layout.unpadded.1 as usize);
    let (fh, fw) = (layout.features.0 as usize, layout.features.1 as usize);
    if fh == 0 {
        return base;
    }
    if fw == 0 {
        // Every column cropped away (a 10×500 image): only the newlines remain.
        return Tensor::cat(vec![base, row_newlines(fh)], 1);
    }
    // [n, R·C, s², D] → [n, R, C, s, s, D] → [n, D, R, s, C, s] → [n, D, R·s, C·s].
    let map = features
        .slice([0..n, 1..patches, 0..tokens, 0..d])
        .reshape([n, rows, cols, s, s, d])
        .permute([0, 5, 1, 3, 2, 4])
        .reshape([n, d, h0, w0]);
    let (top, left) = ((h0 - h) / 2, (w0 - w) / 2);
    let mut map = map.slice([0..n, 0..d, top..top + h, left..left + w]);
    if layout.downscaled {
        let device = map.device();
        let dtype = map.dtype();
        let rows_w =
            Tensor::<2>::from_data(TensorData::new(bilinear_weights(h, fh), [fh, h]), &device);
        let cols_w =
            Tensor::<2>::from_data(TensorData::new(bilinear_weights(w, fw), [fw, w]), &device);
        // In f32 and rounded once, as PyTorch's interpolate accumulates.
        let wide = rows_w
            .unsqueeze::<4>()
            .matmul(map.cast(burn::tensor::DType::F32));
        map = wide.matmul(cols_w.transpose().unsqueeze::<4>()).cast(dtype);
    }
    let with_newline = Tensor::cat(
        vec![map, newline.reshape([1, d, 1, 1]).expand([n, d, fh, 1])],
        3,
    );
    let rows_out = with_newline.reshape([n, d, fh * (fw + 1)]).swap_dims(1, 2);
    Tensor::cat(vec![base, rows_out], 1)
}

/// The `[output, input]` matrix of PyTorch's `interpolate(mode="bilinear",
/// align_corners=False)` along one axis with an explicit output size: source coordinate
/// `max(0, (o + ½)·in/out − ½)`, neighbours `⌊src⌋` and `min(⌊src⌋ + 1, in − 1)`, computed in
/// f32 as PyTorch does for f32 tensors.
pub fn bilinear_weights(input: usize, output: usize) -> Vec<f32> {
    let scale = input as f32 / output as f32;
    let mut m = vec![0f32; output * input];
    for o in 0..output {
        let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        let l1 = src - i0 as f32;
        m[o * input + i0] += 1.0 - l1;
        m[o * input + i1] += l1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_rows_sum_to_one_and_identity_is_identity() {
        let m = bilinear_weights(7, 7);
        for o in 0..7 {
            for i in 0..7 {
                assert_eq!(m[o * 7 + i], if o == i { 1.0 } else { 0.0 });
            }
        }
        let m = bilinear_weights(81, 60);
        for row in m.chunks(81) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        // Halving: output 0 reads source 0.5 → half of 0 and half of 1.
        let m = bilinear_weights(4, 2);
        assert_eq!(&m[..4], &[0.5, 0.5, 0.0, 0.0]);
    }
}
