//! Prefill products through cuBLAS (loaded at run time by cudarc, as cubecl loads the driver).
//!
//! cubek's best kernel reaches 200–250 TFLOP/s on the prefill projections of a 7B model and
//! about 25–50 on the attention products; cuBLAS does 585–723 on the same H100/H200 (issue 5).
//! cubecl keeps its CUDA stream to itself; `cubecl_stream.rs` finds it (through CUPTI) and the
//! products are queued on it, with no wait (default), from cubecl's device thread (one
//! `exclusive` call a group). Where it cannot be found, the call waits
//! for cubecl's stream to drain, runs cuBLAS on a stream of its own and waits for it: a round
//! trip per product (tens of µs against the milliseconds a prefill product takes). Either way
//! only products with more than [`crate::choice::SMALL_M`] rows come here, never a decode step
//! (and never while a step is being recorded as a CUDA graph).
//!
//! `LLAVA_CUBLAS=0` turns it off; it is off by itself where cuBLAS cannot be loaded.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::DType;
use burn_backend::Backend;
use burn_backend::cubecl::dtype_to_storage_type;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::{empty_device_dtype, zeros_client};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeDevice};
use cubecl_runtime::runtime::Runtime;
use cubecl_runtime::server::ServerStorage;
use cubecl_runtime::storage::{ComputeStorage, ManagedResource};
use cudarc::cublas::{result as blas, sys};
use cudarc::driver::{CudaContext, CudaStream};

use crate::choice::{BlasOperand, blas_operand, blas_operand_split};

type Server = <CudaRuntime as Runtime>::Server;

/// A `tracing` warning the first time this call site is reached, never again.
macro_rules! print_once {
    ($($arg:tt)*) => {{
        static ONCE: OnceLock<()> = OnceLock::new();
        ONCE.get_or_init(|| tracing::warn!($($arg)*));
    }};
}

/// One device's cuBLAS handle and the stream its products run on.
struct Blas {
    _context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    handle: sys::cublasHandle_t,
}

// SAFETY: the handle is used only under the mutex that owns it, with its context bound to the
// calling thread first.
unsafe impl Send for Blas {}

/// Whether products may go to cuBLAS: not turned off, and the library loads.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let wanted = crate::options::current().cublas;
        // SAFETY: only tries to open the library.
        wanted && unsafe { sys::is_culib_present() }
    })
}

fn handles() -> &'static Mutex<HashMap<usize, Option<Blas>>> {
    static HANDLES: OnceLock<Mutex<HashMap<usize, Option<Blas>>>> = OnceLock::new();
    HANDLES.get_or_init(Default::default)
}

fn open(ordinal: usize) -> Option<Blas> {
    let context = CudaContext::new(ordinal).ok()?;
    let stream = context.new_stream().ok()?;
    let handle = blas::create_handle().ok()?;
    // SAFETY: a live handle and a stream of the same context.
    unsafe { blas::set_stream(handle, stream.cu_stream() as sys::cudaStream_t) }.ok()?;
    Some(Blas {
        _context: context,
        stream,
        handle,
    })
}

fn data_type(dtype: DType) -> Option<sys::cudaDataType> {
    match dtype {
        DType::BF16 => Some(sys::cudaDataType::CUDA_R_16BF),
        DType::F16 => Some(sys::cudaDataType::CUDA_R_16F),
        DType::F32 => Some(sys::cudaDataType::CUDA_R_32F),
        _ => None,
    }
}

/// `lhs · rhs` (`[.., m, k]` by `[.., k, n]`, half precision) in `out_dtype`, or `None` when
/// cuBLAS does not take it (off, a layout it cannot read, recording a graph, an error).
pub fn matmul(lhs: &CubeTensor, rhs: &CubeTensor, out_dtype: DType) -> Option<CubeTensor> {
    matmul_group(lhs, &[rhs], out_dtype)?.pop()
}

/// One product made ready for cuBLAS: how it maps onto calls, its output, and the device
/// addresses of lhs, rhs and output (their buffers are held by the caller's [`Held`]).
struct Product {
    plan: BlasPlan,
    mkn: (usize, usize, usize),
    out: CubeTensor,
    ptrs: [u64; 3],
}

/// A buffer held in place (never freed, handed out again or moved while held).
type Resource = ManagedResource<<<Server as ServerStorage>::Storage as ComputeStorage>::Resource>;

