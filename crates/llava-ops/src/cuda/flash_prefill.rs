//! Causal prefill attention in one kernel on tensor cores (FlashAttention-2's loop): a cube
//! takes [`BQ`] queries of one head (four planes of 16 rows), walks the keys it can see in
//! blocks of [`BK`], keeps the running max, sum and output of each row, and never writes the
//! scores. bf16/f16 operands on 16×16×16 cmma tiles, f32 accumulation and softmax; the
//! probabilities are rounded to the operand dtype for `p·V`, as FlashAttention does. Key and
//! value heads are read in place (grouped queries need no repeated copies).
//!
//! Why: the materialised path (cuBLAS scores in f32, the probabilities kernel, cuBLAS `p·V`)
//! takes about 75 ms of a 7B first token of 219 ms, SDPA about 6 ms; cubek's flash kernel
//! declines bf16 and was slower than ours in f16 (docs/cuda.md).
//!
//! Shared memory: 44 KB at head dim 128 (queries 16, keys 8, values 8, scores 8, probabilities
//! 4), under the 48 KB a cube may take without opting in.
//!
//! Correct on an H200 (`xtask cuda-smoke`: within 6.6e-3 of the CPU in bf16) but slow: 5.9 ms
//! for 32 heads × 3072 causal positions against 3.2 ms on the materialised path. Sixteen-row
//! cmma tiles loaded from shared memory with a cube barrier per key block leave the tensor cores
//! idle. The model takes it only with `LLAVA_OPS_ON=flash_prefill`.

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cmma::{self, MatrixIdent, MatrixLayout};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use super::on_cuda;
use super::stats::timed;

/// Queries per cube: four planes of 16 rows.
const BQ: usize = 64;
/// Keys per step of the loop.
const BK: usize = 32;
/// Planes per cube.
const PLANES: usize = BQ / 16;
/// Threads per plane on NVIDIA GPUs (the kernel's row ownership assumes it).
const PLANE: usize = 32;

