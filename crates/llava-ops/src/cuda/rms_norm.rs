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

/// Most threads a row (one cube a row): fewer where the row has fewer vectors.
const BLOCK: usize = 256;

/// Sum of `value` over the cube: each plane's sum, then the planes' sums through `red` (one slot
/// a plane); every thread gets it.
#[cube]
pub(super) fn cube_sum(red: &mut Shared<[f32]>, value: f32) -> f32 {
    let plane = (UNIT_POS_X / PLANE_DIM) as usize;
    let partial = plane_sum(value);
    if UNIT_POS_PLANE == 0 {
        red[plane] = partial;
    }
    sync_cube();
    let planes = (CUBE_DIM_X / PLANE_DIM) as usize;
    let mut total = f32::new(0.0);
    for p in 0..planes {
        total += red[p];
    }
    sync_cube();
    total
}

/// Threads a cube for rows of `vectors` vectors ([`crate::choice::row_threads`]).
pub(super) fn threads_for(vectors: usize) -> usize {
    crate::choice::row_threads(vectors, BLOCK)
}

/// `x` and `output` `[rows, width]` contiguous in the activation dtype `F`, read as vectors of
/// `N`; `weight` `[width]`.
#[cube(launch)]
fn rms_norm_rows<F: Float, W: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    weight: &Tensor<W>,
    output: &mut Tensor<Vector<F, N>>,
    width: u32,
    eps: f32,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let tid = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let n = width as usize / N::value();
    let base = row * n;
    let mut red = Shared::<[f32]>::new_slice(8usize);

    let mut sum = f32::new(0.0);
    let mut j = tid;
    while j < n {
        let v = x[base + j];
        #[unroll]
        for e in 0..N::value() {
            let f = f32::cast_from(v.extract(e));
            sum += f * f;
        }
        j += threads;
    }
    let total = cube_sum(&mut red, sum);
    let inv = f32::new(1.0) / (total / f32::cast_from(width) + eps).sqrt();

    let mut j = tid;
    while j < n {
        let v = x[base + j];
        let mut out = v;
        #[unroll]
        for e in 0..N::value() {
            let normed = F::cast_from(f32::cast_from(v.extract(e)) * inv);
            out.insert(e, normed * F::cast_from(weight[j * N::value() + e]));
        }
        output[base + j] = out;
        j += threads;
    }
}

/// `sum = x + delta` rounded to `F` (the residual add), written out, then [`rms_norm_rows`] of
/// it into `output`: one pass less over the hidden states than the add and the norm apart.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
fn add_rms_norm_rows<F: Float, W: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    delta: &Tensor<Vector<F, N>>,
    weight: &Tensor<W>,
    sum: &mut Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    width: u32,
    eps: f32,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let tid = UNIT_POS_X as usize;
    let threads = CUBE_DIM_X as usize;
    let n = width as usize / N::value();
    let base = row * n;
    let mut red = Shared::<[f32]>::new_slice(8usize);

    let mut squares = f32::new(0.0);
    let mut j = tid;
    while j < n {
        let (xv, dv) = (x[base + j], delta[base + j]);
        let mut s = xv;
        #[unroll]
        for e in 0..N::value() {
            let r = F::cast_from(f32::cast_from(xv.extract(e)) + f32::cast_from(dv.extract(e)));
            s.insert(e, r);
            let f = f32::cast_from(r);
            squares += f * f;
        }
        sum[base + j] = s;
        j += threads;
    }
    let total = cube_sum(&mut red, squares);
    let inv = f32::new(1.0) / (total / f32::cast_from(width) + eps).sqrt();

    // Each thread reads back the vectors it wrote itself.
    let mut j = tid;
    while j < n {
        let v = sum[base + j];
        let mut out = v;
        #[unroll]
        for e in 0..N::value() {
            let normed = F::cast_from(f32::cast_from(v.extract(e)) * inv);
            out.insert(e, normed * F::cast_from(weight[j * N::value() + e]));
        }
        output[base + j] = out;
        j += threads;
    }
}

/// See [`crate::add_rms_norm`]; `None` unless `x` and `delta` are contiguous CUDA float tensors
/// of one shape and dtype.
pub fn add_rms_norm<const D: usize>(
    x: &BurnTensor<D>,
    delta: &BurnTensor<D>,
    weight: &BurnTensor<1>,
    eps: f64,
) -> Option<(BurnTensor<D>, BurnTensor<D>)> {
    if !super::kernel_on(super::Kernel::AddRmsNorm) {
        return None;
    }
    let (xc, dc, w) = (on_cuda(x)?, on_cuda(delta)?, on_cuda(weight)?);
    let dims = x.dims();
    let width = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    let fits = delta.dims() == dims && dc.dtype == xc.dtype && weight.dims()[0] == width;
    let contiguous = xc.is_contiguous() && dc.is_contiguous() && w.is_contiguous();
    if !fits || !contiguous || rows == 0 {
        return None;
    }
    let dtype = xc.dtype;
    let vector = super::elementwise::vector_width(dtype, width, &[&xc, &dc]);
    let key = || format!("add rms norm {rows}x{width} {dtype:?}");
    timed(key, || {
        let new = || {
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype)
        };
        let (sum, out) = (new(), new());
        let weight_dtype = w.dtype;
        add_rms_norm_rows::launch(
            &xc.client.clone(),
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(threads_for(width / vector) as u32),
            vector,
            xc.clone().into_tensor_arg(),
            dc.into_tensor_arg(),
            w.into_tensor_arg(),
            sum.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            width as u32,
            eps as f32,
            [
                dtype_to_storage_type(dtype),
                dtype_to_storage_type(weight_dtype),
            ],
        );
        Some([
            BurnTensor::from_primitive::<CubeBackend>(sum),
            BurnTensor::from_primitive::<CubeBackend>(out),
        ])
    })
    .map(|[sum, out]| (sum, out))
}

/// See [`crate::rms_norm`]; `None` unless `x` is a contiguous CUDA float tensor.
pub fn rms_norm<const D: usize>(
    x: &BurnTensor<D>,
    weight: &BurnTensor<1>,
    eps: f64,
) -> Option<BurnTensor<D>> {
    if !super::kernel_on(super::Kernel::RmsNorm) {
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
    let vector = super::elementwise::vector_width(dtype, width, &[&xc]);
    let key = || format!("rms norm {rows}x{width} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        let client = xc.client.clone();
        let weight_dtype = w.dtype;
        rms_norm_rows::launch(
            &client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(threads_for(width / vector) as u32),
            vector,
            xc.clone().into_tensor_arg(),
            w.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            width as u32,
            eps as f32,
            [
                dtype_to_storage_type(dtype),
                dtype_to_storage_type(weight_dtype),
            ],
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