/// The buffers a group reads and writes. The round trip holds them until its products are
/// done; the stream path drops them at once (see [`on_cubecl_stream`]).
type Held = Vec<Resource>;

/// Takes `t`'s buffer from cubecl and returns its device address. From another thread this is
/// a blocking call to cubecl's device thread, which first issues every launch handed to it
/// before (in order); on that thread (inside `exclusive`) it runs inline, after them. Either
/// way the launches that write `t` are on cubecl's stream when this returns.
fn take(t: &CubeTensor, held: &mut Held) -> Option<u64> {
    let resource = t.client.get_resource::<Server>(t.handle.clone()).ok()?;
    let ptr = resource.resource().ptr;
    held.push(resource);
    Some(ptr)
}

/// The outputs and plans of `lhs · rhs` for each of `rhss`, with the buffers taken: the shared
/// `lhs` once, and each output after the launch that allocates it; `None` where cuBLAS cannot
/// read a layout.
fn prepare_group(
    lhs: &CubeTensor,
    rhss: &[&CubeTensor],
    out_dtype: DType,
) -> Option<(Vec<Product>, Held)> {
    let mut products = rhss
        .iter()
        .map(|rhs| prepare(lhs, rhs, out_dtype))
        .collect::<Option<Vec<_>>>()?;
    let mut held = Vec::with_capacity(1 + 2 * products.len());
    let lhs_ptr = take(lhs, &mut held)?;
    for (product, rhs) in products.iter_mut().zip(rhss) {
        let rhs_ptr = take(rhs, &mut held)?;
        let out_ptr = take(&product.out, &mut held)?;
        product.ptrs = [lhs_ptr, rhs_ptr, out_ptr];
    }
    Some((products, held))
}

/// The output of `lhs · rhs` and its plan (addresses not yet taken); `None` where cuBLAS cannot
/// read the layouts.
fn prepare(lhs: &CubeTensor, rhs: &CubeTensor, out_dtype: DType) -> Option<Product> {
    let (ls, rs) = (lhs.meta.shape().to_vec(), rhs.meta.shape().to_vec());
    let d = ls.len();
    let (m, k, n) = (ls[d - 2], ls[d - 1], rs[d - 1]);
    let mut out_shape = ls.clone();
    out_shape[d - 1] = n;
    // Written by a cubecl launch so its buffer exists (cubecl allocates a buffer when a launch
    // first binds it). Its rows may be padded (cubecl's CUDA allocator pitches rows up to 512
    // bytes: `lm_head`'s 576 columns get 768), so its layout is read back like the operands'.
    let out = new_output(lhs, out_shape.clone(), out_dtype);
    let plan = BlasPlan::new(
        (&ls, lhs.meta.strides()),
        (&rs, rhs.meta.strides()),
        (&out_shape, out.meta.strides()),
    )?;
    let (a, b, c) = (plan.lhs, plan.rhs, plan.out);
    if c.transposed {
        return None;
    }
    let fits_int = |v: usize| i32::try_from(v).is_ok();
    if ![m, k, n, plan.batch, a.ld, b.ld, c.ld]
        .into_iter()
        .all(fits_int)
    {
        return None;
    }
    Some(Product {
        plan,
        mkn: (m, k, n),
        out,
        ptrs: [0; 3],
    })
}

/// `lhs · rhs` for each of `rhss` (one shared left operand: a layer's q/k/v or gate/up
/// projections), in `out_dtype`, with one wait for cubecl's stream before the products and one
/// for cuBLAS's after them; `None` when cuBLAS does not take every product.
pub fn matmul_group(
    lhs: &CubeTensor,
    rhss: &[&CubeTensor],
    out_dtype: DType,
) -> Option<Vec<CubeTensor>> {
    let CubeDevice::Cuda(cuda) = &lhs.device else {
        return None;
    };
    if !enabled() || lhs.client.is_capturing() || rhss.is_empty() {
        return None;
    }
    let in_type = data_type(lhs.dtype).filter(|_| rhss.iter().all(|r| r.dtype == lhs.dtype))?;
    let out_type = data_type(out_dtype)?;
    if super::kernel_on(super::Kernel::BlasStream)
        && let Some(outs) = on_cubecl_stream(lhs, rhss, out_dtype, cuda.index, (in_type, out_type))
    {
        return Some(outs);
    }
    let (products, held) = prepare_group(lhs, rhss, out_dtype)?;
    let mut guard = handles().lock().ok()?;
    let blas = guard
        .entry(cuda.index)
        .or_insert_with(|| open(cuda.index))
        .as_ref()?;
    blas._context.bind_to_thread().ok()?;
    // cuBLAS's stream starts after cubecl's queued work: wait for cubecl's stream here.
    <CubeBackend as Backend>::sync(&lhs.device).ok()?;
    let (in_size, out_size) = (lhs.dtype.size(), out_dtype.size());
    let mut launched = Ok(());
    for product in &products {
        launched = launch(
            blas.handle,
            product,
            (in_type, in_size),
            (out_type, out_size),
        );
        if launched.is_err() {
            break;
        }
    }
    if let Err(e) = launched {
        // Calls already queued may still write the outputs: wait for them before they are
        // dropped.
        let _ = blas.stream.synchronize();
        warn_once(&format!("cuBLAS declined a product of the group: {e:?}"));
        return None;
    }
    let outs = products.into_iter().map(|p| p.out).collect();
    // cubecl's later work starts after the products: wait for them here, the operands held
    // until they are done.
    blas.stream.synchronize().ok()?;
    drop(held);
    Some(outs)
}

