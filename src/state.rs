//! What every request reads: the active bundle and the server's rules.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::bundle::PolicyBundle;
use crate::decision::{DecisionSettings, Limits};

/// Shared by all handlers. The bundle is an immutable snapshot behind an atomic pointer: a
/// request loads it once and decides wholly against it, and a swap never blocks a request.
pub struct State {
    bundle: ArcSwap<PolicyBundle>,
    pub settings: DecisionSettings,
    pub limits: Limits,
}

impl State {
    pub fn new(bundle: PolicyBundle, settings: DecisionSettings, limits: Limits) -> Self {
        Self {
            bundle: ArcSwap::from_pointee(bundle),
            settings,
            limits,
        }
    }

    /// The active bundle, for the length of one request.
    pub fn bundle(&self) -> Arc<PolicyBundle> {
        self.bundle.load_full()
    }

    /// Makes `bundle` the active one for every later request.
    pub fn activate(&self, bundle: PolicyBundle) {
        self.bundle.store(Arc::new(bundle));
    }
}
