//! Whether this replica should get new calls: the one answer both gRPC health and `/readyz`
//! give.

use std::sync::atomic::{AtomicBool, Ordering};

/// A replica is ready while it holds a validated bundle and is not draining. A [`State`] is
/// only built around a bundle that validated whole, and the listeners are bound after it, so
/// before then probes find nothing listening; what is left to track here is the drain.
///
/// [`State`]: crate::state::State
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    /// From now on the replica refuses readiness; it never becomes ready again.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
