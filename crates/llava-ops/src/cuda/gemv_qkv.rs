//! The decode step's three attention projections in one launch: `x · W_qᵀ`, `x · W_kᵀ` and
//! `x · W_vᵀ` for a few rows of `x`, written to three outputs. Each plane takes one weight row of
//! one of the three (the GEMV of `gemv.rs`: 16-byte loads along `k`, f32 sums, one plane sum per
//! output), so the results equal three `gemv` calls. The key and value projections of a
//! grouped-query model are small (8 MB each for Mistral) and mostly launch and tail: one launch
//! over all 6144 rows instead of three. The planes run `gemv.rs`'s `plane_rows_dot`.
//!
//! On by default (`LLAVA_OPS_OFF=gemv_qkv` turns it off; measured faster than three launches,
//! docs/knobs.md). `crates/llava-ops/tests/cuda_kernels.rs` compares it with three `gemv` calls.

use burn::tensor::Tensor as BurnTensor;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

use super::gemv::{half_plan, plane_rows_dot};
use crate::choice::GemvPlan;

/// Threads of a cube: 8 planes, one weight row each.
const BLOCK: usize = 256;
/// Vector loads in flight per lane.
const UNROLL: usize = 4;

/// Plane `p` (over the whole grid) takes row `p` of `[w_q; w_k; w_v]` stacked.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
fn gemv_qkv_planes<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    w_q: &Tensor<Vector<F, N>>,
    w_k: &Tensor<Vector<F, N>>,
    w_v: &Tensor<Vector<F, N>>,
    out_q: &mut Tensor<F>,
    out_k: &mut Tensor<F>,
    out_v: &mut Tensor<F>,
    k_vectors: u32,
    x_row: u32,
    w_rows: u32,
    n_q: u32,
    n_kv: u32,
    #[comptime] rows: usize,
    #[comptime] unroll: usize,
    #[define(F)] _dtype: ElemType,
) {
    let plane = UNIT_POS_X as usize / PLANE_DIM as usize;
    let planes = CUBE_DIM_X as usize / PLANE_DIM as usize;
    let p = CUBE_POS_X as usize * planes + plane;
    let strides = (k_vectors as usize, x_row as usize, w_rows as usize);
    let (n_q, n_kv) = (n_q as usize, n_kv as usize);
    // Planes past the end of `w_v` read its last row and write nothing (`plane_rows_dot`).
    if p < n_q {
        plane_rows_dot::<F, N>(x, w_q, out_q, p, n_q, strides, rows, 1usize, unroll);
    } else if p < n_q + n_kv {
        plane_rows_dot::<F, N>(x, w_k, out_k, p - n_q, n_kv, strides, rows, 1usize, unroll);
    } else {
        let row = p - n_q - n_kv;
        plane_rows_dot::<F, N>(x, w_v, out_v, row, n_kv, strides, rows, 1usize, unroll);
    }
}

/// `(x · w_qᵀ, x · w_kᵀ, x · w_vᵀ)` for `x` `[rows, k]` and weights `[n, k]` (`w_k` and `w_v`
/// of one shape, all three with one row stride), when [`gemv_plan`] takes each; `None`
/// otherwise. Half precision only.
pub fn gemv_qkv(
    x: &CubeTensor,
    w_q: &CubeTensor,
    w_k: &CubeTensor,
    w_v: &CubeTensor,
) -> Option<[CubeTensor; 3]> {
    if w_k.meta.shape() != w_v.meta.shape() {
        return None;
    }
    let dtype = x.dtype;
    let (q_plan, kv_plan) = (half_plan(x, w_q, &[w_k, w_v])?, half_plan(x, w_k, &[w_v])?);
    let GemvPlan {
        rows,
        k,
        vector,
        x_row,
        w_row,
        ..
    } = q_plan;
    let (n_q, n_kv) = (q_plan.n, kv_plan.n);
    let client = x.client.clone();
    let output = |n: usize| {
        empty_device_contiguous_dtype(client.clone(), x.device.clone(), [rows, n].into(), dtype)
    };
    let (out_q, out_k, out_v) = (output(n_q), output(n_kv), output(n_kv));
    let cubes = (n_q + 2 * n_kv).div_ceil(BLOCK / 32);
    gemv_qkv_planes::launch(
        &client,
        CubeCount::Static(cubes as u32, 1, 1),
        CubeDim::new_1d(BLOCK as u32),
        vector,
        x.clone().into_tensor_arg(),
        w_q.clone().into_tensor_arg(),
        w_k.clone().into_tensor_arg(),
        w_v.clone().into_tensor_arg(),
        out_q.clone().into_tensor_arg(),
        out_k.clone().into_tensor_arg(),
        out_v.clone().into_tensor_arg(),
        (k / vector) as u32,
        (x_row / vector) as u32,
        (w_row / vector) as u32,
        n_q as u32,
        n_kv as u32,
        rows,
        UNROLL,
        dtype_to_storage_type(dtype),
    );
    Some([out_q, out_k, out_v])
}

/// [`gemv_qkv`] on burn tensors: `x` `[.., k]` flattened to rows, weights `[n, k]`; each result
/// has `x`'s leading dims and its weight's `n` last. `force` runs it whether or not the model
/// takes it (for the kernel tests); otherwise unless `LLAVA_OPS_OFF=gemv_qkv`.
pub fn gemv_qkv_tensors<const D: usize>(
    x: &BurnTensor<D>,
    [w_q, w_k, w_v]: [&BurnTensor<2>; 3],
    force: bool,
) -> Option<[BurnTensor<D>; 3]> {
    if !force && !super::kernel_on(super::Kernel::GemvQkv) {
        return None;
    }
    let dims = x.dims();
    let k = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    if rows == 0 || rows > crate::choice::GEMV_MAX_ROWS {
        return None;
    }
    let x2 = x.clone().reshape([rows, k]);
    let xc = super::on_cuda(&x2)?;
    let (q, kk, v) = (
        super::on_cuda(w_q)?,
        super::on_cuda(w_k)?,
        super::on_cuda(w_v)?,
    );
    let key = || format!("gemv qkv {rows}x{k} {:?} {:?}", w_q.dims(), xc.dtype);
    let outs = super::stats::timed(key, || {
        gemv_qkv(&xc, &q, &kk, &v).map(|o| o.map(BurnTensor::<2>::from_primitive::<CubeBackend>))
    })?;
    let shaped = |t: BurnTensor<2>, n: usize| {
        let mut shape = dims;
        shape[D - 1] = n;
        t.reshape(shape)
    };
    let [oq, ok, ov] = outs;
    Some([
        shaped(oq, w_q.dims()[0]),
        shaped(ok, w_k.dims()[0]),
        shaped(ov, w_v.dims()[0]),
    ])
}
