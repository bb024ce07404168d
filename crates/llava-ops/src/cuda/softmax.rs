//! Attention probabilities in one kernel: `softmax(scores·scale + bias)` cast to the
//! activation dtype. burn's ops take eight launches for it (scale, bias, max, subtract, exp,
//! sum, divide, cast), each a full pass over f32 scores: in a 3k-token prefill that is about
//! 1.2 GB a pass and a layer, in a decode step eight launches a layer.

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use super::on_cuda;
use super::stats::timed;

/// Threads per row (one cube a row).
const BLOCK: usize = 256;

/// Row `r` of `scores` (`[.., keys]`, rows `in_pitch` apart) belongs to batch `r / rows_per_batch` and query
/// `r % queries`, whose bias row is `bias[batch, 0, query, ..]`.
// Kept as validated on the GPU (`a = a + b` on shared memory).
#[allow(clippy::assign_op_pattern)]
#[cube(launch)]
fn scaled_biased_softmax<F: Float, O: Float>(
    scores: &Tensor<F>,
    bias: &Tensor<F>,
    output: &mut Tensor<O>,
    scale: f32,
    keys: u32,
    in_pitch: u32,
    rows_per_batch: u32,
    queries: u32,
    #[comptime] block: usize,
    #[define(F, O)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let tid = UNIT_POS_X as usize;
    // Runtime copies of the block size: loop counters stepped by a comptime value do not
    // compile to mutable variables.
    let threads = CUBE_DIM_X as usize;
    let t = keys as usize;
    let base = row * t;
    let in_base = row * in_pitch as usize;
    let batch = row / rows_per_batch as usize;
    let query = row % queries as usize;
    let bias_base = batch * bias.stride(0) + query * bias.stride(2);
    let bias_step = bias.stride(3);
    let scale = F::cast_from(scale);
    let mut red = Shared::new_slice(block);

    let mut local = F::min_value();
    let mut j = tid;
    while j < t {
        let v = scores[in_base + j] * scale + bias[bias_base + j * bias_step];
        if v > local {
            local = v;
        }
        j += threads;
    }
    red[tid] = local;
    sync_cube();
    let mut stride = threads / 2;
    while stride > 0 {
        if tid < stride && red[tid + stride] > red[tid] {
            red[tid] = red[tid + stride];
        }
        sync_cube();
        stride /= 2;
    }
    let max = red[0];
    sync_cube();

    let mut sum = F::new(0.0);
    let mut j = tid;
    while j < t {
        let v = scores[in_base + j] * scale + bias[bias_base + j * bias_step];
        sum += (v - max).exp();
        j += threads;
    }
    red[tid] = sum;
    sync_cube();
    let mut stride = threads / 2;
    while stride > 0 {
        if tid < stride {
            red[tid] = red[tid] + red[tid + stride];
        }
        sync_cube();
        stride /= 2;
    }
    let total = red[0];

    let mut j = tid;
    while j < t {
        let v = scores[in_base + j] * scale + bias[bias_base + j * bias_step];
        output[base + j] = O::cast_from((v - max).exp() / total);
        j += threads;
    }
}