/// `q` `[b, heads, s, d]`, `k`/`v` `[b, kv, slots, d]` (unit last strides), `output` `[b,
/// heads, s, d]` contiguous. Query `i` sees key `j` when `j < keys` and, if `causal`, when
/// `j ≤ past + i` (query `i` sits at position `past + i`).
// `a = a * b` on array cells, as the validated kernels write shared-memory updates.
#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)]
#[cube(launch)]
fn flash_prefill_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    output: &mut Tensor<F>,
    scale: f32,
    queries: u32,
    past: u32,
    keys: u32,
    heads: u32,
    group: u32,
    #[comptime] d: usize,
    #[comptime] bq: usize,
    #[comptime] bk: usize,
    #[comptime] causal: bool,
    #[define(F)] _dtype: ElemType,
) {
    let q_block = CUBE_POS_X as usize;
    let head = CUBE_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    let kvh = head / group as usize;
    let tid = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let lane = UNIT_POS_PLANE as usize;
    let plane = tid / PLANE_DIM as usize;
    let s = queries as usize;
    let visible = keys as usize;
    let q0 = q_block * bq;

    let mut qs = Shared::<[F]>::new_slice(bq * d);
    let mut ks = Shared::<[F]>::new_slice(bk * d);
    let mut vs = Shared::<[F]>::new_slice(bk * d);
    let mut ss = Shared::<[f32]>::new_slice(bq * bk);
    let mut ps = Shared::<[F]>::new_slice(bq * bk);

    // The cube's queries (zero rows past the prompt).
    let q_base = b * q.stride(0) + head * q.stride(1);
    let mut i = tid;
    while i < bq * d {
        let row = q0 + i / d;
        let mut x = F::new(0.0);
        if row < s {
            x = q[q_base + row * q.stride(2) + i % d];
        }
        qs[i] = x;
        i += threads;
    }

    // Each lane owns half a row of its plane's 16: row `r`, columns from `half`.
    let r = lane / 2;
    let half = lane % 2;
    let q_row = q0 + plane * 16 + r;
    let q_pos = past as usize + q_row;
    let mut m_i = f32::new(-3.4028235e38);
    let mut l_i = f32::new(0.0);
    let mut o = Array::<f32>::new(d / 2);
    #[unroll]
    for c in 0..d / 2 {
        o[c] = f32::new(0.0);
    }

    // Keys the cube's last query can see.
    let mut end = visible;
    if causal {
        let last = past as usize + q0 + bq;
        if last < end {
            end = last;
        }
    }
    let k_base = b * k.stride(0) + kvh * k.stride(1);
    let v_base = b * v.stride(0) + kvh * v.stride(1);
    let s_base = plane * 16 * bk;
    let mut kb = 0usize;
    while kb < end {
        sync_cube();
        let mut i = tid;
        while i < bk * d {
            let key = kb + i / d;
            let mut kx = F::new(0.0);
            let mut vx = F::new(0.0);
            if key < visible {
                kx = k[k_base + key * k.stride(2) + i % d];
                vx = v[v_base + key * v.stride(2) + i % d];
            }
            ks[i] = kx;
            vs[i] = vx;
            i += threads;
        }
        sync_cube();

        // Scores of the plane's 16 rows against the block's keys.
        #[unroll]
        for nt in 0..bk / 16 {
            let acc = cmma::Matrix::<f32>::from_value(
                MatrixIdent::Accumulator,
                16usize,
                16usize,
                16usize,
                MatrixLayout::Undefined,
                f32::new(0.0),
            );
            #[unroll]
            for kt in 0..d / 16 {
                let a_at = plane * 16 * d + kt * 16;
                let a = cmma::Matrix::<F>::from_slice(
                    MatrixIdent::A,
                    16usize,
                    16usize,
                    16usize,
                    MatrixLayout::RowMajor,
                    &qs[a_at..a_at + 15 * d + 16],
                    d as u32,
                );
                // Kᵀ: the block's keys are rows of `ks`, read column-major.
                let b_at = nt * 16 * d + kt * 16;
                let bm = cmma::Matrix::<F>::from_slice(
                    MatrixIdent::B,
                    16usize,
                    16usize,
                    16usize,
                    MatrixLayout::ColMajor,
                    &ks[b_at..b_at + 15 * d + 16],
                    d as u32,
                );
                cmma::execute(&a, &bm, &acc, &acc);
            }
            let at = s_base + nt * 16;
            cmma::store(
                &mut ss[at..at + 15 * bk + 16],
                &acc,
                bk as u32,
                MatrixLayout::RowMajor,
            );
        }
        // Each plane reads only its own rows of `ss` and `ps` from here on: a warp barrier
        // orders them; the cube's barriers guard only the shared key/value blocks.
        sync_plane();

        // Online softmax over the lane's half row.
        let row_at = s_base + r * bk + half * (bk / 2);
        let mut top = f32::new(-3.4028235e38);
        #[unroll]
        for c in 0..bk / 2 {
            let key = kb + half * (bk / 2) + c;
            let mut x = ss[row_at + c] * scale;
            let mut masked = key >= visible || q_row >= s;
            if causal {
                masked = masked || key > q_pos;
            }
            if masked {
                x = f32::new(-3.4028235e38);
            }
            ss[row_at + c] = x;
            if x > top {
                top = x;
            }
        }
        let other = plane_shuffle_xor(top, 1);
        if other > top {
            top = other;
        }
        let mut m_new = m_i;
        if top > m_new {
            m_new = top;
        }
        let alpha = (m_i - m_new).exp();
        let mut sum = f32::new(0.0);
        #[unroll]
        for c in 0..bk / 2 {
            let p = (ss[row_at + c] - m_new).exp();
            ps[row_at + c] = F::cast_from(p);
            sum += p;
        }
        sum += plane_shuffle_xor(sum, 1);
        l_i = l_i * alpha + sum;
        m_i = m_new;
        #[unroll]
        for c in 0..d / 2 {
            o[c] = o[c] * alpha;
        }
        sync_plane();

        // o += p·V, 16 output columns at a time through a scratch tile.
        #[unroll]
        for dt in 0..d / 16 {
            let acc = cmma::Matrix::<f32>::from_value(
                MatrixIdent::Accumulator,
                16usize,
                16usize,
                16usize,
                MatrixLayout::Undefined,
                f32::new(0.0),
            );
            #[unroll]
            for kt in 0..bk / 16 {
                let a_at = s_base + kt * 16;
                let a = cmma::Matrix::<F>::from_slice(
                    MatrixIdent::A,
                    16usize,
                    16usize,
                    16usize,
                    MatrixLayout::RowMajor,
                    &ps[a_at..a_at + 15 * bk + 16],
                    bk as u32,
                );
                let b_at = kt * 16 * d + dt * 16;
                let bm = cmma::Matrix::<F>::from_slice(
                    MatrixIdent::B,
                    16usize,
                    16usize,
                    16usize,
                    MatrixLayout::RowMajor,
                    &vs[b_at..b_at + 15 * d + 16],
                    d as u32,
                );
                cmma::execute(&a, &bm, &acc, &acc);
            }
            // The plane's scores are spent by now: their first 256 cells take the tile.
            let t_at = s_base;
            cmma::store(
                &mut ss[t_at..t_at + 256],
                &acc,
                16u32,
                MatrixLayout::RowMajor,
            );
            sync_plane();
            if (dt * 16) / (d / 2) == half {
                let first = dt * 16 - half * (d / 2);
                #[unroll]
                for c in 0..16 {
                    o[first + c] = o[first + c] + ss[t_at + r * 16 + c];
                }
            }
            sync_plane();
        }
        kb += bk;
    }

    if q_row < s {
        let inv = f32::new(1.0) / l_i;
        let out_at = ((b * heads as usize + head) * s + q_row) * d + half * (d / 2);
        #[unroll]
        for c in 0..d / 2 {
            output[out_at + c] = F::cast_from(o[c] * inv);
        }
    }
}

