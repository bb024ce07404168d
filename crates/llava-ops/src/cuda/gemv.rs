//! The decode GEMV `x · Wᵀ` for a weight stored `[n, k]` (a linear layer's `[out, in]`) and at
//! most [`crate::choice::GEMV_MAX_ROWS`] rows of `x`: one plane (32 lanes) per one or two
//! weight rows, 16-byte vector loads along `k`, f32 accumulation, one plane sum per output.
//! On an H200 it moves the weights at 2.6–4.2 TB/s where cubek's `gemm` reaches 1.1–4.0
//! (`xtask bench-ops`, 7B and 72B shapes); a batch-1 decode step is this product over every
//! weight, so its rate is the step's rate.

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

use crate::choice::{GemvPlan, gemv_plan};

/// Threads of a cube: 8 planes.
const BLOCK: usize = 256;
/// Vector loads in flight per lane and weight row (the loop over `k` unrolled this far).
const UNROLL: usize = 4;

/// `out[i, row] = Σ_k x[i, k] · w[row, k]` for `rows` rows of `x` `[rows, k]` and `per_plane`
/// weight rows per plane (`w` `[n, k]`), both read as vectors of `N` with rows `x_row` and
/// `w_row` vectors apart (cubecl pitches rows).
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
fn gemv_planes<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    w: &Tensor<Vector<F, N>>,
    out: &mut Tensor<F>,
    k_vectors: u32,
    x_row: u32,
    w_row: u32,
    outputs: u32,
    #[comptime] rows: usize,
    #[comptime] per_plane: usize,
    #[comptime] unroll: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = UNIT_POS_X as usize / PLANE_DIM as usize;
    let planes = CUBE_DIM_X as usize / PLANE_DIM as usize;
    let first = (CUBE_POS_X as usize * planes + plane) * per_plane;
    let strides = (k_vectors as usize, x_row as usize, w_row as usize);
    plane_rows_dot::<F, N>(
        x,
        w,
        out,
        first,
        outputs as usize,
        strides,
        rows,
        per_plane,
        unroll,
    );
}

/// The plane's share of [`gemv_planes`]: weight rows `first..first + per_plane` of `w` (`n`
/// rows) against `rows` rows of `x`, `(k, x_row, w_row)` in vectors; lane 0 writes
/// `out[i, row]` for the rows below `n`. Rows past the end read the last row (kept in bounds)
/// and are not written.
// The `a = a + b` form on local arrays, as validated on the GPU.
#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)]
#[cube]
pub(super) fn plane_rows_dot<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    w: &Tensor<Vector<F, N>>,
    out: &mut Tensor<F>,
    first: usize,
    n: usize,
    strides: (usize, usize, usize),
    #[comptime] rows: usize,
    #[comptime] per_plane: usize,
    #[comptime] unroll: usize,
) {
    let lane = UNIT_POS_PLANE as usize;
    let (kv, x_row, w_row) = strides;
    let width = PLANE_DIM as usize;

    let mut acc = Array::<f32>::new(rows * per_plane);
    #[unroll]
    for i in 0..rows * per_plane {
        acc[i] = f32::new(0.0);
    }
    let mut j = lane;
    while j < kv {
        #[unroll]
        for u in 0..unroll {
            let jj = j + u * width;
            if jj < kv {
                #[unroll]
                for r in 0..per_plane {
                    let mut row = first + r;
                    if row >= n {
                        row = n - 1;
                    }
                    let wv = w[row * w_row + jj];
                    #[unroll]
                    for i in 0..rows {
                        let xv = x[i * x_row + jj];
                        let mut dot = f32::new(0.0);
                        #[unroll]
                        for e in 0..N::value() {
                            dot += f32::cast_from(wv.extract(e)) * f32::cast_from(xv.extract(e));
                        }
                        acc[i * per_plane + r] = acc[i * per_plane + r] + dot;
                    }
                }
            }
        }
        j += unroll * width;
    }
    #[unroll]
    for i in 0..rows {
        #[unroll]
        for r in 0..per_plane {
            let total = plane_sum(acc[i * per_plane + r]);
            if lane == 0 && first + r < n {
                out[i * n + first + r] = F::cast_from(total);
            }
        }
    }
}

/// The GEMV plan of `x` against `w` when both (and `others`, weights read beside `w` with its
/// row stride) are bf16/f16 of one dtype at 16-byte aligned offsets; `None` otherwise.
pub(super) fn half_plan(
    x: &CubeTensor,
    w: &CubeTensor,
    others: &[&CubeTensor],
) -> Option<GemvPlan> {
    let dtype = x.dtype;
    let half = matches!(dtype, DType::BF16 | DType::F16);
    let weights = || std::iter::once(w).chain(others.iter().copied());
    let same = weights().all(|o| o.dtype == dtype && o.meta.strides() == w.meta.strides());
    let aligned = std::iter::once(x)
        .chain(weights())
        .all(|t| super::offset_bytes(t).is_multiple_of(16));
    if !half || !same || !aligned {
        return None;
    }
    gemv_plan(
        x.meta.shape(),
        x.meta.strides(),
        w.meta.shape(),
        w.meta.strides(),
        dtype.size(),
    )
}

/// `x · wᵀ` for `x` `[rows, k]` and a weight `w` `[n, k]` (unit last strides) when [`gemv_plan`]
/// takes them; `None` otherwise. Half precision only, output `[rows, n]` in the input's dtype.
pub fn gemv(x: &CubeTensor, w: &CubeTensor) -> Option<CubeTensor> {
    let dtype = x.dtype;
    let GemvPlan {
        rows,
        k,
        n,
        per_plane,
        vector,
        x_row,
        w_row,
    } = half_plan(x, w, &[])?;
    let client = x.client.clone();
    let out =
        empty_device_contiguous_dtype(client.clone(), x.device.clone(), [rows, n].into(), dtype);
    let cubes = n.div_ceil(per_plane * BLOCK / 32);
    gemv_planes::launch(
        &client,
        CubeCount::Static(cubes as u32, 1, 1),
        CubeDim::new_1d(BLOCK as u32),
        vector,
        x.clone().into_tensor_arg(),
        w.clone().into_tensor_arg(),
        out.clone().into_tensor_arg(),
        (k / vector) as u32,
        (x_row / vector) as u32,
        (w_row / vector) as u32,
        n as u32,
        rows,
        per_plane,
        UNROLL,
        dtype_to_storage_type(dtype),
    );
    Some(out)
}

/// [`gemv`] on burn tensors (`x` `[rows, k]`, `weight` `[n, k]`), whether or not the model
/// takes it: for `xtask bench-ops` and the kernel tests.
pub fn gemv_tensors(x: &BurnTensor<2>, weight: &BurnTensor<2>) -> Option<BurnTensor<2>> {
    let (l, r) = (super::on_cuda(x)?, super::on_cuda(weight)?);
    let key = || format!("gemv {:?} x {:?} {:?}", x.dims(), weight.dims(), l.dtype);
    super::stats::timed(key, || {
        gemv(&l, &r).map(BurnTensor::from_primitive::<CubeBackend>)
    })
}
