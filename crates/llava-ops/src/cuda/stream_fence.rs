//! Orders the cuBLAS stream after cubecl's work and cubecl's later work after cuBLAS, on the
//! GPU, without the host waiting for either (opt-in: `LLAVA_OPS_ON=blas_async`, not yet run on a
//! GPU).
//!
//! cubecl does not expose its stream, so an event cannot be recorded on it. Instead each
//! (device, thread) has a two-cell u32 buffer in cubecl's memory. Before a product, a one-thread
//! cubecl kernel raises cell 0 to the product's number on cubecl's stream, behind everything
//! queued there, and the cuBLAS stream waits for that value (`cuStreamWaitValue32`). After the
//! product the cuBLAS stream writes the number into cell 1 (`cuStreamWriteValue32`), and a
//! one-thread cubecl kernel spins on cubecl's stream until it reads it, so nothing cubecl
//! queues later (a reuse of the operands' buffers included) starts before the product is done.
//! The spinning kernel holds one block while the product runs on the rest of the GPU. The
//! host goes on queueing; the blocking path waited for both streams at every product, about 700
//! times per 7B prefill.

use std::cell::RefCell;
use std::collections::HashMap;

use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::zeros_client;
use burn_cubecl::tensor::CubeTensor;
use cubecl_runtime::runtime::Runtime;
use cudarc::driver::sys;

type Server = <CudaRuntime as Runtime>::Server;

/// `flags[index] = value`, visible to the other stream once the kernel is done.
#[cube(launch)]
fn raise_flag(flags: &Tensor<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        flags[index as usize].store(value);
    }
}

/// Returns once `flags[index] ≥ value` (written by the other stream).
#[cube(launch)]
fn wait_flag(flags: &Tensor<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        let mut seen = flags[index as usize].load();
        while seen < value {
            seen = flags[index as usize].load();
        }
    }
}

/// One thread's flags on one device and the last number used.
struct Fence {
    flags: CubeTensor,
    count: u32,
}

thread_local! {
    static FENCES: RefCell<HashMap<usize, Fence>> = RefCell::new(HashMap::new());
}

/// Whether products are ordered on the GPU instead of by host waits.
pub(super) fn enabled() -> bool {
    super::kernel_opted_in("blas_async")
}

/// The device address of `flags`' cell `index`.
fn cell(flags: &CubeTensor, index: u64) -> Option<sys::CUdeviceptr> {
    let resource = flags
        .client
        .get_resource::<Server>(flags.handle.clone())
        .ok()?;
    Some(resource.resource().ptr + 4 * index)
}

/// Raises the next number on cubecl's stream (behind all of `like`'s device's queued work) and
/// makes `stream` wait for it. Returns the number for [`leave`].
pub(super) fn enter(like: &CubeTensor, device: usize, stream: sys::CUstream) -> Option<u32> {
    FENCES.with(|fences| {
        let mut fences = fences.borrow_mut();
        let fence = fences.entry(device).or_insert_with(|| Fence {
            flags: zeros_client(
                like.client.clone(),
                like.device.clone(),
                [2].into(),
                DType::U32,
            ),
            count: 0,
        });
        let value = fence.count.checked_add(1)?;
        fence.count = value;
        raise_flag::launch(
            &like.client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(1),
            fence.flags.clone().into_tensor_arg(),
            0,
            value,
        );
        let signal = cell(&fence.flags, 0)?;
        let flag = sys::CUstreamWaitValue_flags::CU_STREAM_WAIT_VALUE_GEQ as u32;
        // SAFETY: a live stream of the device's context and a live cell of cubecl's memory on
        // the same device, which the fence keeps for the thread's life.
        let waited = unsafe { sys::cuStreamWaitValue32_v2(stream, signal, value, flag) };
        (waited == sys::CUresult::CUDA_SUCCESS).then_some(value)
    })
}

/// After the work queued on `stream`: `stream` writes `value`, and cubecl's stream waits for it
/// before anything queued later. `false` if the write could not be queued (the caller must then
/// wait for `stream` on the host).
pub(super) fn leave(like: &CubeTensor, device: usize, stream: sys::CUstream, value: u32) -> bool {
    FENCES.with(|fences| {
        let fences = fences.borrow();
        let Some(fence) = fences.get(&device) else {
            return false;
        };
        let Some(done) = cell(&fence.flags, 1) else {
            return false;
        };
        let flag = sys::CUstreamWriteValue_flags_enum::CU_STREAM_WRITE_VALUE_DEFAULT as u32;
        // SAFETY: as in `enter`.
        let written = unsafe { sys::cuStreamWriteValue32_v2(stream, done, value, flag) };
        if written != sys::CUresult::CUDA_SUCCESS {
            return false;
        }
        wait_flag::launch(
            &like.client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(1),
            fence.flags.clone().into_tensor_arg(),
            1,
            value,
        );
        true
    })
}
