//! LayerNorm in one kernel, as the vision tower computes it (PyTorch's half-precision layer
//! norm): mean and variance in f32, `(x − mean)/√(var + eps)·weight + bias` in f32, rounded
//! once. burn's ops take about ten launches for it, four norms a tower layer; in the profile
//! each of its two row means over 2885 × 1024 took 133 µs.

use burn::tensor::Tensor as BurnTensor;
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use super::on_cuda;
use super::stats::timed;

use super::rms_norm::{cube_sum, threads_for};

/// `x` and `output` `[rows, width]` contiguous in the activation dtype `F`, read as vectors of
/// `N`; `weight` and `bias` `[width]`. Mean, then variance about it (two passes, as PyTorch's
/// Welford sums are close to), in f32.
#[cube(launch)]
fn layer_norm_rows<F: Float, W: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    weight: &Tensor<W>,
    bias: &Tensor<W>,
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
            sum += f32::cast_from(v.extract(e));
        }
        j += threads;
    }
    let mean = cube_sum(&mut red, sum) / f32::cast_from(width);

    let mut squares = f32::new(0.0);
    let mut j = tid;
    while j < n {
        let v = x[base + j];
        #[unroll]
        for e in 0..N::value() {
            let c = f32::cast_from(v.extract(e)) - mean;
            squares += c * c;
        }
        j += threads;
    }
    let var = cube_sum(&mut red, squares) / f32::cast_from(width);
    let inv = f32::new(1.0) / (var + eps).sqrt();

    let mut j = tid;
    while j < n {
        let v = x[base + j];
        let mut out = v;
        #[unroll]
        for e in 0..N::value() {
            let k = j * N::value() + e;
            let normed = (f32::cast_from(v.extract(e)) - mean) * inv;
            let y = normed * f32::cast_from(weight[k]) + f32::cast_from(bias[k]);
            out.insert(e, F::cast_from(y));
        }
        output[base + j] = out;
        j += threads;
    }
}

/// See [`crate::layer_norm`]; `None` unless `x` is a contiguous CUDA float tensor and the
/// parameters are `[width]` of one dtype.
pub fn layer_norm<const D: usize>(
    x: &BurnTensor<D>,
    weight: &BurnTensor<1>,
    bias: &BurnTensor<1>,
    eps: f64,
) -> Option<BurnTensor<D>> {
    if !super::kernel_on(super::Kernel::LayerNorm) {
        return None;
    }
    let (xc, w, b) = (on_cuda(x)?, on_cuda(weight)?, on_cuda(bias)?);
    let dims = x.dims();
    let width = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    let params_fit = weight.dims()[0] == width && bias.dims()[0] == width && w.dtype == b.dtype;
    let contiguous = xc.is_contiguous() && w.is_contiguous() && b.is_contiguous();
    if !contiguous || !params_fit || rows == 0 {
        return None;
    }
    let dtype = xc.dtype;
    let vector = super::elementwise::vector_width(dtype, width, &[&xc]);
    let key = || format!("layer norm {rows}x{width} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        let client = xc.client.clone();
        let param_dtype = w.dtype;
        layer_norm_rows::launch(
            &client,
            CubeCount::Static(rows as u32, 1, 1),
            CubeDim::new_1d(threads_for(width / vector) as u32),
            vector,
            xc.clone().into_tensor_arg(),
            w.into_tensor_arg(),
            b.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            width as u32,
            eps as f32,
            [
                dtype_to_storage_type(dtype),
                dtype_to_storage_type(param_dtype),
            ],
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