/// [`scaled_biased_softmax`] with the row held in registers: `per_thread` values a thread, so
/// the scores and the bias are read once instead of three times (the row must have at most
/// `block · per_thread` keys). A 3k-token prefill reads about 270 MB of scores per chunk.
// Kept in the shape of the validated kernel above (`a = a + b` on shared memory).
#[allow(clippy::assign_op_pattern)]
#[cube(launch)]
fn scaled_biased_softmax_held<F: Float, O: Float>(
    scores: &Tensor<F>,
    bias: &Tensor<F>,
    output: &mut Tensor<O>,
    scale: f32,
    keys: u32,
    in_pitch: u32,
    rows_per_batch: u32,
    queries: u32,
    #[comptime] block: usize,
    #[comptime] per_thread: usize,
    #[define(F, O)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let tid = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let t = keys as usize;
    let base = row * t;
    let in_base = row * in_pitch as usize;
    let batch = row / rows_per_batch as usize;
    let query = row % queries as usize;
    let bias_base = batch * bias.stride(0) + query * bias.stride(2);
    let bias_step = bias.stride(3);
    let scale = F::cast_from(scale);
    let mut red = Shared::new_slice(block);
    let mut held = Array::<F>::new(per_thread);

    let mut local = F::min_value();
    #[unroll]
    for i in 0..per_thread {
        let j = tid + i * threads;
        let mut v = F::min_value();
        if j < t {
            v = scores[in_base + j] * scale + bias[bias_base + j * bias_step];
        }
        held[i] = v;
        if v > local {
            local = v;
        }
    }
    red[tid] = local;
    sync_cube();
    let mut stride = threads / 2;
    while stride > 0 {
        if tid < stride && red[tid + stride] > red[tid] {
            red[tid] = red[tid + stride];
        }
        sync_cube();
        stride /= 2;
    }
    let max = red[0];
    sync_cube();

    let mut sum = F::new(0.0);
    #[unroll]
    for i in 0..per_thread {
        let j = tid + i * threads;
        let mut e = F::new(0.0);
        if j < t {
            e = (held[i] - max).exp();
        }
        held[i] = e;
        sum += e;
    }
    red[tid] = sum;
    sync_cube();
    let mut stride = threads / 2;
    while stride > 0 {
        if tid < stride {
            red[tid] = red[tid] + red[tid + stride];
        }
        sync_cube();
        stride /= 2;
    }
    let total = red[0];

    #[unroll]
    for i in 0..per_thread {
        let j = tid + i * threads;
        if j < t {
            output[base + j] = O::cast_from(held[i] / total);
        }
    }
}

/// See [`crate::attention_probs`]: `scores` `[b, kv, g·s, t]` f32 (rows may be pitched), `bias`
/// `[b, 1, s, t]` f32 (any strides).
pub fn attention_probs(
    scores: &BurnTensor<4>,
    bias: &BurnTensor<4>,
    scale: f64,
    dtype: DType,
) -> Option<BurnTensor<4>> {
    if !super::kernel_on(super::Kernel::AttentionProbs) {
        return None;
    }
    let (x, b) = (on_cuda(scores)?, on_cuda(bias)?);
    let [batch, kv, rows, t] = scores.dims();
    let queries = bias.dims()[2];
    // Rows may be pitched (cuBLAS writes the scores into cubecl's pitched allocation: 577
    // f32 keys get rows of 640), but must otherwise nest; the output is contiguous.
    let strides = x.meta.strides().to_vec();
    let pitch = strides[2];
    let contiguous = strides[3] == 1
        && pitch >= t
        && (kv == 1 || strides[1] == rows * pitch)
        && (batch == 1 || strides[0] == kv * rows * pitch);
    let shapes_fit = bias.dims() == [batch, 1, queries, t] && rows % queries == 0;
    if x.dtype != DType::F32 || b.dtype != DType::F32 || !contiguous || !shapes_fit {
        return None;
    }
    let key = || format!("attention probs {batch}x{kv}x{rows}x{t} ->{dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), x.shape(), dtype);
        let client = x.client.clone();
        let all_rows = (batch * kv * rows) as u32;
        let dtypes = [
            dtype_to_storage_type(DType::F32),
            dtype_to_storage_type(dtype),
        ];
        if let Some(per_thread) = crate::choice::probs_per_thread(t, BLOCK)
            .filter(|_| super::kernel_on(super::Kernel::HeldProbs))
        {
            scaled_biased_softmax_held::launch(
                &client,
                CubeCount::Static(all_rows, 1, 1),
                CubeDim::new_1d(BLOCK as u32),
                x.clone().into_tensor_arg(),
                b.into_tensor_arg(),
                out.clone().into_tensor_arg(),
                scale as f32,
                t as u32,
                pitch as u32,
                (kv * rows) as u32,
                queries as u32,
                BLOCK,
                per_thread,
                dtypes,
            );
            return Some(BurnTensor::from_primitive::<CubeBackend>(out));
        }
        scaled_biased_softmax::launch(
            &client,
            CubeCount::Static(all_rows, 1, 1),
            CubeDim::new_1d(BLOCK as u32),
            x.clone().into_tensor_arg(),
            b.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            scale as f32,
            t as u32,
            pitch as u32,
            (kv * rows) as u32,
            queries as u32,
            BLOCK,
            dtypes,
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
