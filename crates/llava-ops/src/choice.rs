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
    /// launch ("tile shape must be non-zero and <= 256", H200, 2026-12-01).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
