//! Two element-wise kernels of the decoder layer, each one launch where burn's ops take several:
//! rotate-half RoPE (two narrows, a cat, two products and a sum: about five launches for the
//! queries and five for the keys, a layer) and the SwiGLU gate `silu(gate) ⊙ up` (three); and
//! the towers' and projector's activations (QuickGELU: about ten launches over the MLP's f32
//! width, burn's sigmoid going through f32; GELU: five).
//! In a replayed decode step each launch costs its gap between kernels, whatever its size.

use burn::tensor::{DType, Tensor as BurnTensor};
use burn_backend::TensorMetadata;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

use super::on_cuda;
use super::stats::timed;

/// Threads per cube; one vector a thread.
const BLOCK: u32 = 256;

/// `x` and `output` `[rows, heads, head_dim]` contiguous, `cos` and `sin` `[rows, head_dim]`
/// (`sin` with the first half negated), all read as vectors of `N` (`N` divides half the head
/// dim, so a vector's rotate-half partner is one vector). Each product and the sum rounded to
/// `F`, as transformers' bf16 formula rounds them.
#[allow(clippy::too_many_arguments)]
#[cube(launch)]
fn rope_rows<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    cos: &Tensor<Vector<F, N>>,
    sin: &Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    len: u32,
    heads: u32,
    head_vectors: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let d = head_vectors as usize;
    let half = d / 2;
    let di = i % d;
    let row = i / (d * heads as usize);
    let mut partner = i + half;
    if di >= half {
        partner = i - half;
    }
    let t = row * d + di;
    let (xv, pv, cv, sv) = (x[i], x[partner], cos[t], sin[t]);
    let mut out = xv;
    #[unroll]
    for e in 0..N::value() {
        // transformers' three ops, each rounded to `F`: `x·cos`, `rotate_half(x)·sin`, the sum.
        let a = F::cast_from(f32::cast_from(xv.extract(e)) * f32::cast_from(cv.extract(e)));
        let b = F::cast_from(f32::cast_from(pv.extract(e)) * f32::cast_from(sv.extract(e)));
        out.insert(e, F::cast_from(f32::cast_from(a) + f32::cast_from(b)));
    }
    output[i] = out;
}

/// `silu(gate)` rounded to `F`, then times `up` rounded to `F`: transformers' two bf16 ops.
#[cube(launch)]
fn silu_mul_kernel<F: Float, N: Size>(
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    len: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let (gv, uv) = (gate[i], up[i]);
    let mut out = gv;
    #[unroll]
    for e in 0..N::value() {
        let g = f32::cast_from(gv.extract(e));
        let act = F::cast_from(g / (f32::new(1.0) + (-g).exp()));
        out.insert(
            e,
            F::cast_from(f32::cast_from(act) * f32::cast_from(uv.extract(e))),
        );
    }
    output[i] = out;
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

/// `act(v)` for one value; `kind` 0 QuickGELU, 1 exact GELU, 2 `tanh` GELU.
#[cube]
fn activate<F: Float>(v: f32, #[comptime] kind: u32) -> F {
    if kind == 0 {
        let scaled = f32::cast_from(F::cast_from(v * f32::new(1.702)));
        let sig = f32::cast_from(F::cast_from(
            f32::new(1.0) / (f32::new(1.0) + (-scaled).exp()),
        ));
        F::cast_from(v * sig)
    } else if kind == 1 {
        let e = Erf::erf(v * f32::new(std::f32::consts::FRAC_1_SQRT_2));
        F::cast_from(f32::new(0.5) * v * (f32::new(1.0) + e))
    } else {
        let inner = f32::new(0.797_884_6) * (v + f32::new(0.044715) * v * v * v);
        F::cast_from(f32::new(0.5) * v * (f32::new(1.0) + inner.tanh()))
    }
}

/// `output[i] = act(x[i])` element by element, over vectors of `N`.
#[cube(launch)]
fn activation_kernel<F: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    len: u32,
    #[comptime] kind: u32,
    #[define(F)] _dtype: ElemType,
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let xv = x[i];
    let mut out = xv;
    #[unroll]
    for e in 0..N::value() {
        out.insert(e, activate::<F>(f32::cast_from(xv.extract(e)), kind));
    }
    output[i] = out;
}

/// `output = (sums + bias)` rounded to `F` once, for `sums` `[rows, width]` in f32 (a product's
/// sums) and `bias` `[width]`, over vectors of `N` (`N` divides `width`): PyTorch's `addmm`
/// epilogue, in one pass where burn's ops took an f32 add and a cast.
#[cube(launch)]
fn bias_round_kernel<F: Float, W: Float, N: Size>(
    sums: &Tensor<Vector<f32, N>>,
    bias: &Tensor<W>,
    output: &mut Tensor<Vector<F, N>>,
    len: u32,
    width: u32,
    #[define(F, W)] _dtypes: [ElemType; 2],
) {
    let i = (CUBE_POS_X * CUBE_DIM_X + UNIT_POS_X) as usize;
    if i >= len as usize {
        terminate!();
    }
    let sv = sums[i];
    let col = (i * N::value()) % width as usize;
    let mut out = Vector::<F, N>::cast_from(sv);
    #[unroll]
    for e in 0..N::value() {
        out.insert(
            e,
            F::cast_from(sv.extract(e) + f32::cast_from(bias[col + e])),
        );
    }
    output[i] = out;
}

