//! Recording a step of device work as a CUDA graph through burn's backend graph calls.
//!
//! burn's own `capture` runs the step three times before recording it (for fusion's sake, off
//! here), each time synchronising: about 110 ms of a 7B decode. Here the one warm-up run is the
//! real first step's work, so recording costs one more run's host-side enqueueing.

use burn_backend::{Backend, BackendGraph};
use burn_dispatch::{Dispatch, DispatchDevice};

use crate::RecordError;

/// A recorded step, replayed with one launch.
pub struct Recording {
    device: DispatchDevice,
    graph: BackendGraph<Dispatch>,
}

/// See [`crate::record`].
pub fn record<T>(
    device: &burn::tensor::Device,
    mut step: impl FnMut() -> T,
) -> Result<(Recording, T, T), RecordError> {
    let device = device.as_dispatch();
    let not_started =
        |what: &str, e: &dyn std::fmt::Debug| RecordError::NotStarted(format!("{what}: {e:?}"));
    Dispatch::graph_prepare(device).map_err(|e| not_started("preparing the recording", &e))?;
    // Allocates every buffer the recorded run will take again. Its output is the step's result
    // and stays alive through the recording (GPU-validated: the fixtures' greedy tokens).
    let warm_up = step();
    let synced = Dispatch::sync(device);
    if let Err(e) = synced {
        let _ = Dispatch::graph_stop_capture(device);
        return Err(not_started("running the step before recording", &e));
    }
    if let Err(e) = Dispatch::graph_start_capture(device) {
        // Ends the prepared state too.
        let _ = Dispatch::graph_stop_capture(device);
        return Err(not_started("starting the recording", &e));
    }
    let recorded = step();
    match Dispatch::graph_stop_capture(device) {
        Ok(graph) => Ok((
            Recording {
                device: device.clone(),
                graph,
            },
            recorded,
            warm_up,
        )),
        Err(e) => Err(RecordError::Refused(format!(
            "the recording was refused: {e:?}"
        ))),
    }
}

impl Recording {
    /// See [`crate::Recording::replay`].
    ///
    /// # Safety
    /// As there.
    pub unsafe fn replay(&self) -> Result<(), crate::OpsError> {
        // SAFETY: forwarded from the caller.
        unsafe { Dispatch::graph_replay(&self.device, &self.graph) }
            .map_err(|e| crate::OpsError::Replay(format!("{e:?}")))
    }
}
