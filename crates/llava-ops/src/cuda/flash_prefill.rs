//! Prompt attention in one kernel on tensor cores, no scores written (FlashAttention-2's loop):
//! a cube takes [`BQ`] queries of one head (planes of 16 rows), and walks the keys they can
//! see in blocks of [`BK`]. Products are `mma.sync` m16n8k16 on registers the kernel manages
//! itself (cubecl's `MmaDefinition`), whose layout is fixed by PTX: a lane holds rows `g` and
//! `g + 8` (`g` = lane / 4) of every tile. So the row max, the exponentials and the rescaling of
//! the output run on the score registers, and the probabilities go into the `p·V` product as
//! the A operand without touching shared memory. bf16/f16 operands, f32 accumulation and
//! softmax; the unnormalised probabilities are rounded to the operand dtype for `p·V`, as
//! FlashAttention (and so SDPA) rounds them. Key and value heads are read in place (grouped
//! queries need no repeated copies).
//!
//! Why: the materialised path (cuBLAS scores in f32, the probabilities kernel, cuBLAS `p·V`)
//! takes about 75 ms of a 7B first token of about 200 ms, SDPA about 6 ms; and each of its
//! cuBLAS calls is a host round trip. cubek's flash kernel declines bf16 and was slower than
//! ours in f16 (docs/cuda.md).
//!
//! Shared memory: the block's keys and values, row-major in pairs of elements with rows padded
//! by 4 pairs, so that the 8 rows of an `ldmatrix` (or a plane's register loads) fall in 32
//! different banks (35 KB at head dim 128; twice that in the two-stage loop, whose second stage
//! takes the next block's copies while the products run on this one's). The B operands
//! come through `ldmatrix.x4`, `.trans` for the values (keys down, one value column across).
//!
//! History: two earlier versions on cmma (WMMA) tiles, whose register layout is opaque, had to
//! move scores through shared memory: one pass (5.9 ms for 32 heads × 3072 causal positions on
//! an H200, against 3.2 ms on the materialised path), then two passes with the output in
//! registers (6.3 against 3.5 ms). This version takes 0.92 ms there (84 TFLOP/s; 1.61 ms for
//! 64/8 heads against 6.16), once its exponentials became one `ex2.approx` each and only the
//! blocks on the diagonal are masked (with the precise `exp` and a mask everywhere it ran at
//! 6.3 ms too); `ldmatrix` operands then took it to 0.87 ms (1.54 for 64/8). On by default
//! (`LLAVA_OPS_OFF=flash_prefill` / `flash_vision` turn it off).

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cmma::{MatrixIdent, MmaDefinition};
use burn_cubecl::cubecl::ir::{ElemType, FloatKind};
use burn_cubecl::cubecl::prelude::barrier::copy_async;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use burn_cubecl::tensor::CubeTensor;

use super::stats::timed;
use super::{offset_bytes, on_cuda};

/// Queries per cube: four planes of 16 rows (eight measured slower: docs/knobs.md).
const BQ: usize = 64;
/// Keys per step of the loop (16, 64 and 128 measured slower: docs/knobs.md).
const BK: usize = 32;
/// Threads per plane on NVIDIA GPUs (the fragment layout assumes it).
const PLANE: usize = 32;
/// Elements per operand register (a pair of bf16/f16), the vector width of every operand.
const PAIR: usize = 2;
/// The smallest score: masked keys get it, and `exp` of it less any row max is 0.
const LOWEST: f32 = -3.0e38;