/// The products queued on cubecl's own stream (on by default, `LLAVA_OPS_OFF=blas_stream` for
/// the round trip; see `cubecl_stream.rs`): behind cubecl's queued work and ahead of its later
/// work by the stream's order, so neither side waits. The operands need not be held: cubecl's
/// memory is managed per stream, so a buffer freed after the products is reused only by work
/// queued behind them on the same stream. `None` (nothing queued) where that stream is unknown
/// or an operand was made on another cubecl stream.
///
/// The whole group runs in one `exclusive` call on cubecl's device thread, where the outputs'
/// allocations and the buffer lookups run inline. Made from the calling thread, each lookup
/// was a blocking trip to that thread: a queued 2885×1024×1024 product then took 72.6 µs a
/// call against 47–52 µs this way (`xtask sweep --ops tower`, GPU time included).
fn on_cubecl_stream(
    lhs: &CubeTensor,
    rhss: &[&CubeTensor],
    out_dtype: DType,
    device: usize,
    types: (sys::cudaDataType, sys::cudaDataType),
) -> Option<Vec<CubeTensor>> {
    let stream = lhs.handle.stream.value;
    if rhss.iter().any(|r| r.handle.stream.value != stream) {
        print_once!(
            "llava-ops: blas_stream: an operand was made on another cubecl stream; cuBLAS waits"
        );
        return None;
    }
    // Found (once per stream) before the exclusive call: the search waits on cubecl itself.
    let cu_stream = super::cubecl_stream::stream_of(lhs, device, stream)?;
    let queued = lhs
        .client
        .exclusive(|| queue_on_stream(lhs, rhss, out_dtype, (device, cu_stream), types));
    if let Err(e) = &queued {
        print_once!("llava-ops: cuBLAS on cubecl's device thread failed ({e:?}); cuBLAS waits");
    }
    queued.ok().flatten()
}

/// [`on_cubecl_stream`]'s work on cubecl's device thread: the outputs made, the buffers taken
/// (cubecl has issued every launch handed to it before: its CUDA server launches as its thread
/// takes each one, so no flush is needed) and the products queued on `cu_stream`.
fn queue_on_stream(
    lhs: &CubeTensor,
    rhss: &[&CubeTensor],
    out_dtype: DType,
    (device, cu_stream): (usize, u64),
    (in_type, out_type): (sys::cudaDataType, sys::cudaDataType),
) -> Option<Vec<CubeTensor>> {
    let (products, _held) = prepare_group(lhs, rhss, out_dtype)?;
    let stream = lhs.handle.stream.value;
    if products.iter().any(|p| p.out.handle.stream.value != stream) {
        return None;
    }
    let handle = stream_handle(device, cu_stream)?;
    let (in_size, out_size) = (lhs.dtype.size(), out_dtype.size());
    for product in &products {
        if let Err(e) = launch(handle, product, (in_type, in_size), (out_type, out_size)) {
            // Calls already queued may still write the outputs: wait for them before they are
            // dropped (the caller then takes the products another way).
            // SAFETY: a live stream of the device's primary context.
            let _ = unsafe {
                cudarc::driver::result::stream::synchronize(
                    cu_stream as cudarc::driver::sys::CUstream,
                )
            };
            print_once!("llava-ops: cuBLAS declined a product on cubecl's stream: {e:?}");
            return None;
        }
    }
    Some(products.into_iter().map(|p| p.out).collect())
}

