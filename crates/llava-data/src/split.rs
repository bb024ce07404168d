//! `#N` sampling and the train/validation split (ms-swift's `dataset_test_ratio`,
//! `../shared/spec/swift-llava.md` §6.3–§6.4), drawn from [`crate::rng`].

use crate::rng::{SplitMix64, permutation};

/// The stream `#N` sampling draws from, apart from the split's (`seed`'s own stream).
const SAMPLE_STREAM: u64 = 0x5341_4d50_4c45; // "SAMPLE"

/// `n` of `rows`: when `n` ≤ the rows, the first `n` of a permutation (kept in file order);
/// beyond that, every row once and the rest drawn with replacement, as ms-swift does.
pub fn sample<T: Clone>(rows: Vec<T>, n: usize, seed: u64) -> Vec<T> {
    let len = rows.len();
    if len == 0 {
        return rows;
    }
    if n <= len {
        let mut keep = permutation(len, seed ^ SAMPLE_STREAM)[..n].to_vec();
        keep.sort_unstable();
        return keep.into_iter().map(|i| rows[i].clone()).collect();
    }
    let mut rng = SplitMix64::new(seed ^ SAMPLE_STREAM);
    let extra: Vec<usize> = (0..n - len).map(|_| rng.below(len)).collect();
    let mut out = rows.clone();
    out.extend(extra.into_iter().map(|i| rows[i].clone()));
    out
}

/// How many rows the validation split takes from `len`: `max(⌊len·ratio⌋, 1)`, none when the
/// ratio is 0.
pub fn validation_size(len: usize, ratio: f64) -> usize {
    if ratio <= 0.0 || len == 0 {
        0
    } else {
        ((len as f64 * ratio).floor() as usize).max(1).min(len)
    }
}

/// `(train, validation)`: the validation rows are the first [`validation_size`] of the
/// permutation of `seed`; both parts keep file order.
pub fn train_validation_split<T: Clone>(rows: Vec<T>, ratio: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let len = rows.len();
    let val = validation_size(len, ratio);
    if val == 0 {
        return (rows, Vec::new());
    }
    let perm = permutation(len, seed);
    let mut is_val = vec![false; len];
    for &i in &perm[..val] {
        is_val[i] = true;
    }
    let mut train = Vec::with_capacity(len - val);
    let mut validation = Vec::with_capacity(val);
    for (row, v) in rows.into_iter().zip(is_val) {
        if v {
            validation.push(row);
        } else {
            train.push(row);
        }
    }
    (train, validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_takes_at_least_one_row_and_is_seeded() {
        assert_eq!(validation_size(40_504, 0.01), 405);
        assert_eq!(validation_size(10, 0.01), 1);
        assert_eq!(validation_size(10, 0.0), 0);
        let rows: Vec<usize> = (0..20).collect();
        let (train, val) = train_validation_split(rows.clone(), 0.1, 42);
        assert_eq!((train.len(), val.len()), (18, 2));
        assert!(val.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, rows);
        assert_eq!(train_validation_split(rows.clone(), 0.1, 42).1, val);
        assert_ne!(train_validation_split(rows, 0.1, 7).1, val);
    }

    #[test]
    fn sampling_below_and_beyond_the_size() {
        let rows: Vec<usize> = (0..5).collect();
        let few = sample(rows.clone(), 3, 1);
        assert_eq!(few.len(), 3);
        assert!(few.windows(2).all(|w| w[0] < w[1]));
        let many = sample(rows.clone(), 12, 1);
        assert_eq!(many.len(), 12);
        assert_eq!(&many[..5], &rows[..]);
        assert!(many.iter().all(|r| *r < 5));
    }
}
