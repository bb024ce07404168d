//! Orders the cuBLAS stream after cubecl's work and cubecl's later work after cuBLAS, on the
//! GPU, without the host waiting for either (opt-in: `LLAVA_OPS_ON=blas_async`; measured slower
//! than the round trip, 219.0 → 263.9 ms for a 7B first token, and superseded by cuBLAS on
//! cubecl's own stream, `cubecl_stream.rs`).
//!
//! cubecl does not expose its stream, so an event cannot be recorded on it. Instead each
//! (device, thread) has a two-cell u32 buffer in cubecl's memory, pinned for the thread's life.
//! Before a product, a one-thread cubecl kernel raises cell 0 to the product's number on
//! cubecl's stream, behind everything queued there, and the cuBLAS stream waits for that value
//! (`cuStreamWaitValue32`). After the product the cuBLAS stream writes the number into cell 1
//! (`cuStreamWriteValue32`), and a one-thread cubecl kernel spins on cubecl's stream until it
//! reads it, so nothing cubecl queues later (a reuse of the operands' buffers included) starts
//! before the product is done. The spinning kernel holds one block while the product runs on the
//! rest of the GPU. The host goes on queueing; the blocking path waited for both streams at every
//! product, about 700 times per 7B prefill.
//!
//! The operands' resources are held until an event recorded after the product completes:
//! buffers another cubecl stream owns are not ordered behind the spinning kernel.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::zeros_client;
use burn_cubecl::tensor::CubeTensor;
use cubecl_runtime::runtime::Runtime;
use cubecl_runtime::server::ServerStorage;
use cubecl_runtime::storage::{ComputeStorage, ManagedResource};
use cudarc::driver::{CudaEvent, CudaStream, sys};

type Server = <CudaRuntime as Runtime>::Server;

/// A buffer held in place (never freed, handed out again or moved while held).
pub(super) type Resource =
    ManagedResource<<<Server as ServerStorage>::Storage as ComputeStorage>::Resource>;

/// `flags[index] = value`, visible to the other stream once the kernel is done. `&mut` so a
/// failed launch marks the buffer failed.
#[cube(launch)]
fn raise_flag(flags: &mut Tensor<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        flags[index as usize].store(value);
    }
}

/// Returns once `flags[index] ≥ value` (written by the other stream). The read is an atomic
/// read-modify-write so the optimiser cannot hoist it out of the loop.
#[cube(launch)]
fn wait_flag(flags: &mut Tensor<Atomic<u32>>, index: u32, value: u32) {
    if UNIT_POS == 0 {
        let mut seen = flags[index as usize].fetch_add(0u32);
        while seen < value {
            seen = flags[index as usize].fetch_add(0u32);
        }
    }
}

/// One thread's flags on one device, the last number used, and the products still running
/// with the resources they read.
struct Fence {
    flags: CubeTensor,
    _pin: Resource,
    cells: [sys::CUdeviceptr; 2],
    count: u32,
    running: VecDeque<(CudaEvent, Vec<Resource>)>,
}

thread_local! {
    static FENCES: RefCell<HashMap<usize, Option<Fence>>> = RefCell::new(HashMap::new());
}

/// Whether products are ordered on the GPU instead of by host waits.
pub(super) fn enabled() -> bool {
    super::kernel_opted_in("blas_async")
}

impl Fence {
    /// The flags on `like`'s device, pinned, after a self-test of both kernels: raised to 1
    /// and waited for, read back on the host. `None` if any of it fails.
    fn new(like: &CubeTensor) -> Option<Self> {
        let client = like.client.clone();
        let flags = zeros_client(client.clone(), like.device.clone(), [2].into(), DType::U32);
        for index in [0u32, 1] {
            raise_flag::launch(
                &client,
                CubeCount::Static(1, 1, 1),
                CubeDim::new_1d(1),
                flags.clone().into_tensor_arg(),
                index,
                1,
            );
        }
        wait_flag::launch(
            &client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(1),
            flags.clone().into_tensor_arg(),
            1,
            1,
        );
        let bytes = client.read_one(flags.handle.clone()).ok()?;
        let cells: Vec<u32> = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if cells != [1, 1] {
            return None;
        }
        let pin = client.get_resource::<Server>(flags.handle.clone()).ok()?;
        let base = pin.resource().ptr;
        Some(Self {
            flags,
            _pin: pin,
            cells: [base, base + 4],
            count: 1,
            running: VecDeque::new(),
        })
    }
}

/// Runs `f` on this thread's fence for `device`, made on first use (`None` once it failed).
fn with_fence<T>(
    like: &CubeTensor,
    device: usize,
    f: impl FnOnce(&mut Fence) -> Option<T>,
) -> Option<T> {
    FENCES.with(|fences| {
        let mut fences = fences.borrow_mut();
        let fence = fences.entry(device).or_insert_with(|| Fence::new(like));
        f(fence.as_mut()?)
    })
}

/// Raises the next number on cubecl's stream (behind all of `like`'s device's queued work) and
/// makes `stream` wait for it. Returns the number for [`leave`].
pub(super) fn enter(like: &CubeTensor, device: usize, stream: &CudaStream) -> Option<u32> {
    with_fence(like, device, |fence| {
        // Products done by now no longer need their operands held.
        while fence
            .running
            .front()
            .is_some_and(|(event, _)| event.is_complete())
        {
            fence.running.pop_front();
        }
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
        // The raise must reach the GPU before cuBLAS's stream is told to wait for it.
        like.client.flush().ok()?;
        let flag = sys::CUstreamWaitValue_flags::CU_STREAM_WAIT_VALUE_GEQ as u32;
        // SAFETY: a live stream of the device's context and a cell of cubecl's memory on the
        // same device, pinned by the fence for the thread's life.
        let waited =
            unsafe { sys::cuStreamWaitValue32_v2(stream.cu_stream(), fence.cells[0], value, flag) };
        (waited == sys::CUresult::CUDA_SUCCESS).then_some(value)
    })
}

/// After the work queued on `stream`: `stream` writes `value`, and cubecl's stream waits for it
/// before anything queued later; `held` (the product's operands) stay held until the product
/// is done. `false` if the product could not be ordered this way: then `stream` has been waited
/// for before `held` was released, and cubecl's stream does not wait.
pub(super) fn leave(
    like: &CubeTensor,
    device: usize,
    stream: &CudaStream,
    value: u32,
    held: Vec<Resource>,
) -> bool {
    let mut held = Some(held);
    let ordered = with_fence(like, device, |fence| {
        let flag = sys::CUstreamWriteValue_flags_enum::CU_STREAM_WRITE_VALUE_DEFAULT as u32;
        // SAFETY: as in `enter`.
        let written = unsafe {
            sys::cuStreamWriteValue32_v2(stream.cu_stream(), fence.cells[1], value, flag)
        };
        if written != sys::CUresult::CUDA_SUCCESS {
            return None;
        }
        let done = stream.record_event(None).ok()?;
        fence.running.push_back((done, held.take()?));
        wait_flag::launch(
            &like.client,
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(1),
            fence.flags.clone().into_tensor_arg(),
            1,
            value,
        );
        like.client.flush().ok()?;
        Some(())
    })
    .is_some();
    if held.is_some() {
        // Not ordered: the operands are released only once the product is done.
        let _ = stream.synchronize();
    }
    ordered
}
