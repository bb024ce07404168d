use burn::tensor::{Bool, DType, Device, Int, Tensor};

/// The additive attention bias, `[batch, 1, q_len, key_slots]`, f32: 0 where a query may
/// attend, the most negative f32 elsewhere (as transformers uses `finfo.min`, so a fully
/// masked row of a padding position stays finite instead of NaN). `key_slots` is at least
/// `past + q_len`; slots beyond that (the unused tail of a preallocated KV cache, which
/// attention reads whole rather than copying a slice of it) are masked by causality.
///
/// Query `i` sits at cache slot `past + i` and may see key slot `j` when `j ≤ past + i`, when
/// `past + i − j < window` if the layer has a window (transformers'
/// `kv_idx > q_idx − sliding_window`), and when `key_valid[b, j]` (left padding).
pub(crate) fn attention_bias(
    batch: usize,
    q_len: usize,
    past: usize,
    key_slots: usize,
    key_valid: Option<&Tensor<2, Bool>>,
    window: Option<usize>,
    device: &Device,
) -> Tensor<4> {
    let k_len = key_slots.max(past + q_len);
    let rows = Tensor::<1, Int>::arange(past as i64..(past + q_len) as i64, device)
        .reshape([q_len, 1])
        .expand([q_len, k_len]);
    let cols = Tensor::<1, Int>::arange(0..k_len as i64, device)
        .reshape([1, k_len])
        .expand([q_len, k_len]);
    let mut allowed = cols.clone().lower_equal(rows.clone());
    if let Some(w) = window {
        allowed = allowed.bool_and(cols.greater(rows.sub_scalar(w as i64)));
    }
    let mut allowed = allowed
        .reshape([1, 1, q_len, k_len])
        .expand([batch, 1, q_len, k_len]);
    if let Some(valid) = key_valid {
        let known = valid.dims()[1];
        let valid = if known < k_len {
            let tail = Tensor::<2, Bool>::full([batch, k_len - known], true, device);
            Tensor::cat(vec![valid.clone(), tail], 1)
        } else {
            valid.clone()
        };
        let valid = valid
            .reshape([batch, 1, 1, k_len])
            .expand([batch, 1, q_len, k_len]);
        allowed = allowed.bool_and(valid);
    }
    Tensor::<4>::zeros([batch, 1, q_len, k_len], (device, DType::F32))
        .mask_fill(allowed.bool_not(), f32::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn allowed(bias: Tensor<4>) -> Vec<Vec<u8>> {
        let [_, _, q, k] = bias.dims();
        let v = bias.try_into_vec_as::<f32>().unwrap();
        (0..q)
            .map(|i| (0..k).map(|j| (v[i * k + j] == 0.0) as u8).collect())
            .collect()
    }

    #[test]
    fn causal_with_window_and_past() {
        let device = Device::flex();
        let b = attention_bias(1, 3, 2, 5, None, Some(2), &device);
        // queries at slots 2, 3, 4 over keys 0..5, window 2
        assert_eq!(
            allowed(b),
            vec![
                vec![0, 1, 1, 0, 0],
                vec![0, 0, 1, 1, 0],
                vec![0, 0, 0, 1, 1]
            ]
        );
    }

    #[test]
    fn left_padding_hides_keys() {
        let device = Device::flex();
        let valid =
            Tensor::<2, Bool>::from_data(TensorData::new(vec![false, true, true], [1, 3]), &device);
        let b = attention_bias(1, 3, 0, 3, Some(&valid), None, &device);
        assert_eq!(
            allowed(b),
            vec![vec![0, 0, 0], vec![0, 1, 0], vec![0, 1, 1]]
        );
    }

    #[test]
    fn unused_cache_slots_are_hidden() {
        let device = Device::flex();
        let valid =
            Tensor::<2, Bool>::from_data(TensorData::new(vec![false, true, true], [1, 3]), &device);
        // One query at slot 2 over a cache of 5 slots: slots 3 and 4 are not written yet.
        let b = attention_bias(1, 1, 2, 5, Some(&valid), None, &device);
        assert_eq!(allowed(b), vec![vec![0, 1, 1, 0, 0]]);
    }
}
