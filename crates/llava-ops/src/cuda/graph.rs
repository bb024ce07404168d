//! Recording a step of device work as a CUDA graph through burn's backend graph calls.
//!
//! burn's own `capture` runs the step three times before recording it (for fusion's sake, off
//! here), each time synchronising: about 110 ms of a 7B decode. Here the one warm-up run is the
//! real first step, so recording costs only the host's enqueueing of the recorded run.

use burn_backend::{Backend, BackendGraph};
use burn_dispatch::{Dispatch, DispatchDevice};

/// A recorded step, replayed with one launch.
pub struct Recording {
    device: DispatchDevice,
    graph: BackendGraph<Dispatch>,
}

/// See [`crate::record`].
pub fn record<T>(
    device: &burn::tensor::Device,
    mut step: impl FnMut() -> T,
) -> (T, Result<(Recording, T), String>) {
    let device = device.as_dispatch();
    if let Err(e) = Dispatch::graph_prepare(device) {
        return (step(), Err(format!("preparing the recording: {e:?}")));
    }
    // Allocates every buffer the recorded run will take again from the prepared pool.
    let first = step();
    if let Err(e) = Dispatch::sync(device) {
        let _ = Dispatch::graph_stop_capture(device);
        return (
            first,
            Err(format!("running the step before recording: {e:?}")),
        );
    }
    if let Err(e) = Dispatch::graph_start_capture(device) {
        // Ends the prepared state too.
        let _ = Dispatch::graph_stop_capture(device);
        return (first, Err(format!("starting the recording: {e:?}")));
    }
    let recorded = step();
    match Dispatch::graph_stop_capture(device) {
        Ok(graph) => (
            first,
            Ok((
                Recording {
                    device: device.clone(),
                    graph,
                },
                recorded,
            )),
        ),
        Err(e) => (first, Err(format!("the recording was refused: {e:?}"))),
    }
}

impl Recording {
    /// See [`crate::Recording::replay`].
    ///
    /// # Safety
    /// As there.
    pub unsafe fn replay(&self) -> Result<(), String> {
        // SAFETY: forwarded from the caller.
        unsafe { Dispatch::graph_replay(&self.device, &self.graph) }
            .map_err(|e| format!("replaying the recorded step: {e:?}"))
    }
}