/// See [`crate::flash_prefill`]: causal, the keys up to the prompt's last position.
pub fn flash_prefill(
    q: &BurnTensor<4>,
    k: &BurnTensor<4>,
    v: &BurnTensor<4>,
    past: usize,
    scale: f64,
) -> Option<BurnTensor<4>> {
    let s = q.dims()[2];
    flash(q, k, v, (past, past + s, true), scale)
}

/// See [`crate::flash_attention_full`]: every query sees every key.
pub fn flash_attention_full(
    q: &BurnTensor<4>,
    k: &BurnTensor<4>,
    v: &BurnTensor<4>,
    scale: f64,
) -> Option<BurnTensor<4>> {
    let t = k.dims()[2];
    flash(q, k, v, (0, t, false), scale)
}

/// The kernel on `(past, visible keys, causal)`; `None` unless the operands fit: bf16/f16,
/// head dim 64 or 128, unit last strides, whole query groups.
fn flash(
    q: &BurnTensor<4>,
    k: &BurnTensor<4>,
    v: &BurnTensor<4>,
    (past, keys, causal): (usize, usize, bool),
    scale: f64,
) -> Option<BurnTensor<4>> {
    let (qc, kc, vc) = (on_cuda(q)?, on_cuda(k)?, on_cuda(v)?);
    let [b, heads, s, d] = q.dims();
    let [_, kv, t, _] = k.dims();
    let half = matches!(qc.dtype, DType::BF16 | DType::F16);
    let same = qc.dtype == kc.dtype && kc.dtype == vc.dtype;
    let unit_rows = [&qc, &kc, &vc].iter().all(|x| x.meta.strides()[3] == 1);
    let fits = matches!(d, 64 | 128)
        && kv > 0
        && heads % kv == 0
        && v.dims() == [b, kv, t, d]
        && keys <= t
        && keys > 0
        && s > 0
        && PLANES * PLANE == 128;
    if !(half && same && unit_rows && fits) {
        return None;
    }
    let dtype = qc.dtype;
    let key = || {
        let mask = if causal { "causal" } else { "full" };
        format!("flash attention {mask} {b}x{heads}x{s}x{d} past {past} ({kv} kv heads) {dtype:?}")
    };
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(qc.client.clone(), qc.device.clone(), qc.shape(), dtype);
        let client = qc.client.clone();
        flash_prefill_kernel::launch(
            &client,
            CubeCount::Static(s.div_ceil(BQ) as u32, heads as u32, b as u32),
            CubeDim::new_1d((PLANES * PLANE) as u32),
            qc.clone().into_tensor_arg(),
            kc.clone().into_tensor_arg(),
            vc.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            scale as f32,
            s as u32,
            past as u32,
            keys as u32,
            heads as u32,
            (heads / kv) as u32,
            d,
            BQ,
            BK,
            causal,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
