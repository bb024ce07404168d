//! Which kernel family a product or reduction of a given shape takes on CUDA. Pure functions of
//! the shape, so the choice is tested without a GPU; `cuda/` maps them to cubek strategies.

/// Rows per batch up to which a product is decode-shaped (one row per sequence, a few
/// sequences or a query head group).
pub const SMALL_M: usize = 16;

/// Decode rows from which a wide product takes [`MatmulPlan::SmallWide`].
pub const WIDE_ROWS: usize = 8;

/// Output width from which a decode product is wide.
pub const WIDE_N: usize = 8192;

/// The list of matmul strategies a product takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulPlan {
    /// Decode-shaped: the plane-per-output dot product.
    Small,
    /// Decode-shaped with 8–16 rows against a wide weight (gate/up, `lm_head` at batch 8–16):
    /// the dot product reads the weight once per row there, so the tensor-core kernel, which
    /// reads it once, wins (sweep, 16 rows: gate/up 143 against 466 µs, `lm_head` 203 against
    /// 1024 µs).
    SmallWide,
    /// A projection at prefill in half precision with k and n multiples of 64: the
    /// warp-specialised TMA kernel, the shapes it was validated on.
    Large,
    /// Batched products in half precision with k and n multiples of 64 (prefill attention:
    /// queries against the cache, probabilities against the values). Its own list so it can be
    /// tuned apart (`LLAVA_MATMUL_BATCHED`); burn's default for now: the TMA kernel the sweep
    /// timed at 0.36 ms (burn's default: 2.5 ms) accepts these problems and then fails at
    /// launch ("tile shape must be non-zero and <= 256"; docs/benchmarks/history.md).
    Batched,
    /// Anything else (f32, odd sizes): burn's default kernel.
    Default,
}

/// The plan for `m × k · k × n` products, `batched` when they have leading batch dims, `half`
/// for bf16/f16 operands.
pub fn matmul_plan(m: usize, k: usize, n: usize, batched: bool, half: bool) -> MatmulPlan {
    if m <= SMALL_M {
        if m >= WIDE_ROWS && n >= WIDE_N && !batched {
            MatmulPlan::SmallWide
        } else {
            MatmulPlan::Small
        }
    } else if half && k.is_multiple_of(64) && n.is_multiple_of(64) {
        if batched {
            MatmulPlan::Batched
        } else {
            MatmulPlan::Large
        }
    } else {
        MatmulPlan::Default
    }
}

/// Rows of `x` up to which the decode GEMV kernel runs (a batch of a few sequences).
pub const GEMV_MAX_ROWS: usize = 4;

/// Output width from which each plane of the GEMV kernel takes two weight rows instead of one
/// (fewer, longer planes once there are enough of them to fill the GPU).
pub const GEMV_TWO_ROWS_FROM: usize = 8192;

/// How the GEMV kernel runs `x · Wᵀ`: `rows` rows of `x` `[rows, k]`, a weight `[n, k]`,
/// `per_plane` weight rows per plane, read as vectors of `vector` elements (16 bytes); rows of
/// `x` start `x_row` elements apart and rows of the weight `w_row` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemvPlan {
    pub rows: usize,
    pub k: usize,
    pub n: usize,
    pub per_plane: usize,
    pub vector: usize,
    pub x_row: usize,
    pub w_row: usize,
}

/// The GEMV plan for `x` (shape, strides) against a weight `[n, k]` (shape, strides) of
/// `elem_bytes`-byte elements, or `None` where the kernel does not apply: both 2-D with unit
/// last strides and row strides of whole 16-byte vectors (cubecl pads rows to such pitches),
/// `x` of 1..=[`GEMV_MAX_ROWS`] rows, and `k` a whole number of vectors.
pub fn gemv_plan(
    x_shape: &[usize],
    x_strides: &[usize],
    w_shape: &[usize],
    w_strides: &[usize],
    elem_bytes: usize,
) -> Option<GemvPlan> {
    let (&[rows, k], &[n, wk]) = (x_shape, w_shape) else {
        return None;
    };
    if elem_bytes == 0 || 16 % elem_bytes != 0 {
        return None;
    }
    let vector = 16 / elem_bytes;
    let (&[x_row, 1], &[w_row, 1]) = (x_strides, w_strides) else {
        return None;
    };
    let rows_apart = (rows == 1 || x_row >= k) && (n == 1 || w_row >= k);
    let whole = [k, x_row, w_row].iter().all(|v| v.is_multiple_of(vector));
    let fits = (1..=GEMV_MAX_ROWS).contains(&rows) && wk == k && k > 0 && n > 0;
    if !rows_apart || !whole || !fits {
        return None;
    }
    let per_plane = if n >= GEMV_TWO_ROWS_FROM { 2 } else { 1 };
    Some(GemvPlan {
        rows,
        k,
        n,
        per_plane,
        vector,
        x_row,
        w_row,
    })
}