/// `q` `[b, heads, s, d]`, `k`/`v` `[b, kv, slots, d]` read in pairs (the strides of batch,
/// head and row given in pairs), `output` `[b, s, heads, d]` contiguous. Query `i` sees key `j`
/// when `j < keys` and, if `causal`, when `j ≤ past + i` (query `i` sits at position `past + i`).
///
/// Fragments (PTX's m16n8k16 layout, `g` = lane / 4, `t` = lane % 4): the A operand's four
/// pairs are rows `g`, `g + 8` at columns `2t` and `2t + 8`; the B operand's two pairs are
/// column `g` at rows `2t` and `2t + 8`; the accumulator's two pairs are rows `g` and `g + 8` at
/// columns `2t`. The scores of two adjacent 8-key tiles are thus the A operand of 16 keys.
// `manual_div_ceil`: the block count is computed in the kernel, where `div_ceil` is not expanded.
#[allow(
    clippy::too_many_arguments,
    clippy::assign_op_pattern,
    clippy::manual_div_ceil
)]
#[cube(launch)]
fn flash_mma<F: Float, N: Size>(
    q: &Tensor<Vector<F, N>>,
    k: &Tensor<Vector<F, N>>,
    v: &Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    scale_log2: f32,
    queries: u32,
    past: u32,
    keys: u32,
    heads: u32,
    group: u32,
    q_batch: u32,
    q_head: u32,
    q_row: u32,
    k_batch: u32,
    k_head: u32,
    k_row: u32,
    v_batch: u32,
    v_head: u32,
    v_row: u32,
    #[comptime] d: usize,
    #[comptime] bq: usize,
    #[comptime] bk: usize,
    #[comptime] ldm: bool,
    #[comptime] pipelined: bool,
    #[comptime] causal: bool,
    #[define(F)] _dtype: ElemType,
) {
    // Causal: heavy first, heads across x and the query blocks down y from the last (the
    // blocks with the most keys), so that the light ones fill the last wave.
    let mut q_block = CUBE_POS_X as usize;
    let mut head = CUBE_POS_Y as usize;
    if causal {
        head = CUBE_POS_X as usize;
        let q_blocks = (queries as usize + bq - 1) / bq;
        q_block = q_blocks - 1 - CUBE_POS_Y as usize;
    }
    let b = CUBE_POS_Z as usize;
    let kvh = head / group as usize;
    let tid = UNIT_POS_X as usize;
    let lane = UNIT_POS_PLANE as usize;
    let plane = tid / PLANE;
    let g = lane / 4;
    let t = lane % 4;
    let s = queries as usize;
    let visible = keys as usize;
    // Pairs per row of the operands and of the padded shared rows.
    let dp = d / PAIR;
    let stride = dp + 4;
    let row0 = q_block * bq + plane * 16 + g;
    let row1 = row0 + 8;
    let pos0 = past as usize + row0;
    let pos1 = pos0 + 8;
    let mma = MmaDefinition::<F, F, f32>::new(16usize, 8usize, 16usize);
    let zero = Vector::<F, N>::new(F::new(0.0));
    let zero_acc = Vector::<f32, N>::new(f32::new(0.0));

    // The plane's 16 query rows as A operands, one per 16 columns, held for the whole loop.
    let q_base = b * q_batch as usize + head * q_head as usize;
    let q_row = q_row as usize;
    let mut qf = Array::<Vector<F, N>>::new(d / 16 * 4);
    #[unroll]
    for kt in 0..d / 16 {
        #[unroll]
        for j in 0..4usize {
            let row = row0 + (j % 2) * 8;
            let mut x = zero;
            if row < s {
                x = q[q_base + row * q_row + kt * 8 + (j / 2) * 4 + t];
            }
            qf[kt * 4 + j] = x;
        }
    }

    // The output rows `g` and `g + 8`, columns `2t` of each 8-column tile, and the two rows'
    // running max and this lane's share of their sums.
    let mut o = Array::<Vector<f32, N>>::new(d / 8 * 2);
    #[unroll]
    for i in 0..d / 8 * 2 {
        o[i] = zero_acc;
    }
    let mut m0 = f32::new(LOWEST);
    let mut m1 = f32::new(LOWEST);
    let mut l0 = f32::new(0.0);
    let mut l1 = f32::new(0.0);

    // Keys the cube's last query can see.
    let mut end = visible;
    if causal {
        let last = past as usize + q_block * bq + bq;
        if last < end {
            end = last;
        }
    }
    let k_base = b * k_batch as usize + kvh * k_head as usize;
    let v_base = b * v_batch as usize + kvh * v_head as usize;
    let (k_row, v_row) = (k_row as usize, v_row as usize);
    // With `pipelined`, two stages: the next block's keys and values are copied in (`cp.async`,
    // no registers) while the products run on this block's.
    let stages = comptime![if pipelined { 2usize } else { 1usize }];
    // 16-byte aligned: `ldmatrix` rows and `cp.async` copies start on 16 bytes.
    let mut ks = Shared::<[Vector<F, N>]>::new_aligned_slice(stages * bk * stride, 16usize);
    // Values: with `ldm`, row-major pairs as the keys, read by `ldmatrix.trans`; otherwise as
    // elements, since the B operand of `p·V` takes one column down two keys and its pairs are
    // gathered element by element (rows padded by 8 elements, as `ks` by 4 pairs). The array a
    // variant does not use takes one element.
    let pairs_len = comptime![if ldm { stages * bk * stride } else { 1 }];
    let elems_len = comptime![if ldm { 1 } else { bk * stride * PAIR }];
    let mut vsp = Shared::<[Vector<F, N>]>::new_aligned_slice(pairs_len, 16usize);
    let mut vs = Shared::<[F]>::new_slice(elems_len);
    // `ldmatrix`: lane `l` hands the address of row `l % 8` of the 8×8 matrix `l / 8`.
    let ld_matrix = lane / 8;
    let ld_row = lane % 8;

    let blocks = (end + bk - 1) / bk;
    // A pipelined loop runs once more: iteration `it` copies block `it` in and computes block
    // `it - 1`.
    let extra = comptime![if pipelined { 1usize } else { 0usize }];
    let chunks = dp / 4;
    let mut it = 0usize;
    while it < blocks + extra {
        // `kb`: the first key of the block computed now; `base`: where its keys and values lie.
        let mut kb = it * bk;
        let mut base = 0usize;
        let mut compute = true;
        if pipelined {
            if it < blocks {
                // 16 bytes (8 elements) a copy. Keys past the visible ones repeat the last
                // visible row (finite data, masked below), so that no copy reads past the cache.
                let stage_at = (it % 2) * bk * stride;
                let mut i = tid;
                while i < bk * chunks {
                    let key = i / chunks;
                    let c = (i % chunks) * 4;
                    let mut src = it * bk + key;
                    if src >= visible {
                        src = visible - 1;
                    }
                    let at = stage_at + key * stride + c;
                    let k_at = k_base + src * k_row + c;
                    let v_at = v_base + src * v_row + c;
                    copy_async(&k[k_at..k_at + 4], &mut ks[at..at + 4], 8u32);
                    copy_async(&v[v_at..v_at + 4], &mut vsp[at..at + 4], 8u32);
                    i += bq / 16 * PLANE;
                }
                cp_async_commit();
            }
            if it == 0 {
                compute = false;
            } else {
                if it < blocks {
                    cp_async_wait_but_one();
                } else {
                    cp_async_wait_all();
                }
                kb = (it - 1) * bk;
                base = ((it - 1) % 2) * bk * stride;
                sync_cube();
            }
        } else {
            sync_cube();
            let mut i = tid;
            while i < bk * dp {
                let key = i / dp;
                let c = i % dp;
                let mut kx = zero;
                let mut vx = zero;
                if kb + key < visible {
                    kx = k[k_base + (kb + key) * k_row + c];
                    vx = v[v_base + (kb + key) * v_row + c];
                }
                ks[key * stride + c] = kx;
                if ldm {
                    vsp[key * stride + c] = vx;
                } else {
                    vs[(key * stride + c) * PAIR] = vx.extract(0usize);
                    vs[(key * stride + c) * PAIR + 1] = vx.extract(1usize);
                }
                i += bq / 16 * PLANE;
            }
            sync_cube();
        }
        if compute {
            // Scores of the plane's 16 rows against the block's keys, 8 keys a tile.
            let mut sc = Array::<Vector<f32, N>>::new(bk / 8 * 2);
            #[unroll]
            for nt in 0..bk / 8 {
                let mut acc = Array::<Vector<f32, N>>::new(2usize);
                acc[0] = zero_acc;
                acc[1] = zero_acc;
                let key_at = base + (nt * 8 + g) * stride;
                // Matrices `j` of one `ldmatrix.x4`: the tile's keys against columns `8j..8j + 8`
                // of two k-steps, i.e. both B operands of k-steps `kt` and `kt + 1`.
                let ld_at = base + (nt * 8 + ld_row) * stride + ld_matrix * 4;
                let mut regs = Array::<Vector<F, N>>::new(4usize);
                #[unroll]
                for kt in 0..d / 16 {
                    let mut a = Array::<Vector<F, N>>::new(4usize);
                    #[unroll]
                    for j in 0..4usize {
                        a[j] = qf[kt * 4 + j];
                    }
                    let mut bm = Array::<Vector<F, N>>::new(2usize);
                    if ldm {
                        if comptime![kt % 2 == 0] {
                            let at = ld_at + kt * 8;
                            let loaded = mma.load_matrix::<Vector<F, N>, N>(
                                &ks[at..at + 4],
                                MatrixIdent::B,
                                4usize,
                                false,
                            );
                            #[unroll]
                            for j in 0..4usize {
                                regs[j] = loaded[j];
                            }
                        }
                        bm[0] = regs[(kt % 2) * 2];
                        bm[1] = regs[(kt % 2) * 2 + 1];
                    } else {
                        bm[0] = ks[key_at + kt * 8 + t];
                        bm[1] = ks[key_at + kt * 8 + 4 + t];
                    }
                    mma.execute_inplace(&a, &bm, &mut acc);
                }
                sc[nt * 2] = acc[0];
                sc[nt * 2 + 1] = acc[1];
            }

            // Scaled (to base 2), masked where the block needs it, and each row's max over the
            // block (the quad's four lanes hold a row).
            let mut needs_mask = kb + bk > visible;
            if causal {
                needs_mask = needs_mask || kb + bk > past as usize + q_block * bq + 1;
            }
            let mut top0 = f32::new(LOWEST);
            let mut top1 = f32::new(LOWEST);
            #[unroll]
            for nt in 0..bk / 8 {
                let mut w0 = sc[nt * 2];
                let mut w1 = sc[nt * 2 + 1];
                if needs_mask {
                    #[unroll]
                    for e in 0..PAIR {
                        let key = kb + nt * 8 + 2 * t + e;
                        let mut dead0 = key >= visible;
                        let mut dead1 = key >= visible;
                        if causal {
                            dead0 = dead0 || key > pos0;
                            dead1 = dead1 || key > pos1;
                        }
                        if dead0 {
                            w0.insert(e, f32::new(LOWEST));
                        }
                        if dead1 {
                            w1.insert(e, f32::new(LOWEST));
                        }
                    }
                }
                #[unroll]
                for e in 0..PAIR {
                    let x0 = w0.extract(e);
                    let x1 = w1.extract(e);
                    if x0 > top0 {
                        top0 = x0;
                    }
                    if x1 > top1 {
                        top1 = x1;
                    }
                }
                sc[nt * 2] = w0;
                sc[nt * 2 + 1] = w1;
            }
            top0 = quad_max(top0);
            top1 = quad_max(top1);
            // The scale is positive: the max of the scaled scores is the scaled max.
            top0 = top0 * scale_log2;
            top1 = top1 * scale_log2;
            let mut new0 = m0;
            if top0 > new0 {
                new0 = top0;
            }
            let mut new1 = m1;
            if top1 > new1 {
                new1 = top1;
            }
            let alpha0 = exp2_approx(m0 - new0);
            let alpha1 = exp2_approx(m1 - new1);
            m0 = new0;
            m1 = new1;

            // Unnormalised probabilities, rounded to the operand dtype as A operands.
            let mut pf = Array::<Vector<F, N>>::new(bk / 8 * 2);
            let mut sum0 = f32::new(0.0);
            let mut sum1 = f32::new(0.0);
            #[unroll]
            for nt in 0..bk / 8 {
                let mut w0 = sc[nt * 2];
                let mut w1 = sc[nt * 2 + 1];
                #[unroll]
                for e in 0..PAIR {
                    // One `fma` for the scale and the max (the score stays unscaled).
                    let p0 = exp2_approx(w0.extract(e) * scale_log2 - m0);
                    let p1 = exp2_approx(w1.extract(e) * scale_log2 - m1);
                    sum0 += p0;
                    sum1 += p1;
                    w0.insert(e, p0);
                    w1.insert(e, p1);
                }
                pf[nt * 2] = Vector::<F, N>::cast_from(w0);
                pf[nt * 2 + 1] = Vector::<F, N>::cast_from(w1);
            }
            l0 = l0 * alpha0 + sum0;
            l1 = l1 * alpha1 + sum1;
            let scale0 = Vector::<f32, N>::new(alpha0);
            let scale1 = Vector::<f32, N>::new(alpha1);
            #[unroll]
            for dt in 0..d / 8 {
                o[dt * 2] = o[dt * 2] * scale0;
                o[dt * 2 + 1] = o[dt * 2 + 1] * scale1;
            }

            // o += p·V: 16 keys a step; the B operand (keys down, one value column `g` across)
            // gathered from the row-major pairs.
            #[unroll]
            for kk in 0..bk / 16 {
                let mut a = Array::<Vector<F, N>>::new(4usize);
                a[0] = pf[kk * 4];
                a[1] = pf[kk * 4 + 1];
                a[2] = pf[kk * 4 + 2];
                a[3] = pf[kk * 4 + 3];
                let row_at = (kk * 16 + 2 * t) * stride * PAIR;
                // Matrices of one `ldmatrix.x4.trans`: keys `kk·16 + 8(j % 2)`, value columns of
                // tiles `dt + j / 2`, i.e. both B operands of tiles `dt` and `dt + 1`.
                let ld_at =
                    base + (kk * 16 + (ld_matrix % 2) * 8 + ld_row) * stride + (ld_matrix / 2) * 4;
                let mut regs = Array::<Vector<F, N>>::new(4usize);
                #[unroll]
                for dt in 0..d / 8 {
                    let mut bm = Array::<Vector<F, N>>::new(2usize);
                    if ldm {
                        if comptime![dt % 2 == 0] {
                            let at = ld_at + dt * 4;
                            let loaded = mma.load_matrix::<Vector<F, N>, N>(
                                &vsp[at..at + 4],
                                MatrixIdent::B,
                                4usize,
                                true,
                            );
                            #[unroll]
                            for j in 0..4usize {
                                regs[j] = loaded[j];
                            }
                        }
                        bm[0] = regs[(dt % 2) * 2];
                        bm[1] = regs[(dt % 2) * 2 + 1];
                    } else {
                        let at = row_at + dt * 8 + g;
                        let mut b0 = zero;
                        let mut b1 = zero;
                        b0.insert(0usize, vs[at]);
                        b0.insert(1usize, vs[at + stride * PAIR]);
                        b1.insert(0usize, vs[at + 8 * stride * PAIR]);
                        b1.insert(1usize, vs[at + 9 * stride * PAIR]);
                        bm[0] = b0;
                        bm[1] = b1;
                    }
                    let mut acc = Array::<Vector<f32, N>>::new(2usize);
                    acc[0] = o[dt * 2];
                    acc[1] = o[dt * 2 + 1];
                    mma.execute_inplace(&a, &bm, &mut acc);
                    o[dt * 2] = acc[0];
                    o[dt * 2 + 1] = acc[1];
                }
            }
            if pipelined {
                sync_cube();
            }
        }
        it += 1;
    }

    // The rows' full sums over the quad, then the normalised rows out.
    l0 += plane_shuffle_xor(l0, 1);
    l0 += plane_shuffle_xor(l0, 2);
    l1 += plane_shuffle_xor(l1, 1);
    l1 += plane_shuffle_xor(l1, 2);
    let inv0 = Vector::<f32, N>::new(f32::new(1.0) / l0);
    let inv1 = Vector::<f32, N>::new(f32::new(1.0) / l1);
    // `output` is `[b, s, heads, d]`: the layout the output projection reads, so the caller's
    // swap back to it is a view, not a copy.
    let heads = heads as usize;
    let at0 = ((b * s + row0) * heads + head) * dp + t;
    let at1 = ((b * s + row1) * heads + head) * dp + t;
    #[unroll]
    for dt in 0..d / 8 {
        if row0 < s {
            output[at0 + dt * 4] = Vector::<F, N>::cast_from(o[dt * 2] * inv0);
        }
        if row1 < s {
            output[at1 + dt * 4] = Vector::<F, N>::cast_from(o[dt * 2 + 1] * inv1);
        }
    }
}

