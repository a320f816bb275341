//! The tier every replica shares, behind [`SharedTier`]: Redis ([`RedisTier`], through the
//! fleet) in production, or [`MemoryTier`], which replicas in one process can share.
//!
//! Keys carry an epoch that [`SharedTier::retire`] replaces, retiring every entry at once on
//! every replica that shares the tier; each replica watches the epoch and flushes its own
//! in-process tier when it moves.
//!
//! [`RedisTier`]: super::RedisTier

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;
use tokio::sync::watch;

use super::DecisionKey;
use crate::decision::Outcome;

/// Why the shared tier could not answer; the caller decides without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A tier of decisions shared by replicas.
#[async_trait::async_trait]
pub trait SharedTier: Send + Sync {
    /// The current generation of entries; zero until known.
    fn epoch(&self) -> u64;
    /// Changes to [`SharedTier::epoch`], from any replica.
    fn watch_epoch(&self) -> watch::Receiver<u64>;
    /// Whether the tier answers now; when it does not, it is skipped at once.
    fn is_up(&self) -> bool;
    /// The recent round-trip time, once known.
    fn latency(&self) -> Option<Duration>;
    /// Operations that failed since start.
    fn errors(&self) -> u64;
    /// The outcome stored under `key` for bundle `version`; `Ok(None)` on a miss.
    async fn get(&self, key: &DecisionKey, version: &str) -> Result<Option<Outcome>, Unavailable>;
    /// Stores `outcome` for `ttl`, in the background; false if the write was skipped.
    fn put(&self, key: &DecisionKey, outcome: &Outcome, ttl: Duration) -> bool;
    /// Retires every entry for every replica; false if the tier could not be told, in which
    /// case the caller retries.
    async fn retire(&self) -> bool;
}

/// A shared tier in process memory: the embedded implementation, which replicas living in
/// one process (tests, an embedded PDP) share by holding the same `Arc`.
pub struct MemoryTier {
    entries: Cache<(DecisionKey, u64), Stored>,
    epoch: AtomicU64,
    changes: watch::Sender<u64>,
}

#[derive(Clone)]
struct Stored {
    outcome: Arc<Outcome>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<(DecisionKey, u64), Stored> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &(DecisionKey, u64),
        stored: &Stored,
        _now: Instant,
    ) -> Option<Duration> {
        Some(stored.ttl)
    }
}

impl MemoryTier {
    /// A tier holding at most `capacity` entries.
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
            epoch: AtomicU64::new(1),
            changes: watch::Sender::new(1),
        }
    }
}

#[async_trait::async_trait]
impl SharedTier for MemoryTier {
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    fn watch_epoch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn is_up(&self) -> bool {
        true
    }

    fn latency(&self) -> Option<Duration> {
        Some(Duration::ZERO)
    }

    fn errors(&self) -> u64 {
        0
    }

    async fn get(&self, key: &DecisionKey, version: &str) -> Result<Option<Outcome>, Unavailable> {
        Ok(self
            .entries
            .get(&(*key, self.epoch()))
            .map(|s| Outcome::clone(&s.outcome))
            .filter(|o| o.bundle_version == version))
    }

    fn put(&self, key: &DecisionKey, outcome: &Outcome, ttl: Duration) -> bool {
        let stored = Stored {
            outcome: Arc::new(outcome.clone()),
            ttl,
        };
        self.entries.insert((*key, self.epoch()), stored);
        true
    }

    async fn retire(&self) -> bool {
        let next = self.epoch.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        self.entries.invalidate_all();
        self.changes.send_replace(next);
        true
    }
}
