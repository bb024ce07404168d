//! Decode attention (one query per sequence against the whole KV-cache buffer) in two kernels,
//! flash-decoding style: the cache is cut into splits of [`SPLIT`] keys, one cube a split and
//! key/value head computes the scores of the head's query group, their softmax partials and
//! the partial `p·V`; a second kernel merges the splits. The three-launch path (scores
//! product, probabilities kernel, `p·V` product) took 84 µs for 32 query heads against 3072
//! slots on an H200 launched from the host back to back (an upper bound: about 20 µs of host
//! time per op), against SDPA's 49 µs at 4096.
//!
//! The probabilities stay in f32 (the three-launch path rounds them to the activation dtype
//! before `p·V`, as transformers' eager attention does).
//!
//! A thread per key with 16-byte loads (this version) took 43 µs for Mistral's heads and 94 µs
//! for llava-next-72b's 64/64 against 3072 slots (H200, host-launched); the first version, a
//! plane per key with scalar loads, took 80 and 122 µs. `tests/cuda_kernels.rs` checks it against the
//! CPU path on four cases. A thread keeps [`UNROLL`] vector loads in flight (8 measured no
//! faster: docs/knobs.md).

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use super::stats::timed;
use super::{offset_bytes, on_cuda};
use crate::choice::vector_width;

/// Keys a split covers, and the threads of its cube (one per key): 24 splits × 8 key/value
/// heads for a 3k cache, enough cubes to fill an H100/H200 at batch 1 with every thread
/// holding several vector loads in flight.
const SPLIT: usize = 128;
/// Query heads per key/value head the kernel holds (Mistral, Llama 3: 4; Yi-34B, Qwen: 7–8).
const MAX_GROUP: usize = 8;
/// Largest head dim the kernel holds.
const MAX_HEAD_DIM: usize = 256;

