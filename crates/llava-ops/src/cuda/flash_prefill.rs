//! Prompt attention in one kernel on tensor cores, no scores written: a cube takes [`BQ`]
//! queries of one head (four planes of 16 rows) and walks the keys they can see in blocks of
//! [`BK`], twice (see [`flash_two_pass`]). bf16/f16 operands on 16×16×16 cmma tiles, f32
//! accumulation and softmax; the normalised probabilities are rounded to the operand dtype for
//! `p·V`, as the materialised path and transformers' eager attention round theirs. Key and value heads are read in place (grouped queries need no repeated
//! copies), with 16-byte loads.
//!
//! Why: the materialised path (cuBLAS scores in f32, the probabilities kernel, cuBLAS `p·V`)
//! takes about 75 ms of a 7B first token of about 200 ms, SDPA about 6 ms; and each of its
//! cuBLAS calls is a host round trip. cubek's flash kernel declines bf16 and was slower than
//! ours in f16 (docs/cuda.md).
//!
//! Shared memory: 44 KB at head dim 128 (queries 16, keys 8, values 8, scores 8, probabilities
//! 4), under the 48 KB a cube may take without opting in.
//!
//! History: the first version (one pass, its output moved through shared memory at every key
//! block) was correct on an H200 (`xtask cuda-smoke`: within 6.6e-3 of the CPU in bf16) but
//! slow: 5.9 ms for 32 heads × 3072 causal positions against 3.2 ms on the materialised path.
//! This two-pass version keeps the output in registers and loads 16 bytes at a time; it has not
//! run on a GPU yet. The model takes it only with `LLAVA_OPS_ON=flash_prefill` (decoder) or
//! `flash_vision` (vision towers).

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cmma::{self, MatrixIdent, MatrixLayout};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use burn_cubecl::tensor::CubeTensor;

use super::stats::timed;
use super::{offset_bytes, on_cuda};
use crate::choice::vector_width;

/// Queries per cube: four planes of 16 rows.
const BQ: usize = 64;
/// Keys per step of the loop.
const BK: usize = 32;
/// Planes per cube.
const PLANES: usize = BQ / 16;
/// Threads per plane on NVIDIA GPUs (the kernel's row ownership assumes it).
const PLANE: usize = 32;