/// Closes the group of this thread's `cp.async` copies issued so far.
#[cube]
fn cp_async_commit() {
    gpu_asm!("cp.async.commit_group;");
}

/// Waits for all but the newest group of this thread's `cp.async` copies.
#[cube]
fn cp_async_wait_but_one() {
    gpu_asm!("cp.async.wait_group 1;");
}

/// Waits for all of this thread's `cp.async` copies.
#[cube]
fn cp_async_wait_all() {
    gpu_asm!("cp.async.wait_group 0;");
}

/// `2^x` in one instruction (`ex2.approx`, relative error about 2⁻²²; flushes subnormals, whose
/// probabilities are below anything bf16 keeps next to the row max's 1). The precise `exp`
/// costs about ten instructions a score, which bounded the kernel near 12 TFLOP/s.
#[cube]
fn exp2_approx(x: f32) -> f32 {
    let out: f32;
    gpu_asm!("ex2.approx.ftz.f32 {o}, {i};", i = in(_) x, o = out(_) out, options(pure, nomem));
    out
}

/// The max of `x` over the four lanes of a quad (lanes `4g..4g + 4`, which hold one row).
#[cube]
fn quad_max(x: f32) -> f32 {
    let mut top = x;
    let other = plane_shuffle_xor(top, 1);
    if other > top {
        top = other;
    }
    let other = plane_shuffle_xor(top, 2);
    if other > top {
        top = other;
    }
    top
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

/// The kernel on `(past, visible keys, causal)`; `None` unless the operands fit: bf16/f16 on a
/// GPU with m16n8k16 `mma` for it, head dim a multiple of 16 up to 128, unit last strides, even
/// strides and offsets (pairs), whole query groups.
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
    let elem = match qc.dtype {
        DType::BF16 => ElemType::Float(FloatKind::BF16),
        DType::F16 => ElemType::Float(FloatKind::F16),
        _ => return None,
    };
    let same = qc.dtype == kc.dtype && kc.dtype == vc.dtype;
    let unit_rows = [&qc, &kc, &vc].iter().all(|x| x.meta.strides()[3] == 1);
    let fits = d % 16 == 0
        && d <= 128
        && kv > 0
        && heads % kv == 0
        && v.dims() == [b, kv, t, d]
        && k.dims() == v.dims()
        && keys <= t
        && keys > 0
        && s > 0;
    let has_mma = qc.client.properties().features.matmul.mma.iter().any(|c| {
        (c.m, c.n, c.k) == (16, 8, 16)
            && c.a_type == elem
            && c.b_type == elem
            && c.cd_type == ElemType::Float(FloatKind::F32)
    });
    if !(same && unit_rows && fits && has_mma) {
        return None;
    }
    let dtype = qc.dtype;
    let strides = |t: &CubeTensor| {
        let st = t.meta.strides();
        [st[0], st[1], st[2]]
    };
    let (qs, ks, vs) = (strides(&qc), strides(&kc), strides(&vc));
    let pair_bytes = PAIR * dtype.size();
    let even = qs.iter().chain(&ks).chain(&vs).all(|x| x % PAIR == 0)
        && [&qc, &kc, &vc]
            .iter()
            .all(|x| offset_bytes(x).is_multiple_of(pair_bytes));
    if !even {
        return None;
    }
    let pairs = |st: [usize; 3]| st.map(|x| (x / PAIR) as u32);
    let (qp, kp, vp) = (pairs(qs), pairs(ks), pairs(vs));
    // `ldmatrix` B operands where the head dim is a multiple of 32, a load per register
    // otherwise.
    let ldm = d % 32 == 0;
    // `cp.async` copies 16 bytes from 16-byte aligned addresses: key and value rows and heads
    // start on them.
    let aligned = |st: [usize; 3], t: &CubeTensor| {
        st.iter().all(|x| (x * dtype.size()).is_multiple_of(16))
            && offset_bytes(t).is_multiple_of(16)
    };
    let pipelined =
        ldm && qc.client.properties().features.copy_async && aligned(ks, &kc) && aligned(vs, &vc);
    let (bq, bk) = (BQ, BK);
    let key = || {
        let mask = if causal { "causal" } else { "full" };
        format!(
            "flash attention {mask} {b}x{heads}x{s}x{d} past {past} ({kv} kv heads) {dtype:?} \
             ldmatrix {ldm} async {pipelined}"
        )
    };
    timed(key, || {
        // Written `[b, s, heads, d]` and handed back as its `[b, heads, s, d]` view.
        let out = empty_device_contiguous_dtype(
            qc.client.clone(),
            qc.device.clone(),
            [b, s, heads, d].into(),
            dtype,
        );
        let client = qc.client.clone();
        flash_mma::launch(
            &client,
            if causal {
                CubeCount::Static(heads as u32, s.div_ceil(bq) as u32, b as u32)
            } else {
                CubeCount::Static(s.div_ceil(bq) as u32, heads as u32, b as u32)
            },
            CubeDim::new_1d((bq / 16 * PLANE) as u32),
            PAIR,
            qc.clone().into_tensor_arg(),
            kc.clone().into_tensor_arg(),
            vc.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            (scale * std::f64::consts::LOG2_E) as f32,
            s as u32,
            past as u32,
            keys as u32,
            heads as u32,
            (heads / kv) as u32,
            qp[0],
            qp[1],
            qp[2],
            kp[0],
            kp[1],
            kp[2],
            vp[0],
            vp[1],
            vp[2],
            d,
            bq,
            bk,
            ldm,
            pipelined,
            causal,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::<4>::from_primitive::<CubeBackend>(out).swap_dims(1, 2))
    })
}
