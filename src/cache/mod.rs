//! Decisions remembered so identical questions skip the Cedar evaluations: an in-process tier
//! and, when Redis is configured, a tier shared by every replica. Only the outcome is kept;
//! every answer is still stamped with its own decision id and times, and signed afresh. Errors
//! are never cached: a request that fails validation fails every time, before anything is
//! stored.
//!
//! Lookup order is local first. A Redis round trip costs more than most evaluations, so on a
//! local miss the shared tier is consulted only when it has lately been cheaper than evaluating
//! ([`RedisReads::Auto`]), or always if configured so. Either way a warm request never waits on
//! Redis, and a slow or dead Redis costs at most one bounded timeout before it is skipped.
//!
//! Invalidation: keys carry the bundle version and the shared epoch; [`DecisionCache::invalidate`]
//! retires the epoch on every replica and flushes the local tier at once.

mod key;
mod local;
mod redis;
mod shared;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

pub use self::key::DecisionKey;
use self::local::{LocalKey, LocalTier};
pub use self::redis::RedisTier;
pub use self::shared::{MemoryTier, SharedTier, Unavailable};
use crate::decision::{Effect, Outcome};
use crate::ewma::Ewma;

/// How often an invalidation the shared tier did not take is tried again.
const RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// When the Redis tier is read on a local miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RedisReads {
    /// When a Redis round trip has lately been faster than evaluating.
    #[default]
    Auto,
    /// On every local miss.
    Always,
}

impl RedisReads {
    /// Whether to ask Redis, given what evaluating and a round trip have lately cost; until
    /// both are known, evaluating is the safe guess.
    fn worth_it(self, evaluating: Option<Duration>, round_trip: Option<Duration>) -> bool {
        match (self, evaluating, round_trip) {
            (Self::Always, _, _) => true,
            (Self::Auto, Some(evaluating), Some(round_trip)) => round_trip < evaluating,
            (Self::Auto, _, _) => false,
        }
    }
}

/// Sizes and lifetimes of the tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Entries kept in process at most; zero turns the in-process tier off.
    pub capacity: u64,
    /// No entry lives longer, whatever the grant's TTL.
    pub max_ttl: Duration,
    /// When the Redis tier is read on an in-process miss.
    pub redis_reads: RedisReads,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_ttl: Duration::from_secs(300),
            redis_reads: RedisReads::Auto,
        }
    }
}

/// Which tier answered, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The in-process tier.
    Local,
    /// The Redis tier, shared by the replicas.
    Redis,
    /// No tier had it: the decision core evaluated the request.
    Evaluated,
}

impl Source {
    /// The name audit records, spans and logs use: `local`, `redis` or `evaluated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Redis => "redis",
            Self::Evaluated => "evaluated",
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// In-process lookups that found an outcome.
    pub hits: u64,
    /// In-process lookups that found none.
    pub misses: u64,
    /// Redis lookups that found an outcome.
    pub redis_hits: u64,
    /// Redis lookups that answered with none.
    pub redis_misses: u64,
    /// Lookups or writes that would have gone to Redis but did not, because it was down or
    /// did not answer in time.
    pub redis_fallbacks: u64,
    /// Commands on the fleet's Redis that failed or timed out, whichever store sent them.
    pub redis_errors: u64,
    /// Writes dropped because too many were already in flight.
    pub redis_writes_skipped: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    redis_hits: AtomicU64,
    redis_misses: AtomicU64,
    redis_fallbacks: AtomicU64,
    redis_writes_skipped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The in-process tier and what decides when it is flushed.
#[derive(Default)]
struct Local {
    tier: Option<LocalTier>,
    /// Bumped by every flush; part of every local key.
    generation: AtomicU64,
    /// The shared epoch the tier was last flushed for.
    seen_epoch: AtomicU64,
}

impl Local {
    fn flush(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        if let Some(tier) = &self.tier {
            tier.flush();
        }
    }

    /// Flushes if the shared epoch moved since the last look.
    fn follow(&self, epoch: u64) {
        // A plain read first: every request passes here, and the epoch rarely moves.
        if self.seen_epoch.load(Ordering::Relaxed) != epoch
            && self.seen_epoch.swap(epoch, Ordering::Relaxed) != epoch
        {
            self.flush();
        }
    }

    fn key(&self, key: &DecisionKey) -> LocalKey {
        (*key, self.generation.load(Ordering::Relaxed))
    }
}

/// The decision cache: the in-process tier and, with Redis, the shared one, keyed by
/// [`DecisionKey`] and holding outcomes only.
pub struct DecisionCache {
    local: Arc<Local>,
    shared: Option<Arc<dyn SharedTier>>,
    settings: CacheSettings,
    /// Set while an invalidation has not reached Redis: until it does, Redis is not read.
    unsent_invalidation: Arc<AtomicBool>,
    evaluation: Ewma,
    counters: Counters,
}

impl DecisionCache {
    /// The in-process tier only: the embedded default.
    pub fn new(settings: CacheSettings) -> Self {
        Self {
            local: Arc::new(Local {
                tier: (settings.capacity > 0).then(|| LocalTier::new(settings.capacity)),
                ..Local::default()
            }),
            shared: None,
            settings,
            unsent_invalidation: Arc::new(AtomicBool::new(false)),
            evaluation: Ewma::default(),
            counters: Counters::default(),
        }
    }

