//! Whether this replica should get new calls: the one answer both gRPC health and `/readyz`
//! give.

use std::sync::atomic::{AtomicBool, Ordering};

/// A replica is ready while it holds a validated bundle and is not draining. An application is
/// only built around a bundle that validated whole, and serves nothing before, so probes find
/// nothing listening until then; what is left to track here is the drain.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    /// From now on the replica refuses readiness; it never becomes ready again.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether draining has started, so the replica should get no new calls.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
