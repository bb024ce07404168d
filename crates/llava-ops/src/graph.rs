//! Device memory and CUDA graph replay of decode steps.

use burn::tensor::{Int, Tensor, TensorData};

#[cfg(feature = "cuda")]
use crate::cuda;

/// Bytes a device can still take: its capacity less what burn's pool already reserves. `None`
/// where no capacity is known (CPU devices, builds without CUDA).
pub fn free_memory(device: &burn::tensor::Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    return cuda::free_memory(device);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        None
    }
}

/// Whether a step of tensor ops on `device` can be recorded once as a CUDA graph and replayed
/// (burn's `capture`), its inputs refreshed in place with [`overwrite`] between replays: CUDA
/// devices with the route on. `LLAVA_GRAPH=0` turns replay off, for A/B runs.
pub fn graph_replay_available(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "cuda")]
    return cuda::graph_replay_available(device);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}

/// A step of device work recorded as a CUDA graph ([`record`]).
pub struct Recording {
    #[cfg(feature = "cuda")]
    inner: cuda::Recording,
    #[cfg(not(feature = "cuda"))]
    _never: std::convert::Infallible,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recording")
    }
}

/// Why [`record`] gave no recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Nothing was recorded (not CUDA, replay turned off, or the driver would not start): every
    /// buffer is as the warm-up run, if any, left it, so the step can run op by op.
    NotStarted(String),
    /// The driver refused the recording after it began. cubecl then marks the buffers the
    /// recorded run would have written as failed, so what the step writes is lost.
    Refused(String),
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotStarted(why) | Self::Refused(why) => f.write_str(why),
        }
    }
}

/// Runs `step` once as a warm-up, then records a second run of it as a CUDA graph, not
/// executed. Returns the recording, the output its replays write, and the warm-up's output
/// (this step's result). `step` must issue device work only: no host copies, and no
/// allocations beyond what its first run made. Between replays, refresh its inputs with
/// [`overwrite`]. Off the CUDA route (or with `LLAVA_GRAPH=0`) `step` is not run and the
/// answer is [`RecordError::NotStarted`].
pub fn record<T>(
    device: &burn::tensor::Device,
    step: impl FnMut() -> T,
) -> Result<(Recording, T, T), RecordError> {
    #[cfg(feature = "cuda")]
    if graph_replay_available(device) {
        return cuda::record(device, step)
            .map(|(inner, out, warm_up)| (Recording { inner }, out, warm_up));
    }
    let _ = (device, step);
    Err(RecordError::NotStarted(
        "graph replay needs the CUDA route".into(),
    ))
}

impl Recording {
    /// Re-runs the recorded launches, queued on the calling thread's stream.
    ///
    /// # Safety
    /// Every tensor the recorded run read or wrote must still be alive (its buffer not freed
    /// and reused), nothing on another stream may use them meanwhile, and input refreshes and
    /// output reads must be issued from the thread that recorded (the same stream).
    pub unsafe fn replay(&self) -> Result<(), crate::OpsError> {
        #[cfg(feature = "cuda")]
        // SAFETY: forwarded from the caller.
        return unsafe { self.inner.replay() };
        #[cfg(not(feature = "cuda"))]
        match self._never {}
    }
}

/// Writes `data` into `dst`'s own buffer (no new allocation, so a recorded graph that reads
/// `dst` sees the new values on its next replay). `data` must have `dst`'s shape; it is cast to
/// `dst`'s dtype. Returns false, writing nothing, where this is not possible (off the CUDA route,
/// a strided or mismatched tensor): callers check [`graph_replay_available`] first.
pub fn overwrite<const D: usize>(dst: &Tensor<D>, data: TensorData) -> bool {
    #[cfg(feature = "cuda")]
    return cuda::overwrite(dst, data);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dst, data);
        false
    }
}

/// [`overwrite`] for an integer tensor.
pub fn overwrite_int<const D: usize>(dst: &Tensor<D, Int>, data: TensorData) -> bool {
    #[cfg(feature = "cuda")]
    return cuda::overwrite(dst, data);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dst, data);
        false
    }
}
