//! Helpers shared by the CLI tests.

use std::process::Output;

/// Fails the test with the command's stderr when it did not exit successfully.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
