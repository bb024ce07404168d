use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};

/// Rotary position embedding in the "rotate half" convention of the HF weights (spec §5.1):
/// `q' = q·cos + rot(q)·sin`, `rot(x) = [−x₂, x₁]` over the two halves of the head. burn's
/// `RotaryEncoding` rotates interleaved pairs instead and must not be used on these weights.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    /// `1 / θ^(2i/d)`, computed in f32 as transformers does.
    inv_freq: Vec<f32>,
}

/// cos and signed sin for a batch of positions, `[batch, 1, seq, head_dim]`, in the activation
/// dtype. The sin table carries rotate-half's sign (`[−sin, sin]`), so applying it to the
/// swapped halves `[x₂, x₁]` gives exactly `rot(x)·sin` with one launch fewer per tensor.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Tensor<4>,
    sin_signed: Tensor<4>,
}

impl RotaryEmbedding {
    /// Frequencies for heads of width `head_dim` with base `theta`.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let theta = theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Self { inv_freq }
    }

    /// Tables for `positions` (`[batch, seq]`). Angles are products in f32 (exact as in
    /// transformers' f32 matmul of one-element inner dimension), then cast to `dtype`.
    pub fn tables(&self, positions: Tensor<2, Int>, dtype: DType, device: &Device) -> RopeTables {
        self.tables_from(positions, &self.inv_freq_tensor(device), dtype)
    }

    /// The frequencies as an f32 tensor `[1, 1, head_dim / 2]` on `device`, for
    /// [`RotaryEmbedding::tables_from`].
    pub fn inv_freq_tensor(&self, device: &Device) -> Tensor<3> {
        let half = self.inv_freq.len();
        Tensor::<3>::from_data(
            TensorData::new(self.inv_freq.clone(), [1, 1, half]),
            (device, DType::F32),
        )
    }

    /// [`RotaryEmbedding::tables`] with the frequencies already on the device: only device
    /// ops, so a recorded decode step (which may not copy from the host) can build its tables
    /// from a positions tensor.
    pub fn tables_from(
        &self,
        positions: Tensor<2, Int>,
        inv: &Tensor<3>,
        dtype: DType,
    ) -> RopeTables {
        let [batch, seq] = positions.dims();
        let pos = positions.cast(FloatDType::F32).reshape([batch, seq, 1]);
        let freqs = pos * inv.clone();
        let sin = freqs.clone().sin();
        let cos = freqs.cos();
        let both = |a: Tensor<3>, b: Tensor<3>| Tensor::cat(vec![a, b], 2).unsqueeze_dim::<4>(1);
        RopeTables {
            cos: both(cos.clone(), cos).cast(dtype),
            sin_signed: both(sin.clone().neg(), sin).cast(dtype),
        }
    }
}

impl RopeTables {
    /// The same tables on `device`.
    pub fn moved_to(self, device: &Device) -> Self {
        Self {
            cos: self.cos.to_device(device),
            sin_signed: self.sin_signed.to_device(device),
        }
    }

    /// Rotates `x` `[b, s, heads, d]` (heads after the sequence, as the projections give them).
    pub fn apply_bshd(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, s, d] = self.cos.dims();
        llava_ops::rope_bshd(
            x,
            self.cos.clone().reshape([b, s, d]),
            self.sin_signed.clone().reshape([b, s, d]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_halves_by_position_times_frequency() {
        let device = Device::flex();
        // head_dim 4, θ = 100: inv_freq = [1, 0.1]
        let rope = RotaryEmbedding::new(4, 100.0);
        let pos = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 2], [1, 2]), &device);
        let tables = rope.tables(pos, DType::F32, &device);
        // [b 1, s 2, heads 2, d 4]: both heads of a position rotate alike.
        let x = Tensor::<4>::from_data(
            TensorData::new([1.0f32, 2.0, 3.0, 4.0].repeat(4), [1, 2, 2, 4]),
            &device,
        );
        let y = tables.apply_bshd(x).try_into_vec_as::<f32>().unwrap();
        assert_eq!(
            &y[..8],
            &[1.0, 2.0, 3.0, 4.0].repeat(2),
            "position 0 is the identity"
        );
        // Position 2: pair (x0, x2) rotates by 2 rad, pair (x1, x3) by 0.2 rad.
        let (c0, s0, c1, s1) = (2f32.cos(), 2f32.sin(), 0.2f32.cos(), 0.2f32.sin());
        let expected = [
            1.0 * c0 - 3.0 * s0,
            2.0 * c1 - 4.0 * s1,
            3.0 * c0 + 1.0 * s0,
            4.0 * c1 + 2.0 * s1,
        ];
        for (a, b) in y[8..].iter().zip(expected.repeat(2)) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {expected:?}");
        }
    }
}
