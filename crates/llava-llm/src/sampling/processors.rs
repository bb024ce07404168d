//! Logits processors with transformers' exact semantics. Inputs and outputs are f32
//! `[batch, vocab]`; removed entries become −∞.

use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, TensorData};

/// `RepetitionPenaltyLogitsProcessor`: for every id in `seen[row]` (prompt included), a
/// negative score is multiplied by `penalty`, a positive one divided. Ids outside the
/// vocabulary are ignored, as transformers ignores ids beyond the logits. Unlike transformers,
/// a left-padded row's padding is not penalised: callers pass each row's real ids.
///
/// Rows without an entry in `seen` are left as they are.
pub fn repetition_penalty(scores: Tensor<2>, seen: &[Vec<u32>], penalty: f64) -> Tensor<2> {
    let [batch, vocab] = scores.dims();
    let rows: Vec<Vec<i64>> = (0..batch)
        .map(|row| seen.get(row).map(Vec::as_slice).unwrap_or_default())
        .map(|row| {
            let mut ids: Vec<i64> = row
                .iter()
                .filter(|&&id| (id as usize) < vocab)
                .map(|&id| id as i64)
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        })
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 || penalty == 1.0 {
        return scores;
    }
    // Rows are padded with ids they do not contain, which keep their value: scatter needs
    // unique indices per row.
    let mut index = Vec::with_capacity(batch * width);
    let mut is_pad = Vec::with_capacity(batch * width);
    for row in &rows {
        index.extend(row);
        is_pad.extend(std::iter::repeat_n(false, row.len()));
        let mut filler = (0..vocab as i64).filter(|id| row.binary_search(id).is_err());
        for _ in row.len()..width {
            index.push(filler.next().unwrap_or(0));
            is_pad.push(true);
        }
    }
    let device = scores.device();
    let index = Tensor::<2, Int>::from_data(TensorData::new(index, [batch, width]), &device);
    let is_pad = Tensor::<2, Bool>::from_data(TensorData::new(is_pad, [batch, width]), &device);
    let current = scores.clone().gather(1, index.clone());
    let penalized = current
        .clone()
        .div_scalar(penalty)
        .mask_where(
            current.clone().lower_elem(0.0),
            current.clone().mul_scalar(penalty),
        )
        .mask_where(is_pad, current);
    scores.scatter(1, index, penalized, IndexingUpdateOp::Assign)
}

/// `TemperatureLogitsWarper`: `scores / t`.
pub fn temperature(scores: Tensor<2>, t: f64) -> Tensor<2> {
    scores.div_scalar(t)
}

/// `TopKLogitsWarper`: removes every score below the k-th largest of its row; ties with the
/// k-th are kept.
pub fn top_k(scores: Tensor<2>, k: usize) -> Tensor<2> {
    let [_, vocab] = scores.dims();
    let k = k.clamp(1, vocab);
    let kth = scores.clone().topk(k, 1).narrow(1, k - 1, 1);
    let remove = scores.clone().lower(kth.expand(scores.shape()));
    scores.mask_fill(remove, f32::NEG_INFINITY)
}

/// `TopPLogitsWarper` (with `min_tokens_to_keep = 1`): sorts ascending, removes the tokens
/// whose cumulative probability is ≤ 1 − p, always keeping the most likely one.
pub fn top_p(scores: Tensor<2>, p: f64) -> Tensor<2> {
    let [batch, vocab] = scores.dims();
    let (sorted, order) = scores.clone().sort_with_indices(1);
    let cumulative = burn::tensor::activation::softmax(sorted, 1).cumsum(1);
    let remove_sorted = cumulative
        .lower_equal_elem(1.0 - p)
        .float()
        .slice_fill([0..batch, vocab - 1..vocab], 0.0);
    // Back to vocabulary order: `order` is a permutation, so the scatter has unique indices.
    let remove = scores
        .zeros_like()
        .scatter(1, order, remove_sorted, IndexingUpdateOp::Assign)
        .greater_elem(0.5);
    scores.mask_fill(remove, f32::NEG_INFINITY)
}
