//! `LLAVA_OPS_STATS`: calls and time per routed op class.

use std::sync::OnceLock;

use burn::tensor::{Int, Tensor};

/// Per-op-class call counts and seconds, when `LLAVA_OPS_STATS` is set: `launch` times the launch
/// alone (CPU cost of the route), `sync` waits for the GPU after each routed op (its device
/// time plus launch). [`report`] prints them.
pub(super) fn stats_mode() -> Option<bool> {
    match crate::options::current().stats {
        crate::options::StatsMode::Off => None,
        crate::options::StatsMode::Launch => Some(false),
        crate::options::StatsMode::Sync => Some(true),
    }
}

type Stats = std::collections::BTreeMap<String, (u64, f64)>;

fn stats() -> &'static std::sync::Mutex<Stats> {
    static STATS: OnceLock<std::sync::Mutex<Stats>> = OnceLock::new();
    STATS.get_or_init(Default::default)
}

/// Runs `f`, recording its time under `key()` when statistics are on. With `sync`, the work
/// queued before it (burn's own ops, which are not routed) is waited for first and recorded
/// under `before <key>`, so that the op's figure is its own.
pub(super) fn timed<T: OnDevice>(
    key: impl FnOnce() -> String,
    f: impl FnOnce() -> Option<T>,
) -> Option<T> {
    let Some(sync) = stats_mode() else {
        return f();
    };
    let mut before = None;
    if sync && let Some(device) = last_device().lock().ok().and_then(|d| d.clone()) {
        let start = std::time::Instant::now();
        let _ = device.sync();
        before = Some(start.elapsed().as_secs_f64());
    }
    let start = std::time::Instant::now();
    let out = f();
    if let (true, Some(t)) = (sync, &out) {
        let device = t.device_of();
        let _ = device.sync();
        if let Ok(mut last) = last_device().lock() {
            *last = Some(device);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if let Ok(mut s) = stats().lock() {
        let key = key();
        if let Some(b) = before {
            let e = s.entry(format!("before {key}")).or_default();
            e.0 += 1;
            e.1 += b;
        }
        let e = s.entry(key).or_default();
        e.0 += 1;
        e.1 += secs;
    }
    out
}

/// The device of the last op timed with a sync: where [`timed`] waits for earlier work (the
/// statistics are read on one GPU).
fn last_device() -> &'static std::sync::Mutex<Option<burn::tensor::Device>> {
    static LAST: OnceLock<std::sync::Mutex<Option<burn::tensor::Device>>> = OnceLock::new();
    LAST.get_or_init(Default::default)
}

/// What [`timed`] waits on.
pub(super) trait OnDevice {
    fn device_of(&self) -> burn::tensor::Device;
}

impl<T: OnDevice, const K: usize> OnDevice for [T; K] {
    fn device_of(&self) -> burn::tensor::Device {
        self[0].device_of()
    }
}

impl<const D: usize> OnDevice for Tensor<D> {
    fn device_of(&self) -> burn::tensor::Device {
        self.device()
    }
}

impl<const D: usize> OnDevice for Tensor<D, Int> {
    fn device_of(&self) -> burn::tensor::Device {
        self.device()
    }
}

/// The statistics gathered under `LLAVA_OPS_STATS`, slowest class first, then cleared.
pub fn report() -> String {
    let Ok(mut s) = stats().lock() else {
        return String::new();
    };
    let mut rows: Vec<_> = std::mem::take(&mut *s).into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    rows.iter()
        .map(|(k, (n, t))| {
            format!(
                "{:10.2} ms {:7}x {:9.1} us  {k}\n",
                t * 1e3,
                n,
                t / *n as f64 * 1e6
            )
        })
        .collect()
}

impl<T: OnDevice> OnDevice for Vec<T> {
    fn device_of(&self) -> burn::tensor::Device {
        self[0].device_of()
    }
}