fn cubes(len: usize) -> CubeCount {
    CubeCount::Static((len as u32).div_ceil(BLOCK), 1, 1)
}

/// Elements a thread takes: the widest vector, 16 bytes at most (8 half-precision or 4 f32
/// values), that divides `multiple_of` and keeps every buffer's offset aligned
/// ([`crate::choice::vector_width`]). The scalar kernels reached about a third of the card's
/// bandwidth (SwiGLU's gate over the 7B prompt: about 190 µs, 80 µs on vectors).
pub(super) fn vector_width(dtype: DType, multiple_of: usize, tensors: &[&CubeTensor]) -> usize {
    let offsets: Vec<usize> = tensors.iter().map(|t| super::offset_bytes(t)).collect();
    crate::choice::vector_width(dtype.size(), &[multiple_of], &offsets)
}

/// See [`crate::rope_bshd`]; `None` unless every tensor is a contiguous CUDA float tensor of
/// one dtype with `x` `[b, s, heads, d]` and the tables `[b, s, d]`.
pub fn rope_bshd(
    x: &BurnTensor<4>,
    cos: &BurnTensor<3>,
    sin: &BurnTensor<3>,
) -> Option<BurnTensor<4>> {
    if !super::kernel_on(super::Kernel::Rope) {
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
    let vector = vector_width(dtype, d / 2, &[&xc, &c, &s]);
    let key = || format!("rope {b}x{seq}x{heads}x{d} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        rope_rows::launch(
            &xc.client.clone(),
            cubes(len / vector),
            CubeDim::new_1d(BLOCK),
            vector,
            xc.clone().into_tensor_arg(),
            c.into_tensor_arg(),
            s.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            (len / vector) as u32,
            heads as u32,
            (d / vector) as u32,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}

/// See [`crate::silu_mul`]; `None` unless both are contiguous CUDA float tensors of one shape
/// and dtype.
pub fn silu_mul<const D: usize>(gate: &BurnTensor<D>, up: &BurnTensor<D>) -> Option<BurnTensor<D>> {
    if !super::kernel_on(super::Kernel::SiluMul) {
        return None;
    }
    let (g, u) = (on_cuda(gate)?, on_cuda(up)?);
    let len = g.meta.num_elements();
    let fits = gate.dims() == up.dims() && g.dtype == u.dtype;
    if !fits || !g.is_contiguous() || !u.is_contiguous() || len == 0 || len > u32::MAX as usize {
        return None;
    }
    let dtype = g.dtype;
    let vector = vector_width(dtype, len, &[&g, &u]);
    let key = || format!("silu mul {len} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(g.client.clone(), g.device.clone(), g.shape(), dtype);
        silu_mul_kernel::launch(
            &g.client.clone(),
            cubes(len / vector),
            CubeDim::new_1d(BLOCK),
            vector,
            g.clone().into_tensor_arg(),
            u.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            (len / vector) as u32,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}

/// See [`crate::quick_gelu`] and [`crate::gelu`]; `None` unless `x` is a contiguous CUDA float
/// tensor.
pub fn activation<const D: usize>(x: &BurnTensor<D>, act: Activation) -> Option<BurnTensor<D>> {
    if !super::kernel_on(super::Kernel::Activation) {
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
    let vector = vector_width(dtype, len, &[&xc]);
    let key = || format!("activation {act:?} {len} {dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(xc.client.clone(), xc.device.clone(), xc.shape(), dtype);
        activation_kernel::launch(
            &xc.client.clone(),
            cubes(len / vector),
            CubeDim::new_1d(BLOCK),
            vector,
            xc.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            (len / vector) as u32,
            kind,
            dtype_to_storage_type(dtype),
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}

/// `(sums + bias)` rounded once to `dtype`, for `sums` a contiguous `[rows, width]` f32 CUDA
/// tensor and `bias` `[width]`; `None` where they do not fit (the caller adds and casts).
pub fn bias_round(
    sums: &BurnTensor<2>,
    bias: &BurnTensor<1>,
    dtype: DType,
) -> Option<BurnTensor<2>> {
    if !super::kernel_on(super::Kernel::BiasRound) {
        return None;
    }
    let (sc, bc) = (on_cuda(sums)?, on_cuda(bias)?);
    let [rows, width] = sums.dims();
    let len = rows * width;
    let fits = sc.dtype == DType::F32
        && bias.dims()[0] == width
        && matches!(dtype, DType::BF16 | DType::F16);
    if !fits || !sc.is_contiguous() || !bc.is_contiguous() || len == 0 || len > u32::MAX as usize {
        return None;
    }
    let vector = vector_width(DType::F32, width, &[&sc]);
    let key = || format!("bias round {rows}x{width} F32->{dtype:?}");
    timed(key, || {
        let out =
            empty_device_contiguous_dtype(sc.client.clone(), sc.device.clone(), sc.shape(), dtype);
        bias_round_kernel::launch(
            &sc.client.clone(),
            cubes(len / vector),
            CubeDim::new_1d(BLOCK),
            vector,
            sc.clone().into_tensor_arg(),
            bc.clone().into_tensor_arg(),
            out.clone().into_tensor_arg(),
            (len / vector) as u32,
            width as u32,
            [
                dtype_to_storage_type(dtype),
                dtype_to_storage_type(bc.dtype),
            ],
        );
        Some(BurnTensor::from_primitive::<CubeBackend>(out))
    })
}
