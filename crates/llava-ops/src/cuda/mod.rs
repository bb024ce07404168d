//! The CUDA route: burn tensors that live on a CUDA device (and outside autodiff) are unwrapped
//! to their CubeCL tensors and handed to cubek with a strategy picked from the shape. Every
//! function returns `None` when the route does not apply, and the caller runs the burn op.

mod cubecl_stream;
mod cublas;
mod decode_attention;
mod elementwise;
mod flash_prefill;
mod gemv;
mod gemv_qkv;
mod gemv_silu;
mod graph;
mod layer_norm;
mod matmul;
mod reduce;
mod rms_norm;
mod softmax;
mod stats;

use burn::tensor::BackendPrimitive;
use burn::tensor::kind::Basic;
use burn::tensor::{DType, Tensor, TensorData};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeDevice};

pub use decode_attention::decode_attention;
pub use elementwise::{Activation, activation, bias_round, rope_bshd, silu_mul};
pub use flash_prefill::{flash_attention_full, flash_prefill};
pub use gemv::gemv_tensors;
pub use gemv_qkv::gemv_qkv_tensors;
pub use gemv_silu::gemv_silu_tensors;
pub use graph::{Recording, record};
pub use layer_norm::layer_norm;
pub use matmul::{
    linear, linear_bias, linear_group, matmul, matmul_strategy, matmul_wide, matmul_with,
};
pub use reduce::{
    REDUCE_ROUTINES, RowOp, argmax_last, argmax_last_with, reduce_last, reduce_last_with,
    softmax_last,
};
pub use rms_norm::{add_rms_norm, rms_norm};
pub use softmax::attention_probs;
pub use stats::report;

/// A CUDA device's total memory (the driver's figure, as cubecl reads it) less what burn's pool
/// reserves on it. Other processes' use is not seen.
pub fn free_memory(device: &burn::tensor::Device) -> Option<u64> {
    let burn_dispatch::DispatchDevice::Cube(cube) = device.as_dispatch() else {
        return None;
    };
    if !matches!(cube, CubeDevice::Cuda(_)) {
        return None;
    }
    let total = cube.client().properties().memory.max_memory()?;
    let reserved = device.memory_pool_usage().map_or(0, |u| u.bytes_reserved);
    Some(total.saturating_sub(reserved))
}

/// Whether decode steps on `device` may be replayed as a CUDA graph (see the crate function).
pub fn graph_replay_available(device: &burn::tensor::Device) -> bool {
    let on = crate::options::current().graph_replay;
    let cuda = matches!(
        device.as_dispatch(),
        burn_dispatch::DispatchDevice::Cube(CubeDevice::Cuda(_))
    );
    // Timing every op with a sync (`LLAVA_OPS_STATS=sync`) cannot happen inside a recording.
    let syncs = crate::options::current().stats == crate::options::StatsMode::Sync;
    on && cuda && enabled() && !syncs
}

/// `data` written into the buffer behind `dst` on its stream, so it is ordered after every
/// launch already queued there (a replay included) and before every later one.
pub fn overwrite<const D: usize, K>(dst: &Tensor<D, K>, data: TensorData) -> bool
where
    K: Basic + BackendPrimitive<CubeBackend, Primitive = CubeTensor>,
{
    if !enabled() {
        return false;
    }
    let Ok(prim) = dst.clone().try_into_primitive::<CubeBackend>() else {
        return false;
    };
    let same_shape = prim.meta.shape().iter().eq(data.shape().iter());
    if !matches!(prim.device, CubeDevice::Cuda(_)) || !prim.is_contiguous() || !same_shape {
        return false;
    }
    let (bytes, _, _) = data.convert_dtype(prim.dtype).into_parts();
    prim.client.write(&prim.handle, bytes);
    true
}

/// Whether the route is on (`LLAVA_OPS=burn` turns it off).
pub fn enabled() -> bool {
    crate::options::current().route == crate::options::Route::Kernels
}

pub use crate::options::Kernel;

// Outputs of the kernels here are allocated contiguous (`empty_device_contiguous_dtype`): the
// kernels index them linearly, and cubecl's CUDA allocator otherwise pads rows to a power of two
// up to 512 bytes (a head of 12 f32 values gets a row of 16), which burn's ops read through the
// strides but a linear write scrambles.

/// Whether `kernel` is routed (`LLAVA_OPS_OFF` turns single kernels off, for A/B runs).
pub(crate) fn kernel_on(kernel: Kernel) -> bool {
    crate::options::current().kernel_on(kernel)
}

/// Where `t`'s elements start in its buffer, in bytes (vector loads need it aligned).
fn offset_bytes(t: &CubeTensor) -> usize {
    t.handle.offset_start.unwrap_or(0) as usize
}

/// The CubeCL tensor behind `t` when it is a plain (non-autodiff) float tensor on CUDA.
fn on_cuda<const D: usize>(t: &Tensor<D>) -> Option<CubeTensor> {
    if !enabled() {
        return None;
    }
    let prim = t.clone().try_into_primitive::<CubeBackend>().ok()?;
    let float = matches!(prim.dtype, DType::BF16 | DType::F16 | DType::F32);
    (float && matches!(prim.device, CubeDevice::Cuda(_))).then_some(prim)
}
