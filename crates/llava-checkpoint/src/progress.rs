use std::sync::Arc;

use burn::store::{ModuleAdapter, ModuleContext, burn_pack::Tensor as PackTensor};
use indicatif::{ProgressBar, ProgressStyle};

/// Whether long operations draw a progress bar (on stderr, only when it is a terminal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// A bar when stderr is a terminal.
    #[default]
    Auto,
    /// Nothing drawn.
    Hidden,
}

impl Progress {
    /// A byte-counting bar for `total` bytes with a message.
    pub fn bar(self, total: u64, message: &str) -> ProgressBar {
        let bar = match self {
            Progress::Auto => ProgressBar::new(total),
            Progress::Hidden => ProgressBar::hidden(),
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar
    }
}

/// A burn-store adapter that advances a progress bar by each tensor's size as it is loaded,
/// after handing the tensor to an inner adapter (the dtype cast).
#[derive(Clone)]
pub(crate) struct ProgressAdapter {
    pub(crate) bar: Arc<ProgressBar>,
    pub(crate) inner: Option<Arc<dyn ModuleAdapter + Send + Sync>>,
}

impl ModuleAdapter for ProgressAdapter {
    fn adapt(&self, tensor: PackTensor, ctx: ModuleContext<'_>) -> PackTensor {
        let bytes = tensor.shape.num_elements() as u64 * tensor.dtype.size() as u64;
        self.bar.inc(bytes);
        match &self.inner {
            Some(inner) => inner.adapt(tensor, ctx),
            None => tensor,
        }
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}
