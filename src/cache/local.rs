//! The in-process tier: a bounded map in which each entry lives for its own TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use super::DecisionKey;
use crate::decision::Outcome;

/// A key and the local generation it was stored under; flushing bumps the generation, so an
/// entry put by a request that raced the flush is never found.
pub type LocalKey = (DecisionKey, u64);

#[derive(Clone)]
struct Entry {
    outcome: Arc<Outcome>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<LocalKey, Entry> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &LocalKey,
        entry: &Entry,
        _now: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

pub struct LocalTier(Cache<LocalKey, Entry>);

impl LocalTier {
    pub fn new(capacity: u64) -> Self {
        Self(
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
        )
    }

    pub fn get(&self, key: &LocalKey) -> Option<Arc<Outcome>> {
        self.0.get(key).map(|entry| entry.outcome)
    }

    pub fn put(&self, key: LocalKey, outcome: Arc<Outcome>, ttl: Duration) {
        self.0.insert(key, Entry { outcome, ttl });
    }

    pub fn flush(&self) {
        self.0.invalidate_all();
    }

    /// Entries held, after pending evictions are applied.
    pub fn len(&self) -> u64 {
        self.0.run_pending_tasks();
        self.0.entry_count()
    }
}
