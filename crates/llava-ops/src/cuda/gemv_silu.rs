//! The decode MLP's first half in one kernel: `silu(x · W_gateᵀ) · (x · W_upᵀ)` for a few rows
//! of `x`. It is the GEMV of `gemv.rs` over the gate row and the up row of each output at once,
//! with the SiLU·mul epilogue of `elementwise.rs` and the same roundings: each product rounded to
//! the activation dtype, `silu(gate)` rounded, then the product with `up` rounded. So it gives
//! what the three launches it replaces give (two GEMVs and `silu_mul`), and the intermediate
//! `[rows, intermediate]` tensors are never written.
//!
//! On by default (`LLAVA_OPS_OFF=gemv_silu` turns it off; measured faster than the three
//! launches, docs/knobs.md). `crates/llava-ops/tests/cuda_kernels.rs` compares it with the
//! three-launch path.

use burn::tensor::Tensor as BurnTensor;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

use super::gemv::half_plan;
use crate::choice::GemvPlan;

/// Threads of a cube: 8 planes, one output (a gate row and an up row) each.
const BLOCK: usize = 256;
/// Vector loads in flight per lane and weight row.
const UNROLL: usize = 4;

/// `out[i, row] = silu(Σ_k x[i, k] · gate[row, k]) · Σ_k x[i, k] · up[row, k]`, with the
/// roundings described above; one output per plane, weights `[n, k]` read as vectors of `N`
/// with rows `w_row` vectors apart, `x` rows `x_row` apart.
#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)]
#[cube(launch)]
fn gemv_silu_planes<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    out: &mut Tensor<F>,
    k_vectors: u32,
    x_row: u32,
    w_row: u32,
    outputs: u32,
    #[comptime] rows: usize,
    #[comptime] unroll: usize,
    #[define(F)] _dtype: ElemType,
) {
    let lane = UNIT_POS_PLANE as usize;
    let plane = UNIT_POS_X as usize / PLANE_DIM as usize;
    let planes = CUBE_DIM_X as usize / PLANE_DIM as usize;
    let kv = k_vectors as usize;
    let (x_row, w_row) = (x_row as usize, w_row as usize);
    let n = outputs as usize;
    let width = PLANE_DIM as usize;
    // Planes past the end read the last row (kept in bounds); their sums are not written.
    let target = CUBE_POS_X as usize * planes + plane;
    let mut row = target;
    if row >= n {
        row = n - 1;
    }

    let mut acc_gate = Array::<f32>::new(rows);
    let mut acc_up = Array::<f32>::new(rows);
    #[unroll]
    for i in 0..rows {
        acc_gate[i] = f32::new(0.0);
        acc_up[i] = f32::new(0.0);
    }
    let mut j = lane;
    while j < kv {
        #[unroll]
        for u in 0..unroll {
            let jj = j + u * width;
            if jj < kv {
                let gv = gate[row * w_row + jj];
                let uv = up[row * w_row + jj];
                #[unroll]
                for i in 0..rows {
                    let xv = x[i * x_row + jj];
                    let mut dot_gate = f32::new(0.0);
                    let mut dot_up = f32::new(0.0);
                    #[unroll]
                    for e in 0..N::value() {
                        let xf = f32::cast_from(xv.extract(e));
                        dot_gate += f32::cast_from(gv.extract(e)) * xf;
                        dot_up += f32::cast_from(uv.extract(e)) * xf;
                    }
                    acc_gate[i] = acc_gate[i] + dot_gate;
                    acc_up[i] = acc_up[i] + dot_up;
                }
            }
        }
        j += unroll * width;
    }
    #[unroll]
    for i in 0..rows {
        let g = f32::cast_from(F::cast_from(plane_sum(acc_gate[i])));
        let u = F::cast_from(plane_sum(acc_up[i]));
        if lane == 0 && target < n {
            let act = F::cast_from(g / (f32::new(1.0) + (-g).exp()));
            out[i * n + target] = F::cast_from(f32::cast_from(act) * f32::cast_from(u));
        }
    }
}

/// `silu(x · gateᵀ) · (x · upᵀ)` for `x` `[rows, k]` and weights `[n, k]` of one layout, when
/// [`gemv_plan`] takes them; `None` otherwise. Half precision only.
pub fn gemv_silu(x: &CubeTensor, gate: &CubeTensor, up: &CubeTensor) -> Option<CubeTensor> {
    if gate.meta.shape() != up.meta.shape() {
        return None;
    }
    let dtype = x.dtype;
    let GemvPlan {
        rows,
        k,
        n,
        vector,
        x_row,
        w_row,
        ..
    } = half_plan(x, gate, &[up])?;
    let client = x.client.clone();
    let out =
        empty_device_contiguous_dtype(client.clone(), x.device.clone(), [rows, n].into(), dtype);
    let cubes = n.div_ceil(BLOCK / 32);
    gemv_silu_planes::launch(
        &client,
        CubeCount::Static(cubes as u32, 1, 1),
        CubeDim::new_1d(BLOCK as u32),
        vector,
        x.clone().into_tensor_arg(),
        gate.clone().into_tensor_arg(),
        up.clone().into_tensor_arg(),
        out.clone().into_tensor_arg(),
        (k / vector) as u32,
        (x_row / vector) as u32,
        (w_row / vector) as u32,
        n as u32,
        rows,
        UNROLL,
        dtype_to_storage_type(dtype),
    );
    Some(out)
}

/// [`gemv_silu`] on burn tensors: `x` `[.., k]` flattened to rows, weights `[n, k]`; the result
/// has `x`'s leading dims and `n` last. `force` runs it whether or not the model takes it (for
/// the kernel tests); otherwise unless `LLAVA_OPS_OFF=gemv_silu`.
pub fn gemv_silu_tensors<const D: usize>(
    x: &BurnTensor<D>,
    gate: &BurnTensor<2>,
    up: &BurnTensor<2>,
    force: bool,
) -> Option<BurnTensor<D>> {
    if !force && !super::kernel_on(super::Kernel::GemvSilu) {
        return None;
    }
    let dims = x.dims();
    let k = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    if rows == 0 || rows > crate::choice::GEMV_MAX_ROWS {
        return None;
    }
    let x2 = x.clone().reshape([rows, k]);
    let (xc, g, u) = (
        super::on_cuda(&x2)?,
        super::on_cuda(gate)?,
        super::on_cuda(up)?,
    );
    let key = || format!("gemv silu {rows}x{k} x {:?} {:?}", gate.dims(), xc.dtype);
    let out = super::stats::timed(key, || {
        gemv_silu(&xc, &g, &u).map(BurnTensor::<2>::from_primitive::<CubeBackend>)
    })?;
    let mut shape = dims;
    shape[D - 1] = gate.dims()[0];
    Some(out.reshape(shape))
}