/// A cuBLAS handle bound to the CUDA stream `cu_stream` of `device`, made on first use (one per
/// stream, as cuBLAS wants a handle per stream for concurrent use), with the device's primary
/// context (which cubecl's streams belong to) made current on the calling thread: with a model
/// split over devices, the last product may have left another device's context current.
fn stream_handle(device: usize, cu_stream: u64) -> Option<sys::cublasHandle_t> {
    type Made = Option<(Arc<CudaContext>, usize)>;
    static HANDLES: OnceLock<Mutex<HashMap<(usize, u64), Made>>> = OnceLock::new();
    let mut map = HANDLES.get_or_init(Default::default).lock().ok()?;
    let made = map.entry((device, cu_stream)).or_insert_with(|| {
        let context = CudaContext::new(device).ok()?;
        context.bind_to_thread().ok()?;
        let handle = blas::create_handle().ok()?;
        // SAFETY: a live handle and a stream of the same context.
        unsafe { blas::set_stream(handle, cu_stream as sys::cudaStream_t) }.ok()?;
        Some((context, handle as usize))
    });
    let (context, handle) = made.as_ref()?;
    context.bind_to_thread().ok()?;
    Some(*handle as sys::cublasHandle_t)
}

/// Queues `product`'s cuBLAS calls on `handle`'s stream.
fn launch(
    handle: sys::cublasHandle_t,
    product: &Product,
    (in_type, in_size): (sys::cudaDataType, usize),
    (out_type, out_size): (sys::cudaDataType, usize),
) -> Result<(), blas::CublasError> {
    let plan = &product.plan;
    let (m, k, n) = product.mkn;
    let (a, b, c) = (plan.lhs, plan.rhs, plan.out);
    let [l_base, r_base, o_base] = product.ptrs;
    let op = |t: bool| {
        if t {
            sys::cublasOperation_t::CUBLAS_OP_T
        } else {
            sys::cublasOperation_t::CUBLAS_OP_N
        }
    };
    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: cuBLAS's first operand is `rhs`.
    let (alpha, beta) = (1.0f32, 0.0f32);
    let alpha = &alpha as *const f32 as *const c_void;
    let beta = &beta as *const f32 as *const c_void;
    let compute = sys::cublasComputeType_t::CUBLAS_COMPUTE_32F;
    let algo = sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
    for &(l_off, r_off, o_off) in &plan.offsets {
        let r_ptr = (r_base + (r_off * in_size) as u64) as *const c_void;
        let l_ptr = (l_base + (l_off * in_size) as u64) as *const c_void;
        let o_ptr = (o_base + (o_off * out_size) as u64) as *mut c_void;
        // SAFETY: the pointers are live cubecl buffers (held by the caller) of the shapes and
        // strides checked in `prepare`; cubecl's queued work is done before ours starts
        // (drained, or waited for on the GPU) and ours before cubecl's later work.
        unsafe {
            if plan.batch == 1 {
                blas::gemm_ex(
                    handle,
                    op(b.transposed),
                    op(a.transposed),
                    n as i32,
                    m as i32,
                    k as i32,
                    alpha,
                    r_ptr,
                    in_type,
                    b.ld as i32,
                    l_ptr,
                    in_type,
                    a.ld as i32,
                    beta,
                    o_ptr,
                    out_type,
                    c.ld as i32,
                    compute,
                    algo,
                )?
            } else {
                blas::gemm_strided_batched_ex(
                    handle,
                    op(b.transposed),
                    op(a.transposed),
                    n as i32,
                    m as i32,
                    k as i32,
                    alpha,
                    r_ptr,
                    in_type,
                    b.ld as i32,
                    b.batch_stride as i64,
                    l_ptr,
                    in_type,
                    a.ld as i32,
                    a.batch_stride as i64,
                    beta,
                    o_ptr,
                    out_type,
                    c.ld as i32,
                    c.batch_stride as i64,
                    plan.batch as i32,
                    compute,
                    algo,
                )?
            }
        }
    }
    Ok(())
}

/// One element written, so that cubecl allocates the buffer: cuBLAS writes the rest.
#[cube(launch)]
fn touch<F: Float>(out: &mut Tensor<F>, #[define(F)] _dtype: ElemType) {
    if ABSOLUTE_POS == 0 {
        out[0] = F::new(0.0);
    }
}