/// The widest vector (elements, 16 bytes at most) that divides every one of `lengths` (a
/// dim and strides, in elements) and keeps every byte offset in `offsets` aligned to it.
pub fn vector_width(elem_bytes: usize, lengths: &[usize], offsets: &[usize]) -> usize {
    let mut width = if elem_bytes == 0 || elem_bytes > 16 {
        1
    } else {
        16 / elem_bytes
    };
    while width > 1
        && !(lengths.iter().all(|l| l.is_multiple_of(width))
            && offsets.iter().all(|o| o.is_multiple_of(width * elem_bytes)))
    {
        width /= 2;
    }
    width
}

/// Threads a cube for the row kernels (one cube a row) over rows of `vectors` vectors: a power
/// of two from one plane (32) to `most`, about one vector a thread. The plane sums need whole
/// planes, and the cube sum at most `most / 32` of them.
pub fn row_threads(vectors: usize, most: usize) -> usize {
    vectors.next_power_of_two().clamp(32, most.max(32))
}

/// The reduce routine for `rows` rows of `len`: one cube per row for a few long rows (a decode
/// step's norm, the logits), one plane per row for many (softmax rows, prefill norms), one unit
/// per row only for short rows.
pub fn reduce_routine(rows: usize, len: usize) -> &'static str {
    if len >= 1024 && rows <= 8 {
        "cube"
    } else if len >= 64 {
        "plane"
    } else {
        "unit"
    }
}

/// Scores a thread of the attention-probabilities kernel holds in registers for rows of `keys`
/// keys over `block` threads (a power of two from 4, so few variants are compiled), or `None`
/// past 16, where the kernel reads the row three times instead.
pub fn probs_per_thread(keys: usize, block: usize) -> Option<usize> {
    let per = keys.div_ceil(block).next_power_of_two().max(4);
    (per <= 16).then_some(per)
}

/// One operand's layout as cuBLAS (column-major) reads it: whether it is transposed, its
/// leading dimension and its batch stride, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlasOperand {
    /// Read transposed (`CUBLAS_OP_T`).
    pub transposed: bool,
    /// Leading dimension.
    pub ld: usize,
    /// Elements between batches (0 for one batch).
    pub batch_stride: usize,
}

/// The layout of a row-major `[.., rows, cols]` operand with `strides` (elements), seen by
/// cuBLAS as the column-major `[cols, rows]` it is in memory, or `None` when neither of its
/// last two dims is contiguous or its batch dims do not nest into one stride.
pub fn blas_operand(shape: &[usize], strides: &[usize]) -> Option<BlasOperand> {
    let d = shape.len();
    let (rows, cols) = (shape[d - 2], shape[d - 1]);
    let (row_stride, col_stride) = (strides[d - 2], strides[d - 1]);
    let (transposed, ld) = if col_stride == 1 && row_stride >= cols.max(1) {
        (false, row_stride)
    } else if row_stride == 1 && col_stride >= rows.max(1) {
        (true, col_stride)
    } else {
        return None;
    };
    // Batch dims of size 1 have no stride to keep; the others must step as one flat index.
    let batch: Vec<(usize, usize)> = shape[..d - 2]
        .iter()
        .zip(&strides[..d - 2])
        .filter(|(n, _)| **n > 1)
        .map(|(n, s)| (*n, *s))
        .collect();
    let nested = batch.windows(2).all(|w| w[0].1 == w[1].1 * w[1].0);
    if !nested {
        return None;
    }
    let batch_stride = batch.last().map_or(0, |(_, s)| *s);
    Some(BlasOperand {
        transposed,
        ld,
        batch_stride,
    })
}

