//! RMSNorm in one kernel, as transformers computes it: the mean square in f32, the normalised
//! row rounded to the activation dtype, then multiplied by the weight in that dtype. burn's ops
//! take about ten launches for it, two norms a layer: in a replayed decode step that is a
//! seventh of the launches.

use burn::tensor::Tensor as BurnTensor;
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

/// `x` and `output` `[rows, width]` contiguous in the activation dtype `F`, `weight` `[width]`.
// Kept as validated on the GPU (`a = a + b` on shared memory).
#[allow(clippy::assign_op_pattern)]
#[cube(launch)]
fn rms_norm_rows<F: Float, W: Float>(
    x: &Tensor<F>,
    weight: &Tensor<W>,
    output: &mut Tensor<F>,
    width: u32,
    eps: f32,
    #[comptime] block: usize,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let tid = UNIT_POS_X as usize;
    // Runtime copies of the block size: loop counters stepped by a comptime value do not
    // compile to mutable variables.
    let threads = CUBE_DIM_X as usize;
    let n = width as usize;
    let base = row * n;
    let mut red = Shared::new_slice(block);

    let mut sum = f32::new(0.0);
    let mut j = tid;
    while j < n {
        let v = f32::cast_from(x[base + j]);
        sum += v * v;
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
    let inv = f32::new(1.0) / (red[0] / f32::cast_from(width) + eps).sqrt();

    let mut j = tid;
    while j < n {
        let normed = F::cast_from(f32::cast_from(x[base + j]) * inv);
        output[base + j] = normed * F::cast_from(weight[j]);
        j += threads;
    }
}

/// See [`crate::rms_norm`]; `None` unless `x` is a contiguous CUDA float tensor.
pub fn rms_norm<const D: usize>(
    x: &BurnTensor<D>,
    weight: &BurnTensor<1>,
    eps: f64,
) -> Option<BurnTensor<D>> {
    if !super::kernel_on("rms_norm") {
        return None;
    }
    let (xc, w) = (on_cuda(x)?, on_cuda(weight)?);
    let dims = x.dims();
    let width = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    if !xc.is_contiguous() || !w.is_contiguous() || weight.dims()[0] != width || rows == 0 {
        return None;
    }
    let dtype = xc.dtype;
    let key = || format!("rms norm {rows}x{width} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        let client = xc.client.clone();
        let weight_dtype = w.dtype;
        rms_norm_rows::launch(
            &client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(BLOCK as u32),
            xc.clone().into_tensor_arg(),
            w.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            width as u32,
            eps as f32,
            BLOCK,
            [
                dtype_to_storage_type(dtype),
                dtype_to_storage_type(weight_dtype),
            ],
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