/// `q` `[b, heads, s, d]`, `k`/`v` `[b, kv, slots, d]` read as vectors of `N` (the strides of
/// batch, head and row given in vectors), `output` `[b, heads, s, d]` contiguous. Query `i` sees
/// key `j` when `j < keys` and, if `causal`, when `j ≤ past + i` (query `i` sits at position
/// `past + i`).
///
/// Two passes over the visible keys. The first computes each row's max and sum of
/// exponentials. The second computes the scores again, turns them into probabilities with the
/// final max, and adds `p·V` into accumulator tiles that stay in the tensor cores' registers
/// for the whole loop. The one-pass FlashAttention loop rescales its output at every key block.
/// cmma tiles cannot be scaled row by row in registers, so the first version of this kernel
/// moved its output through shared memory for every block: 8 stores and 16 warp barriers a
/// block. The extra score product costs less.
#[allow(clippy::too_many_arguments, clippy::assign_op_pattern)]
#[cube(launch)]
fn flash_two_pass<F: Float, N: Size>(
    q: &Tensor<Vector<F, N>>,
    k: &Tensor<Vector<F, N>>,
    v: &Tensor<Vector<F, N>>,
    output: &mut Tensor<F>,
    scale: f32,
    queries: u32,
    past: u32,
    keys: u32,
    heads: u32,
    group: u32,
    q_batch: u32,
    q_head: u32,
    q_row_stride: u32,
    k_batch: u32,
    k_head: u32,
    k_row: u32,
    v_batch: u32,
    v_head: u32,
    v_row: u32,
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
    let width = N::value();
    let dv = d / width;

    let mut qs = Shared::<[F]>::new_slice(bq * d);
    let mut ks = Shared::<[F]>::new_slice(bk * d);
    let mut vs = Shared::<[F]>::new_slice(bk * d);
    let mut ss = Shared::<[f32]>::new_slice(bq * bk);
    let mut ps = Shared::<[F]>::new_slice(bq * bk);

    // The cube's queries (zero rows past the prompt).
    let q_base = b * q_batch as usize + head * q_head as usize;
    let q_row_stride = q_row_stride as usize;
    let mut i = tid;
    while i < bq * dv {
        let row = q0 + i / dv;
        let mut x = Vector::<F, N>::new(F::new(0.0));
        if row < s {
            x = q[q_base + row * q_row_stride + i % dv];
        }
        #[unroll]
        for e in 0..N::value() {
            qs[i * width + e] = x.extract(e);
        }
        i += threads;
    }

    // Each lane owns half a row of its plane's 16: row `r`, columns from `half`.
    let r = lane / 2;
    let half = lane % 2;
    let q_row = q0 + plane * 16 + r;
    let q_pos = past as usize + q_row;
    let mut m_i = f32::new(-3.4028235e38);
    let mut l_i = f32::new(0.0);
    let mut accs = Sequence::<cmma::Matrix<f32>>::new();
    #[unroll]
    for _ in 0..d / 16 {
        accs.push(cmma::Matrix::<f32>::from_value(
            MatrixIdent::Accumulator,
            16usize,
            16usize,
            16usize,
            MatrixLayout::Undefined,
            f32::new(0.0),
        ));
    }

    // Keys the cube's last query can see.
    let mut end = visible;
    if causal {
        let last = past as usize + q0 + bq;
        if last < end {
            end = last;
        }
    }
    let k_base = b * k_batch as usize + kvh * k_head as usize;
    let v_base = b * v_batch as usize + kvh * v_head as usize;
    let (k_row, v_row) = (k_row as usize, v_row as usize);
    let s_base = plane * 16 * bk;
    let row_at = s_base + r * bk + half * (bk / 2);

    // Pass 0: each row's max and sum. Pass 1: probabilities with the final max and sum,
    // rounded as the materialised path rounds its softmax, then `p·V`.
    let mut inv = f32::new(0.0);
    let mut pass = 0u32;
    while pass < 2 {
        if pass == 1 {
            inv = f32::new(1.0) / l_i;
        }
        let mut kb = 0usize;
        while kb < end {
            sync_cube();
            let mut i = tid;
            while i < bk * dv {
                let key = kb + i / dv;
                let mut kx = Vector::<F, N>::new(F::new(0.0));
                let mut vx = Vector::<F, N>::new(F::new(0.0));
                if key < visible {
                    kx = k[k_base + key * k_row + i % dv];
                    if pass == 1 {
                        vx = v[v_base + key * v_row + i % dv];
                    }
                }
                #[unroll]
                for e in 0..N::value() {
                    ks[i * width + e] = kx.extract(e);
                }
                if pass == 1 {
                    #[unroll]
                    for e in 0..N::value() {
                        vs[i * width + e] = vx.extract(e);
                    }
                }
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
            // Each plane reads only its own rows of `ss` and `ps`: a warp barrier orders them.
            sync_plane();

            if pass == 0 {
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
                let mut sum = f32::new(0.0);
                #[unroll]
                for c in 0..bk / 2 {
                    sum += (ss[row_at + c] - m_new).exp();
                }
                sum += plane_shuffle_xor(sum, 1);
                l_i = l_i * (m_i - m_new).exp() + sum;
                m_i = m_new;
            } else {
                #[unroll]
                for c in 0..bk / 2 {
                    let key = kb + half * (bk / 2) + c;
                    let mut p = (ss[row_at + c] * scale - m_i).exp() * inv;
                    let mut masked = key >= visible || q_row >= s;
                    if causal {
                        masked = masked || key > q_pos;
                    }
                    if masked {
                        p = f32::new(0.0);
                    }
                    ps[row_at + c] = F::cast_from(p);
                }
            }
            sync_plane();

            if pass == 1 {
                // o += p·V into the tiles held across the loop.
                #[unroll]
                for dt in 0..d / 16 {
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
                        let acc = &accs[dt];
                        cmma::execute(&a, &bm, acc, acc);
                    }
                }
            }
            kb += bk;
        }
        pass += 1;
    }

    // The tiles out through the plane's (spent) score rows.
    #[unroll]
    for dt in 0..d / 16 {
        cmma::store(
            &mut ss[s_base..s_base + 256],
            &accs[dt],
            16u32,
            MatrixLayout::RowMajor,
        );
        sync_plane();
        if q_row < s {
            let out_at = ((b * heads as usize + head) * s + q_row) * d + dt * 16 + half * 8;
            #[unroll]
            for c in 0..8usize {
                output[out_at + c] = F::cast_from(ss[s_base + r * 16 + half * 8 + c]);
            }
        }
        sync_plane();
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
        && k.dims() == v.dims()
        && keys <= t
        && keys > 0
        && s > 0
        && PLANES * PLANE == 128;
    if !(half && same && unit_rows && fits) {
        return None;
    }
    let dtype = qc.dtype;
    // One vector width for the three operands: it divides the head dim, every stride and the
    // buffers' byte offsets.
    let strides = |t: &CubeTensor| {
        let st = t.meta.strides();
        [st[0], st[1], st[2]]
    };
    let (qs, ks, vs) = (strides(&qc), strides(&kc), strides(&vc));
    let lengths: Vec<usize> = [d].into_iter().chain(qs).chain(ks).chain(vs).collect();
    let offsets = [offset_bytes(&qc), offset_bytes(&kc), offset_bytes(&vc)];
    let width = vector_width(dtype.size(), &lengths, &offsets);
    let in_vectors = |st: [usize; 3]| st.map(|x| (x / width) as u32);
    let (qv, kvv, vv) = (in_vectors(qs), in_vectors(ks), in_vectors(vs));
    let key = || {
        let mask = if causal { "causal" } else { "full" };
        format!("flash attention {mask} {b}x{heads}x{s}x{d} past {past} ({kv} kv heads) {dtype:?}")
    };
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(qc.client.clone(), qc.device.clone(), qc.shape(), dtype);
        let client = qc.client.clone();
        flash_two_pass::launch(
            &client,
            CubeCount::Static(s.div_ceil(BQ) as u32, heads as u32, b as u32),
            CubeDim::new_1d((PLANES * PLANE) as u32),
            width,
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
            qv[0],
            qv[1],
            qv[2],
            kvv[0],
            kvv[1],
            kvv[2],
            vv[0],
            vv[1],
            vv[2],
            d,
            BQ,
            BK,
            causal,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