    /// Both tiers: the in-process one and `shared`. The in-process tier is flushed as soon
    /// as the shared epoch moves. Must be called within a Tokio runtime.
    pub fn shared(settings: CacheSettings, shared: Arc<dyn SharedTier>) -> Self {
        let cache = Self::new(settings);
        let mut changes = shared.watch_epoch();
        let local = Arc::downgrade(&cache.local);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(local) = local.upgrade() else { return };
                local.follow(*changes.borrow_and_update());
            }
        });
        Self {
            shared: Some(shared),
            ..cache
        }
    }

    /// The tier shared with other replicas, if any.
    pub fn shared_tier(&self) -> Option<&Arc<dyn SharedTier>> {
        self.shared.as_ref()
    }

    /// The key of a request, given its digest, against bundle `version`. Flushes the local
    /// tier first if another replica has retired the epoch.
    pub fn key(&self, version: &str, digest: &[u8; 32], latest_expiry: Option<u64>) -> DecisionKey {
        let epoch = self.shared.as_ref().map_or(0, |s| s.epoch());
        self.local.follow(epoch);
        DecisionKey::new(version, digest, latest_expiry, epoch)
    }

    /// The outcome the in-process tier holds for `key`, counting a hit or a miss.
    pub fn get_local(&self, key: &DecisionKey) -> Option<Arc<Outcome>> {
        let tier = self.local.tier.as_ref()?;
        let found = tier.get(&self.local.key(key));
        bump(if found.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        });
        found
    }

    /// Whether Redis is worth asking now, after an in-process miss: it is shared, up, and
    /// lately cheaper than evaluating (see [`RedisReads`]). Counts a fallback when Redis is
    /// down, so ask once per lookup.
    pub fn asks_shared(&self) -> bool {
        self.shared.as_deref().is_some_and(|s| self.worth_asking(s))
    }

    /// Asks Redis, once [`DecisionCache::asks_shared`] said to: `None` when it could not
    /// answer, else what it had. A hit is copied into the local tier.
    pub async fn get_shared(
        &self,
        key: &DecisionKey,
        version: &str,
        latest_expiry: Option<SystemTime>,
    ) -> Option<Option<Arc<Outcome>>> {
        let shared = self.shared.as_ref()?;
        match shared.get(key, version).await {
            Ok(Some(outcome)) => {
                bump(&self.counters.redis_hits);
                let outcome = Arc::new(outcome);
                if let (Some(tier), Some(ttl)) =
                    (&self.local.tier, self.ttl(&outcome, latest_expiry))
                {
                    tier.put(self.local.key(key), Arc::clone(&outcome), ttl);
                }
                Some(Some(outcome))
            }
            Ok(None) => {
                bump(&self.counters.redis_misses);
                Some(None)
            }
            Err(Unavailable) => {
                bump(&self.counters.redis_fallbacks);
                None
            }
        }
    }

    fn worth_asking(&self, shared: &dyn SharedTier) -> bool {
        let reads = self.settings.redis_reads;
        if !reads.worth_it(self.evaluation.get(), shared.latency()) {
            return false;
        }
        if !shared.is_up() || self.unsent_invalidation.load(Ordering::Relaxed) {
            bump(&self.counters.redis_fallbacks);
            return false;
        }
        true
    }

    /// How long an evaluation took, which decides whether Redis is worth asking.
    pub fn evaluated_in(&self, elapsed: Duration) {
        self.evaluation.record(elapsed);
    }

    /// Keeps a fresh outcome in the tiers, for no longer than its grant, the cap, or the
    /// upstream credential's expiry.
    pub fn put(&self, key: &DecisionKey, outcome: Arc<Outcome>, latest_expiry: Option<SystemTime>) {
        let Some(ttl) = self.ttl(&outcome, latest_expiry) else {
            return;
        };
        if let Some(shared) = self.shared.as_deref().filter(|s| self.worth_asking(*s))
            && !shared.put(key, &outcome, ttl)
        {
            bump(&self.counters.redis_writes_skipped);
        }
        if let Some(tier) = &self.local.tier {
            tier.put(self.local.key(key), outcome, ttl);
        }
    }

    /// An allow is kept no longer than the grant it describes; a deny for the cap; neither
    /// beyond the upstream credential. None when it would expire at once.
    fn ttl(&self, outcome: &Outcome, latest_expiry: Option<SystemTime>) -> Option<Duration> {
        let mut ttl = match outcome.effect {
            Effect::Allow => Duration::from_secs(outcome.ttl_secs).min(self.settings.max_ttl),
            Effect::Deny => self.settings.max_ttl,
        };
        if let Some(bound) = latest_expiry {
            let left = bound.duration_since(SystemTime::now()).unwrap_or_default();
            ttl = ttl.min(left);
        }
        (!ttl.is_zero()).then_some(ttl)
    }

    /// Makes every cached decision unusable, here at once and on every replica as soon as
    /// Redis hears of it. While Redis cannot be told, this replica stops reading it and keeps
    /// retrying in the background.
    pub fn invalidate(&self) {
        self.local.flush();
        let Some(shared) = &self.shared else { return };
        self.unsent_invalidation.store(true, Ordering::Relaxed);
        let shared = Arc::downgrade(shared);
        let unsent = Arc::clone(&self.unsent_invalidation);
        tokio::spawn(retire_epoch(shared, unsent));
    }

    /// Entries in the in-process tier.
    pub fn local_len(&self) -> u64 {
        self.local.tier.as_ref().map_or(0, LocalTier::len)
    }

    /// The counters so far, for metrics.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            hits: load(&c.hits),
            misses: load(&c.misses),
            redis_hits: load(&c.redis_hits),
            redis_misses: load(&c.redis_misses),
            redis_fallbacks: load(&c.redis_fallbacks),
            redis_errors: self.shared.as_ref().map_or(0, |s| s.errors()),
            redis_writes_skipped: load(&c.redis_writes_skipped),
        }
    }
}

async fn retire_epoch(shared: Weak<dyn SharedTier>, unsent: Arc<AtomicBool>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if strong.retire().await {
            unsent.store(false, Ordering::Relaxed);
            return;
        }
        drop(strong);
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests;