/// One split of one key/value head: `q` `[b, heads, 1, d]`, `k`/`v` `[b, kv, slots, d]` read
/// as vectors of `N` (strides given in vectors), `bias` `[b, 1, 1, slots]`; writes the
/// unnormalised partial output `[b, kv, splits, group, d]` and the split's max and sum
/// `[.., group, 2]`.
///
/// A thread per key computes the key's scores for the whole query group, reading the key row
/// with every vector load in flight at once; then a plane per query head takes the split's max
/// and sum; then the threads, a row of `d / N` of them per key, accumulate `p·V` for the whole
/// group over every `parts`-th key, and the parts are summed through shared memory. Wide loads
/// and many of them in flight per thread are what a decode attention needs: the cache is read
/// once and nothing else is large.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::assign_op_pattern)]
#[cube(launch)]
fn decode_split<F: Float, N: Size>(
    q: &Tensor<F>,
    k: &Tensor<Vector<F, N>>,
    v: &Tensor<Vector<F, N>>,
    bias: &Tensor<f32>,
    partial: &mut Tensor<f32>,
    stats: &mut Tensor<f32>,
    scale: f32,
    keys: u32,
    splits: u32,
    split_len: u32,
    kv_heads: u32,
    group: u32,
    head_dim: u32,
    k_batch: u32,
    k_head: u32,
    k_row: u32,
    v_batch: u32,
    v_head: u32,
    v_row: u32,
    #[comptime] split: usize,
    #[comptime] max_group: usize,
    #[comptime] max_head_dim: usize,
    #[comptime] unroll: usize,
    #[define(F)] _dtype: ElemType,
) {
    let splits = splits as usize;
    let step = split_len as usize;
    let block = CUBE_POS_X as usize;
    let s = block % splits;
    let kvh = (block / splits) % kv_heads as usize;
    let b = block / (splits * kv_heads as usize);
    let tid = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let lane = UNIT_POS_PLANE as usize;
    let plane = tid / PLANE_DIM as usize;
    let planes = threads / PLANE_DIM as usize;
    let g = group as usize;
    let d = head_dim as usize;
    let width = N::value();
    let dv = d / width;
    let start = s * step;
    let mut len = keys as usize - start;
    if len > step {
        len = step;
    }

    let mut q_s = Shared::<[f32]>::new_slice(max_group * max_head_dim);
    let mut scores = Shared::<[f32]>::new_slice(max_group * split);
    let mut red = Shared::<[f32]>::new_slice(split * 8usize);

    // The group's queries, in f32.
    let q_base = b * q.stride(0) + kvh * g * q.stride(1);
    let mut i = tid;
    while i < g * d {
        q_s[i] = f32::cast_from(q[q_base + (i / d) * q.stride(1) + i % d]);
        i += threads;
    }
    sync_cube();

    // Scores: a thread per key, `unroll` vector loads of its row at a time.
    let k_base = b * k_batch as usize + kvh * k_head as usize;
    let k_row = k_row as usize;
    let bias_base = b * bias.stride(0);
    let bias_step = bias.stride(3);
    if tid < len {
        let key = start + tid;
        let row = k_base + key * k_row;
        let mut acc = Array::<f32>::new(max_group);
        #[unroll]
        for h in 0..max_group {
            acc[h] = f32::new(0.0);
        }
        let mut t = 0usize;
        while t < dv {
            #[unroll]
            for u in 0..unroll {
                let tt = t + u;
                if tt < dv {
                    let kv = k[row + tt];
                    #[unroll]
                    for e in 0..N::value() {
                        let kf = f32::cast_from(kv.extract(e));
                        let col = tt * width + e;
                        #[unroll]
                        for h in 0..max_group {
                            if h < g {
                                acc[h] = acc[h] + q_s[h * d + col] * kf;
                            }
                        }
                    }
                }
            }
            t += unroll;
        }
        let shift = bias[bias_base + key * bias_step];
        #[unroll]
        for h in 0..max_group {
            if h < g {
                scores[h * split + tid] = acc[h] * scale + shift;
            }
        }
    }
    sync_cube();

    // Per head (a plane each): the split's max, the exponentials and their sum.
    let stats_row = ((b * kv_heads as usize + kvh) * splits + s) * g;
    let mut h = plane;
    while h < g {
        let mut local = f32::new(-3.4028235e38);
        let mut j = lane;
        while j < len {
            let x = scores[h * split + j];
            if x > local {
                local = x;
            }
            j += PLANE_DIM as usize;
        }
        let top = plane_max(local);
        let mut sum = f32::new(0.0);
        let mut j = lane;
        while j < len {
            let p = (scores[h * split + j] - top).exp();
            scores[h * split + j] = p;
            sum += p;
            j += PLANE_DIM as usize;
        }
        let sum = plane_sum(sum);
        if lane == 0 {
            stats[(stats_row + h) * 2] = top;
            stats[(stats_row + h) * 2 + 1] = sum;
        }
        h += planes;
    }
    sync_cube();

    // p·V: `dv` threads a key row (a vector each), `parts` rows at a time, `unroll` in flight.
    let parts = threads / dv;
    let col = tid % dv;
    let part = tid / dv;
    let v_base = b * v_batch as usize + kvh * v_head as usize;
    let v_row = v_row as usize;
    let mut acc = Array::<f32>::new(max_group * 8usize);
    #[unroll]
    for i in 0..max_group * 8usize {
        acc[i] = f32::new(0.0);
    }
    if part < parts {
        let mut j = part;
        while j < len {
            #[unroll]
            for u in 0..unroll {
                let jj = j + u * parts;
                if jj < len {
                    let vv = v[v_base + (start + jj) * v_row + col];
                    #[unroll]
                    for h in 0..max_group {
                        if h < g {
                            let p = scores[h * split + jj];
                            #[unroll]
                            for e in 0..N::value() {
                                acc[h * 8usize + e] =
                                    acc[h * 8usize + e] + p * f32::cast_from(vv.extract(e));
                            }
                        }
                    }
                }
            }
            j += unroll * parts;
        }
    }
    #[unroll]
    for h in 0..max_group {
        if h < g {
            if part < parts {
                #[unroll]
                for e in 0..N::value() {
                    red[part * d + col * width + e] = acc[h * 8usize + e];
                }
            }
            sync_cube();
            let mut dim = tid;
            while dim < d {
                let mut total = f32::new(0.0);
                let mut p = 0usize;
                while p < parts {
                    total += red[p * d + dim];
                    p += 1;
                }
                partial[(stats_row + h) * d + dim] = total;
                dim += threads;
            }
            sync_cube();
        }
    }
}

/// Merges the splits of one query head: `out[b, head, d] = Σ e^(m_s − M)·o_s / Σ e^(m_s − M)·l_s`.
#[cube(launch)]
fn decode_merge<F: Float>(
    partial: &Tensor<f32>,
    stats: &Tensor<f32>,
    output: &mut Tensor<F>,
    splits: u32,
    group: u32,
    head_dim: u32,
    #[define(F)] _dtype: ElemType,
) {
    // Cube = b · heads + head, head = kvh · group + h.
    let row = CUBE_POS_X as usize;
    let g = group as usize;
    let d = head_dim as usize;
    let n = splits as usize;
    let h = row % g;
    let bk = row / g;
    let mut top = f32::new(-3.4028235e38);
    let mut s = 0usize;
    while s < n {
        let m = stats[((bk * n + s) * g + h) * 2];
        if m > top {
            top = m;
        }
        s += 1;
    }
    let mut den = f32::new(0.0);
    let mut s = 0usize;
    while s < n {
        let at = ((bk * n + s) * g + h) * 2;
        den += (stats[at] - top).exp() * stats[at + 1];
        s += 1;
    }
    let mut dim = UNIT_POS_X as usize;
    while dim < d {
        let mut num = f32::new(0.0);
        let mut s = 0usize;
        while s < n {
            let at = (bk * n + s) * g + h;
            num += (stats[at * 2] - top).exp() * partial[at * d + dim];
            s += 1;
        }
        output[row * d + dim] = F::cast_from(num / den);
        dim += CUBE_DIM_X as usize;
    }
}

