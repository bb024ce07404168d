//! cubecl's own CUDA stream for a thread, so that cuBLAS can be queued on it: ordered behind
//! cubecl's queued work and ahead of its later work by the stream itself, with no host wait and
//! no second stream (on by default; `LLAVA_OPS_OFF=blas_stream` turns it off): the host round
//! trip it replaces cost about a fifth of a 7B's first token (docs/knobs.md).
//!
//! cubecl creates its streams (one per thread and device) and does not hand them out. So the
//! stream is read off a launch: a CUPTI callback on `cuLaunchKernel`, armed only around one
//! marker launch whose block shape nothing else uses, records that launch's stream argument.
//! Found once per (device, cubecl stream), subscribed to CUPTI only for that search; `None` where
//! CUPTI cannot be loaded or subscribed (another CUPTI client such as a profiler holds it), and
//! the caller keeps the blocking path.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use burn::tensor::DType;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cudarc::cupti::{result as cupti, sys as cupti_sys};

/// The marker's block shape, which no other launch uses (cubecl's kernels take 1-d or square
/// cube dims).
const MARKER_BLOCK: (u32, u32, u32) = (7, 3, 1);

/// The stream of the last marker launch seen, 0 until one is.
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Writes one value, so that the launch binds a buffer and cannot be skipped.
#[cube(launch)]
fn marker(out: &mut Tensor<u32>) {
    if UNIT_POS == 0 {
        out[0] = 1u32;
    }
}

/// CUPTI's callback: on entry to a `cuLaunchKernel` with the marker's shape, keeps its stream.
unsafe extern "C" fn on_launch(
    _user: *mut c_void,
    domain: cupti_sys::CUpti_CallbackDomain,
    cbid: cupti_sys::CUpti_CallbackId,
    data: *const c_void,
) {
    let launch =
        cupti_sys::CUpti_driver_api_trace_cbid_enum::CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel as u32;
    if domain != cupti_sys::CUpti_CallbackDomain::CUPTI_CB_DOMAIN_DRIVER_API
        || cbid != launch
        || data.is_null()
    {
        return;
    }
    // SAFETY: for the driver API domain CUPTI passes a `CUpti_CallbackData`, whose
    // `functionParams` for `cuLaunchKernel` point at that call's parameters.
    unsafe {
        let data = &*(data as *const cupti_sys::CUpti_CallbackData);
        if data.callbackSite != cupti_sys::CUpti_ApiCallbackSite::CUPTI_API_ENTER
            || data.functionParams.is_null()
        {
            return;
        }
        let p = &*(data.functionParams as *const cupti_sys::cuLaunchKernel_params);
        let grid = (p.gridDimX, p.gridDimY, p.gridDimZ);
        let block = (p.blockDimX, p.blockDimY, p.blockDimZ);
        if grid == (1, 1, 1) && block == MARKER_BLOCK {
            SEEN.store(p.hStream as u64, Ordering::SeqCst);
        }
    }
}

/// A CUPTI subscription for one search (`None` if CUPTI is missing or another client, such as a
/// profiler, holds it). Dropped afterwards, so that tools can subscribe later.
struct Subscription(cupti_sys::CUpti_SubscriberHandle);

impl Subscription {
    fn new() -> Option<Self> {
        // SAFETY: only tries to open the library.
        if !unsafe { cupti_sys::is_culib_present() } {
            return None;
        }
        let mut handle: cupti_sys::CUpti_SubscriberHandle = std::ptr::null_mut();
        // SAFETY: `on_launch` reads only what CUPTI documents for the driver API domain.
        unsafe { cupti::subscribe(&mut handle, Some(on_launch), std::ptr::null_mut()) }.ok()?;
        Some(Self(handle))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // SAFETY: a live subscription, unsubscribed once.
        let _ = unsafe { cupti::unsubscribe(self.0) };
    }
}

/// Turns the `cuLaunchKernel` callback on or off.
fn arm(subscription: &Subscription, on: bool) -> Option<()> {
    let launch =
        cupti_sys::CUpti_driver_api_trace_cbid_enum::CUPTI_DRIVER_TRACE_CBID_cuLaunchKernel as u32;
    // SAFETY: a live subscription.
    unsafe {
        cupti::enable_callback(
            u32::from(on),
            subscription.0,
            cupti_sys::CUpti_CallbackDomain::CUPTI_CB_DOMAIN_DRIVER_API,
            launch,
        )
    }
    .ok()
}

/// cubecl's CUDA stream for `like`'s device and the stream `stream` (a cubecl stream id, the one
/// the calling thread launches on), found on first use; `None` if it cannot be found.
pub(super) fn stream_of(like: &CubeTensor, device: usize, stream: u64) -> Option<u64> {
    /// (device, cubecl stream id) → the CUDA stream, `None` where the search failed.
    type Found = Mutex<HashMap<(usize, u64), Option<u64>>>;
    static FOUND: OnceLock<Found> = OnceLock::new();
    let found = FOUND.get_or_init(Default::default);
    if let Some(known) = found.lock().ok()?.get(&(device, stream)) {
        return *known;
    }
    // One search at a time: the callback has one slot.
    static SEARCH: Mutex<()> = Mutex::new(());
    let _one = SEARCH.lock().ok()?;
    // Another thread may have searched for it while this one waited.
    if let Some(known) = found.lock().ok()?.get(&(device, stream)) {
        return *known;
    }
    let searched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| search(like)))
        .ok()
        .flatten();
    // The marker went to the calling thread's stream, which is not `stream` where `like` was
    // made on another one: filed under the marker's own id, and no answer for this call.
    let (launched_on, result) = match searched {
        Some((id, cu)) => (id, Some(cu)),
        None => (stream, None),
    };
    found.lock().ok()?.insert((device, launched_on), result);
    if result.is_none() {
        tracing::warn!("cubecl's CUDA stream not found (CUPTI); cuBLAS keeps its own stream");
    }
    result.filter(|_| launched_on == stream)
}

/// Launches the marker with the callback armed; returns the cubecl stream id it was launched on
/// (the calling thread's) and the CUDA stream it went to.
fn search(like: &CubeTensor) -> Option<(u64, u64)> {
    let sub = Subscription::new()?;
    let client = like.client.clone();
    // Flushed first, so that the window holds the marker's launch and nothing queued before.
    client.flush().ok()?;
    SEEN.store(0, Ordering::SeqCst);
    arm(&sub, true)?;
    let out = empty_device_dtype(client.clone(), like.device.clone(), [1].into(), DType::U32);
    let launched_on = out.handle.stream.value;
    marker::launch(
        &client,
        CubeCount::Static(1, 1, 1),
        CubeDim::new_3d(MARKER_BLOCK.0, MARKER_BLOCK.1, MARKER_BLOCK.2),
        out.into_tensor_arg(),
    );
    // Returns once cubecl's device thread has issued the launch.
    let flushed = client.flush();
    arm(&sub, false)?;
    flushed.ok()?;
    let seen = SEEN.swap(0, Ordering::SeqCst);
    (seen != 0).then_some((launched_on, seen))
}
