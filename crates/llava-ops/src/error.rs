//! Why an op that reports failure did not run.

/// A kernel that declined its operands, or a recorded step that did not replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// The kernel does not take these operands (the message says why).
    #[error("the kernel declined: {0}")]
    Declined(String),
    /// The driver refused to replay a recorded step.
    #[error("replaying the recorded step failed: {0}")]
    Replay(String),
}