/// Vector loads a thread keeps in flight.
const UNROLL: usize = 4;

/// See [`crate::decode_attention`]; `None` unless the shapes and layouts fit: `q` `[b, heads,
/// 1, d]`, `k`/`v` `[b, kv, t, d]`, each with a unit last stride,
/// `bias` `[b, 1, 1, t]` f32, at most [`MAX_GROUP`] query heads per key/value head and a head
/// dim of at most [`MAX_HEAD_DIM`].
pub fn decode_attention(
    q: &BurnTensor<4>,
    k: &BurnTensor<4>,
    v: &BurnTensor<4>,
    bias: &BurnTensor<4>,
    scale: f64,
) -> Option<BurnTensor<4>> {
    let (qc, kc, vc, bc) = (on_cuda(q)?, on_cuda(k)?, on_cuda(v)?, on_cuda(bias)?);
    let [b, heads, s, d] = q.dims();
    let [_, kv, t, _] = k.dims();
    let unit_rows = [&qc, &kc, &vc].iter().all(|t| t.meta.strides()[3] == 1);
    let shapes = s == 1
        && kv > 0
        && heads % kv == 0
        && heads / kv <= MAX_GROUP
        && d <= MAX_HEAD_DIM
        && v.dims() == [b, kv, t, d]
        && bias.dims() == [b, 1, 1, t];
    let dtypes = qc.dtype == kc.dtype && kc.dtype == vc.dtype && bc.dtype == DType::F32;
    if !(unit_rows && shapes && dtypes) || t == 0 {
        return None;
    }
    let dtype = qc.dtype;
    // One vector width for both buffers: it divides the head dim, every stride and the
    // buffers' byte offsets, and a key row is at most a cube of threads wide.
    let (ks, vs) = (kc.meta.strides(), vc.meta.strides());
    let lengths = [d, ks[0], ks[1], ks[2], vs[0], vs[1], vs[2]];
    let offsets = [offset_bytes(&kc), offset_bytes(&vc)];
    let width = vector_width(dtype.size(), &lengths, &offsets);
    if d / width > SPLIT {
        return None;
    }
    let group = heads / kv;
    let splits = t.div_ceil(SPLIT);
    let key = || format!("decode attention {b}x{heads}x{t}x{d} ({kv} kv heads) {dtype:?}");
    timed(key, || {
        let (client, device) = (qc.client.clone(), qc.device.clone());
        let partial = empty_device_contiguous_dtype(
            client.clone(),
            device.clone(),
            [b * kv * splits * group, d].into(),
            DType::F32,
        );
        let stats = empty_device_contiguous_dtype(
            client.clone(),
            device.clone(),
            [b * kv * splits * group, 2].into(),
            DType::F32,
        );
        let out = empty_device_contiguous_dtype(client.clone(), device, qc.shape(), dtype);
        let in_vectors = |x: usize| (x / width) as u32;
        decode_split::launch(
            &client,
            CubeCount::Static((b * kv * splits) as u32, 1, 1),
            CubeDim::new_1d(SPLIT as u32),
            width,
            qc.clone().into_tensor_arg(),
            kc.clone().into_tensor_arg(),
            vc.clone().into_tensor_arg(),
            bc.clone().into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            scale as f32,
            t as u32,
            splits as u32,
            SPLIT as u32,
            kv as u32,
            group as u32,
            d as u32,
            in_vectors(ks[0]),
            in_vectors(ks[1]),
            in_vectors(ks[2]),
            in_vectors(vs[0]),
            in_vectors(vs[1]),
            in_vectors(vs[2]),
            SPLIT,
            MAX_GROUP,
            MAX_HEAD_DIM,
            UNROLL,
            dtype_to_storage_type(dtype),
        );
        decode_merge::launch(
            &client,
            CubeCount::Static((b * heads) as u32, 1, 1),
            CubeDim::new_1d(d.min(SPLIT) as u32),
            partial.into_tensor_arg(),
            stats.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            splits as u32,
            group as u32,
            d as u32,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
