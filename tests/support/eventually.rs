//! Waiting for something the server does in the background.

use std::time::Duration;

/// Longer than anything a test waits for should take, even on a busy CI machine.
const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

/// Waits until `done`, failing the test after [`PATIENCE`] with `what` it waited for.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