/// [`blas_operand`] for a batched operand whose batch dims need not nest: its last batch dim
/// is cuBLAS's batch, and the dims before it are looped over, one call each at the returned
/// element offsets (`[n, heads, s, d]` views of `[n, s, heads·d]` activations take this).
pub fn blas_operand_split(shape: &[usize], strides: &[usize]) -> Option<(BlasOperand, Vec<usize>)> {
    let d = shape.len();
    if d < 3 {
        return blas_operand(shape, strides).map(|op| (op, vec![0]));
    }
    let inner = blas_operand(&shape[d - 3..], &strides[d - 3..])?;
    let (outer, outer_strides) = (&shape[..d - 3], &strides[..d - 3]);
    let count: usize = outer.iter().product();
    let offsets = (0..count)
        .map(|index| {
            let mut rest = index;
            let mut offset = 0;
            for (n, stride) in outer.iter().zip(outer_strides).rev() {
                offset += (rest % n) * stride;
                rest /= n;
            }
            offset
        })
        .collect();
    Some((inner, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_rows_up_to_4096_keys_are_held_in_registers() {
        assert_eq!(probs_per_thread(1, 256), Some(4));
        assert_eq!(probs_per_thread(1024, 256), Some(4));
        assert_eq!(probs_per_thread(1025, 256), Some(8));
        assert_eq!(probs_per_thread(3072, 256), Some(16));
        assert_eq!(probs_per_thread(4096, 256), Some(16));
        assert_eq!(probs_per_thread(4097, 256), None);
    }

    #[test]
    fn decode_products_take_the_dot_product_and_prefill_projections_the_tma_kernel() {
        use MatmulPlan::*;
        // Mistral-7B: a decode GEMV, batch 16, a query group against the cache.
        assert_eq!(matmul_plan(1, 4096, 14336, false, true), Small);
        assert_eq!(matmul_plan(16, 14336, 4096, false, true), Small);
        // Batch 8–16 against a wide weight: gate/up and lm_head.
        assert_eq!(matmul_plan(16, 4096, 14336, false, true), SmallWide);
        assert_eq!(matmul_plan(8, 4096, 32064, false, true), SmallWide);
        assert_eq!(matmul_plan(4, 4096, 32064, false, true), Small);
        assert_eq!(matmul_plan(16, 4096, 4096, false, true), Small);
        assert_eq!(matmul_plan(4, 128, 3072, true, true), Small);
        // Prefill projections in bf16.
        assert_eq!(matmul_plan(2958, 4096, 1024, false, true), Large);
        // Prefill attention against a cache of 3072 slots: scores, then probabilities · V.
        assert_eq!(matmul_plan(11832, 128, 3072, true, true), Batched);
        assert_eq!(matmul_plan(11832, 3072, 128, true, true), Batched);
        // Sizes off the 64 grid (the vision tower's 577 patches): the default.
        assert_eq!(matmul_plan(577, 64, 577, true, true), Default);
        assert_eq!(matmul_plan(2958, 4096, 4096, false, false), Default);
        assert_eq!(matmul_plan(30, 32, 48, false, true), Default);
        assert_eq!(matmul_plan(2958, 4096, 1000, false, true), Default);
    }

    #[test]
    fn reductions_spread_long_rows_over_a_cube_and_many_rows_over_planes() {
        assert_eq!(reduce_routine(1, 32064), "cube"); // logits
        assert_eq!(reduce_routine(1, 4096), "cube"); // a decode step's norm
        assert_eq!(reduce_routine(32, 3072), "plane"); // decode softmax rows
        assert_eq!(reduce_routine(2958, 4096), "plane"); // prefill norms
        assert_eq!(reduce_routine(4, 16), "unit");
    }

    #[test]
    fn layouts_map_to_cublas_operands() {
        // Activations [m, k] row-major.
        let x = blas_operand(&[2958, 4096], &[4096, 1]).unwrap();
        assert_eq!((x.transposed, x.ld, x.batch_stride), (false, 4096, 0));
        // A weight [n, k] read as its transpose [k, n].
        let w = blas_operand(&[4096, 1024], &[1, 4096]).unwrap();
        assert_eq!((w.transposed, w.ld), (true, 4096));
        // Keys of a cache [1, 8, 3072, 128] read as [1, 8, 128, 3072]: one batch stride.
        let kt = blas_operand(&[1, 8, 128, 3072], &[8 * 3072 * 128, 3072 * 128, 1, 128]).unwrap();
        assert_eq!(
            (kt.transposed, kt.ld, kt.batch_stride),
            (true, 128, 3072 * 128)
        );
        // Values: a cache prefix [1, 8, 2000, 128] of 3072 slots.
        let v = blas_operand(&[1, 8, 2000, 128], &[8 * 3072 * 128, 3072 * 128, 128, 1]).unwrap();
        assert_eq!(
            (v.transposed, v.ld, v.batch_stride),
            (false, 128, 3072 * 128)
        );
        // Batches [2, 8] that do not nest (a gap between the rows of the outer dim).
        assert_eq!(blas_operand(&[2, 8, 4, 4], &[1000, 16, 4, 1]), None);
        // ... which are looped over: the outer dim at offsets 0 and 1000, the inner one batched.
        let (inner, offsets) = blas_operand_split(&[2, 8, 4, 4], &[1000, 16, 4, 1]).unwrap();
        assert_eq!(
            (inner.transposed, inner.ld, inner.batch_stride),
            (false, 4, 16)
        );
        assert_eq!(offsets, vec![0, 1000]);
        // Vision keys: [5, 16, 577, 64] heads of [5, 577, 1024] read transposed, 5 calls.
        let (kt, offsets) =
            blas_operand_split(&[5, 16, 64, 577], &[577 * 1024, 64, 1, 1024]).unwrap();
        assert_eq!((kt.transposed, kt.ld, kt.batch_stride), (true, 1024, 64));
        assert_eq!(offsets, (0..5).map(|i| i * 577 * 1024).collect::<Vec<_>>());
        // Neither inner dim contiguous.
        assert_eq!(blas_operand(&[4, 4], &[8, 2]), None);
    }

    #[test]
    fn decode_projections_take_the_gemv_kernel_with_two_rows_per_plane_when_wide() {
        // bf16 q projection at batch 1: [1, 4096] against [4096, 4096].
        let q = gemv_plan(&[1, 4096], &[4096, 1], &[4096, 4096], &[4096, 1], 2).unwrap();
        let plan = GemvPlan {
            rows: 1,
            k: 4096,
            n: 4096,
            per_plane: 1,
            vector: 8,
            x_row: 4096,
            w_row: 4096,
        };
        assert_eq!(q, plan);
        // Pitched rows (cubecl pads a row of 1032 bf16 values to 1280).
        let pitched = gemv_plan(&[2, 1032], &[1280, 1], &[9, 1032], &[1280, 1], 2).unwrap();
        assert_eq!(
            (pitched.k, pitched.x_row, pitched.w_row),
            (1032, 1280, 1280)
        );
        // gate/up of the 7B MLP and lm_head: wide, two weight rows a plane.
        let up = gemv_plan(&[4, 4096], &[4096, 1], &[14336, 4096], &[4096, 1], 2).unwrap();
        assert_eq!((up.rows, up.per_plane), (4, 2));
        // f32 reads vectors of 4.
        assert_eq!(
            gemv_plan(&[1, 64], &[64, 1], &[8, 64], &[64, 1], 4)
                .unwrap()
                .vector,
            4
        );
    }

    #[test]
    fn the_gemv_kernel_declines_what_it_cannot_read_as_rows_of_vectors() {
        // More rows than a decode batch it holds.
        assert!(gemv_plan(&[5, 4096], &[4096, 1], &[8, 4096], &[4096, 1], 2).is_none());
        // k not a whole number of 16-byte vectors.
        assert!(gemv_plan(&[1, 588], &[588, 1], &[8, 588], &[588, 1], 2).is_none());
        // A transposed weight view, overlapping or misaligned rows, mismatched k.
        assert!(gemv_plan(&[1, 64], &[64, 1], &[8, 64], &[1, 8], 2).is_none());
        assert!(gemv_plan(&[2, 64], &[32, 1], &[8, 64], &[64, 1], 2).is_none());
        assert!(gemv_plan(&[2, 64], &[68, 1], &[8, 64], &[64, 1], 2).is_none());
        assert!(gemv_plan(&[1, 64], &[64, 1], &[8, 72], &[72, 1], 2).is_none());
        // Not 2-D.
        assert!(gemv_plan(&[1, 1, 64], &[64, 64, 1], &[8, 64], &[64, 1], 2).is_none());
    }

    #[test]
    fn vectors_are_as_wide_as_every_stride_and_offset_allows() {
        // A bf16 cache [b, kv, slots, 128], whole buffer: 16-byte vectors.
        assert_eq!(
            vector_width(2, &[128, 8 * 3072 * 128, 3072 * 128, 128], &[0]),
            8
        );
        // Head dim 12 in f32: three vectors of 4.
        assert_eq!(vector_width(4, &[12, 12], &[0]), 4);
        // Head dim 12 in bf16: vectors of 4 (8 bytes).
        assert_eq!(vector_width(2, &[12, 12], &[0]), 4);
        // An offset of 4 bytes into the buffer allows bf16 pairs only.
        assert_eq!(vector_width(2, &[128], &[4]), 2);
        assert_eq!(vector_width(2, &[7], &[0]), 1);
    }

    #[test]
    fn row_threads_are_whole_planes_about_one_vector_each() {
        // The tower's LayerNorm (1024 bf16 = 128 vectors), the 7B's RMSNorm (512 vectors),
        // a short row, and the cap.
        assert_eq!(row_threads(128, 256), 128);
        assert_eq!(row_threads(512, 256), 256);
        assert_eq!(row_threads(3, 256), 32);
        assert_eq!(row_threads(129, 256), 256);
        assert_eq!(row_threads(100, 64), 64);
    }
}
