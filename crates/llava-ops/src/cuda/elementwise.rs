//! Two element-wise kernels of the decoder layer, each one launch where burn's ops take several:
//! rotate-half RoPE (two narrows, a cat, two products and a sum: about five launches for the
//! queries and five for the keys, a layer) and the SwiGLU gate `silu(gate) ⊙ up` (three); and
//! the towers' and projector's activations (QuickGELU: about ten launches over the MLP's f32
//! width, burn's sigmoid going through f32; GELU: five).
//! In a replayed decode step each launch costs its gap between kernels, whatever its size.

use burn::tensor::Tensor as BurnTensor;
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;

use super::on_cuda;
use super::stats::timed;

/// Threads per cube; one element a thread.
const BLOCK: u32 = 256;

/// `x` and `output` `[rows, heads, head_dim]` contiguous, `cos` and `sin` `[rows, head_dim]`
/// (`sin` with the first half negated). Each product and the sum rounded to `F`, as
/// transformers' bf16 formula rounds them.
#[cube(launch)]
fn rope_rows<F: Float>(
    x: &Tensor<F>,
    cos: &Tensor<F>,
    sin: &Tensor<F>,
    output: &mut Tensor<F>,
    len: u32,
    heads: u32,
    head_dim: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let d = head_dim as usize;
    let half = d / 2;
    let di = i % d;
    let row = i / (d * heads as usize);
    let mut partner = i + half;
    if di >= half {
        partner = i - half;
    }
    let t = row * d + di;
    // transformers' three ops, each rounded to `F`: `x·cos`, `rotate_half(x)·sin`, their sum.
    let a = F::cast_from(f32::cast_from(x[i]) * f32::cast_from(cos[t]));
    let b = F::cast_from(f32::cast_from(x[partner]) * f32::cast_from(sin[t]));
    output[i] = F::cast_from(f32::cast_from(a) + f32::cast_from(b));
}

/// `silu(gate)` rounded to `F`, then times `up` rounded to `F`: transformers' two bf16 ops.
#[cube(launch)]
fn silu_mul_kernel<F: Float>(
    gate: &Tensor<F>,
    up: &Tensor<F>,
    output: &mut Tensor<F>,
    len: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let g = f32::cast_from(gate[i]);
    let act = F::cast_from(g / (f32::new(1.0) + (-g).exp()));
    output[i] = F::cast_from(f32::cast_from(act) * f32::cast_from(up[i]));
}

/// The activations [`activation_kernel`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x·σ(1.702·x)` (CLIP): `1.702·x` rounded to `F`, its sigmoid rounded, the product rounded,
    /// as transformers' three half-precision ops round them.
    QuickGelu,
    /// Exact (erf) GELU in f32, rounded once (the projector, some towers).
    Gelu,
    /// `tanh`-approximate GELU in f32, rounded once (SigLIP).
    GeluTanh,
}

/// `output[i] = act(x[i])`; `kind` 0 QuickGELU, 1 exact GELU, 2 `tanh` GELU.
#[cube(launch)]
fn activation_kernel<F: Float>(
    x: &Tensor<F>,
    output: &mut Tensor<F>,
    len: u32,
    #[comptime] kind: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let v = f32::cast_from(x[i]);
    if kind == 0 {
        let scaled = f32::cast_from(F::cast_from(v * f32::new(1.702)));
        let sig = f32::cast_from(F::cast_from(
            f32::new(1.0) / (f32::new(1.0) + (-scaled).exp()),
        ));
        output[i] = F::cast_from(v * sig);
    } else if kind == 1 {
        let e = Erf::erf(v * f32::new(std::f32::consts::FRAC_1_SQRT_2));
        output[i] = F::cast_from(f32::new(0.5) * v * (f32::new(1.0) + e));
    } else {
        let inner = f32::new(0.797_884_6) * (v + f32::new(0.044715) * v * v * v);
        output[i] = F::cast_from(f32::new(0.5) * v * (f32::new(1.0) + inner.tanh()));
    }
}

fn cubes(len: usize) -> CubeCount {
    CubeCount::Static((len as u32).div_ceil(BLOCK), 1, 1)
}

/// See [`crate::rope_bshd`]; `None` unless every tensor is a contiguous CUDA float tensor of
/// one dtype with `x` `[b, s, heads, d]` and the tables `[b, s, d]`.
pub fn rope_bshd(
    x: &BurnTensor<4>,
    cos: &BurnTensor<3>,
    sin: &BurnTensor<3>,
) -> Option<BurnTensor<4>> {
    if !super::kernel_on("rope") {
        return None;
    }
    let (xc, c, s) = (on_cuda(x)?, on_cuda(cos)?, on_cuda(sin)?);
    let [b, seq, heads, d] = x.dims();
    let fits = cos.dims() == [b, seq, d] && sin.dims() == [b, seq, d] && d % 2 == 0;
    let same = xc.dtype == c.dtype && c.dtype == s.dtype;
    let contiguous = xc.is_contiguous() && c.is_contiguous() && s.is_contiguous();
    let len = xc.meta.num_elements();
    if !fits || !same || !contiguous || len == 0 || len > u32::MAX as usize {
        return None;
    }
    let dtype = xc.dtype;
    let key = || format!("rope {b}x{seq}x{heads}x{d} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        rope_rows::launch(
            &xc.client.clone(),
            cubes(len),
            CubeDim::new_1d(BLOCK),
            xc.clone().into_tensor_arg(),
            c.into_tensor_arg(),
            s.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            len as u32,
            heads as u32,
            d as u32,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}

/// See [`crate::silu_mul`]; `None` unless both are contiguous CUDA float tensors of one shape
/// and dtype.
pub fn silu_mul<const D: usize>(gate: &BurnTensor<D>, up: &BurnTensor<D>) -> Option<BurnTensor<D>> {
    if !super::kernel_on("silu_mul") {
        return None;
    }
    let (g, u) = (on_cuda(gate)?, on_cuda(up)?);
    let len = g.meta.num_elements();
    let fits = gate.dims() == up.dims() && g.dtype == u.dtype;
    if !fits || !g.is_contiguous() || !u.is_contiguous() || len == 0 || len > u32::MAX as usize {
        return None;
    }
    let dtype = g.dtype;
    let key = || format!("silu mul {len} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(g.client.clone(), g.device.clone(), g.shape(), dtype);
        silu_mul_kernel::launch(
            &g.client.clone(),
            cubes(len),
            CubeDim::new_1d(BLOCK),
            g.clone().into_tensor_arg(),
            u.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            len as u32,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}

/// See [`crate::quick_gelu`] and [`crate::gelu`]; `None` unless `x` is a contiguous CUDA float
/// tensor.
pub fn activation<const D: usize>(x: &BurnTensor<D>, act: Activation) -> Option<BurnTensor<D>> {
    if !super::kernel_on("activation") {
        return None;
    }
    let xc = on_cuda(x)?;
    let len = xc.meta.num_elements();
    if !xc.is_contiguous() || len == 0 || len > u32::MAX as usize {
        return None;
    }
    let dtype = xc.dtype;
    let kind = match act {
        Activation::QuickGelu => 0,
        Activation::Gelu => 1,
        Activation::GeluTanh => 2,
    };
    let key = || format!("activation {act:?} {len} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        activation_kernel::launch(
            &xc.client.clone(),
            cubes(len),
            CubeDim::new_1d(BLOCK),
            xc.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            len as u32,
            kind,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
