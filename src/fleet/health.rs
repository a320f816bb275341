//! Whether Redis is answering, changed by every outcome of a command and reported once per
//! change, so an outage is one warning and one recovery line rather than a line per request.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

const UP: u8 = 1;
const DOWN: u8 = 2;

/// Starts unknown (zero): neither up nor down until the first command's outcome.
#[derive(Debug, Default)]
pub struct Health {
    state: AtomicU8,
    errors: AtomicU64,
}

impl Health {
    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Relaxed) == UP
    }

    pub fn succeeded(&self) {
        match self.state.swap(UP, Ordering::Relaxed) {
            UP => {}
            DOWN => tracing::info!("Redis answers again; the shared tier is back"),
            _ => tracing::info!("connected to Redis"),
        }
    }

    pub fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.state.swap(DOWN, Ordering::Relaxed) != DOWN {
            tracing::warn!(%error, "Redis failed on {what}; deciding without it until it answers again");
        }
    }

    /// Commands that failed or timed out since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_success_brings_it_up_and_every_failure_is_counted() {
        let health = Health::default();
        assert!(!health.is_up());
        health.succeeded();
        assert!(health.is_up());
        health.failed("GET", &"timed out");
        health.failed("GET", &"timed out");
        assert!(!health.is_up());
        assert_eq!(health.errors(), 2);
        health.succeeded();
        assert!(health.is_up());
    }
}