/// The product's output buffer. On cubecl's stream it is only allocated, by a one-element
/// write: cuBLAS writes every element (`beta` is 0) and runs in stream order. For the round
/// trip it is zero-filled, since a product that fails after the wait would leave it unwritten.
fn new_output(like: &CubeTensor, shape: Vec<usize>, dtype: DType) -> CubeTensor {
    let (client, device) = (like.client.clone(), like.device.clone());
    if !super::kernel_on(super::Kernel::BlasStream) {
        return zeros_client(client, device, shape.into(), dtype);
    }
    let out = empty_device_dtype(client.clone(), device, shape.into(), dtype);
    touch::launch(
        &client,
        CubeCount::Static(1, 1, 1),
        CubeDim::new_1d(1),
        out.clone().into_tensor_arg(),
        dtype_to_storage_type(dtype),
    );
    out
}

/// How one product maps onto cuBLAS calls: the operands' layouts, the batch of each call and
/// the element offsets (lhs, rhs, out) each call starts at.
struct BlasPlan {
    lhs: BlasOperand,
    rhs: BlasOperand,
    out: BlasOperand,
    batch: usize,
    offsets: Vec<(usize, usize, usize)>,
}

impl BlasPlan {
    /// One call over every batch when the batch dims of all three nest into one stride;
    /// otherwise one call per index of the outer batch dims, batched over the last one.
    fn new(
        lhs: (&[usize], &[usize]),
        rhs: (&[usize], &[usize]),
        out: (&[usize], &[usize]),
    ) -> Option<Self> {
        let d = lhs.0.len();
        let merged = (
            blas_operand(lhs.0, lhs.1),
            blas_operand(rhs.0, rhs.1),
            blas_operand(out.0, out.1),
        );
        if let (Some(l), Some(r), Some(o)) = merged {
            return Some(Self {
                lhs: l,
                rhs: r,
                out: o,
                batch: lhs.0[..d - 2].iter().product(),
                offsets: vec![(0, 0, 0)],
            });
        }
        let (l, l_off) = blas_operand_split(lhs.0, lhs.1)?;
        let (r, r_off) = blas_operand_split(rhs.0, rhs.1)?;
        let (o, o_off) = blas_operand_split(out.0, out.1)?;
        let offsets = l_off
            .into_iter()
            .zip(r_off)
            .zip(o_off)
            .map(|((l, r), o)| (l, r, o))
            .collect();
        Some(Self {
            lhs: l,
            rhs: r,
            out: o,
            batch: if d >= 3 { lhs.0[d - 3] } else { 1 },
            offsets,
        })
    }
}

fn warn_once(message: &str) {
    print_once!("llava-ops: {message}; using cubek's kernels");
}

/// Whether a product of `flops` (2·m·k·n, summed over a group) is worth a cuBLAS call: below
/// the threshold (`KernelOptions::cublas_min_mflop`, docs/knobs.md) it stays on cubek's
/// kernels. A blocking call into cubecl's device thread makes the caller wait for the launches
/// queued before it, more than a small product takes.
pub fn worth_round_trip(flops: f64) -> bool {
    flops >= crate::options::current().cublas_min_mflop * 1e6
}

/// Whether every cuBLAS product is checked against cubek's (a slow diagnostic).
pub fn checked() -> bool {
    crate::options::current().cublas_check
}

/// Prints the operands' layouts and the relative difference when `product` (cuBLAS) and
/// `reference` (cubek) differ beyond half-precision rounding.
pub fn report_check<const D: usize>(
    lhs: &CubeTensor,
    rhs: &CubeTensor,
    product: burn::tensor::Tensor<D>,
    reference: burn::tensor::Tensor<D>,
) {
    let out_dtype = product.dtype();
    let as_f32 = |t: burn::tensor::Tensor<D>| {
        t.cast(DType::F32)
            .try_into_vec_as::<f32>()
            .unwrap_or_default()
    };
    let (ours, theirs) = (as_f32(product), as_f32(reference));
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = theirs.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    let rel = diff / scale.max(f32::MIN_POSITIVE);
    if rel > 2e-2 || ours.len() != theirs.len() {
        tracing::warn!(
            "cuBLAS check: rel {rel:.2e} lhs {:?} strides {:?} {:?} rhs {:?} strides {:?} {:?} out {:?}",
            lhs.meta.shape(),
            lhs.meta.strides(),
            lhs.dtype,
            rhs.meta.shape(),
            rhs.meta.strides(),
            rhs.dtype,
            out_dtype,
        );
    }
}
