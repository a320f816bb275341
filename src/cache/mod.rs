//! Decisions remembered in process: identical questions against the same bundle get the same
//! outcome, so a warm Authorize skips the Cedar evaluations. Only the outcome is kept; every
//! answer is still stamped with its own decision id and times, and signed afresh.
//!
//! The key covers every input of [`decide`](crate::decision::decide): the bundle version and
//! the request as evaluated (identities, chain, scopes in order, context, ceiling), plus the
//! upstream credential's latest expiry. The server's decision settings are fixed for the life
//! of a cache, which is per process. Errors are never cached: a request that fails validation
//! fails every time, before anything is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::Expiry;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::decision::{Effect, Outcome};

/// Sizes and lifetimes of the in-process tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Entries kept at most; zero turns the cache off.
    pub capacity: u64,
    /// No entry lives longer, whatever the grant's TTL.
    pub max_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_ttl: Duration::from_secs(300),
        }
    }
}

/// A SHA-256 over everything a decision depends on.
///
/// [`DecisionRequest::digest`]: crate::decision::DecisionRequest::digest
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionKey([u8; 32]);

impl DecisionKey {
    /// The key of a request, given its [`DecisionRequest::digest`], against bundle `version`;
    /// `latest_expiry` is the upstream token's `exp_max` (seconds since the epoch), if any.
    pub fn new(version: &str, request_digest: &[u8; 32], latest_expiry: Option<u64>) -> Self {
        let mut h = Sha256::new();
        h.update((version.len() as u64).to_be_bytes());
        h.update(version.as_bytes());
        h.update(request_digest);
        match latest_expiry {
            Some(exp_max) => {
                h.update([1]);
                h.update(exp_max.to_be_bytes());
            }
            None => h.update([0]),
        }
        Self(h.finalize().into())
    }
}

#[derive(Clone)]
struct Entry {
    outcome: Arc<Outcome>,
    ttl: Duration,
}

/// Each entry lives for its own TTL.
struct PerEntry;

impl Expiry<DecisionKey, Entry> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &DecisionKey,
        entry: &Entry,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// How often the cache answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
}

pub struct DecisionCache {
    local: Option<Cache<DecisionKey, Entry>>,
    max_ttl: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl DecisionCache {
    pub fn new(settings: CacheSettings) -> Self {
        let local = (settings.capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(settings.capacity)
                .expire_after(PerEntry)
                .build()
        });
        Self {
            local,
            max_ttl: settings.max_ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn get(&self, key: &DecisionKey) -> Option<Arc<Outcome>> {
        let local = self.local.as_ref()?;
        let found = local.get(key).map(|entry| entry.outcome);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn put(&self, key: DecisionKey, outcome: Arc<Outcome>) {
        let Some(local) = &self.local else { return };
        let ttl = self.ttl(&outcome);
        if !ttl.is_zero() {
            local.insert(key, Entry { outcome, ttl });
        }
    }

    /// An allow is kept no longer than the grant it describes; a deny for the cap.
    fn ttl(&self, outcome: &Outcome) -> Duration {
        match outcome.effect {
            Effect::Allow => Duration::from_secs(outcome.ttl_secs).min(self.max_ttl),
            Effect::Deny => self.max_ttl,
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::decision::DecisionRequest;
    use crate::identity::{Identity, IdentityKind};

    fn request() -> DecisionRequest {
        DecisionRequest {
            caller: Identity::new(IdentityKind::Agent, "assistant"),
            callee: Identity::new(IdentityKind::Agent, "analyst"),
            principal: Identity::new(IdentityKind::User, "alice"),
            scopes: vec!["a".into(), "b".into()],
            context: json!({ "amount": 5 }).as_object().cloned().unwrap(),
            delegation_chain: Vec::new(),
            ceiling: None,
            transaction_id: Some("t-1".into()),
        }
    }

    fn outcome(effect: Effect, ttl_secs: u64) -> Arc<Outcome> {
        Arc::new(Outcome {
            effect,
            granted: Vec::new(),
            refused: Vec::new(),
            ttl_secs,
            chain: Vec::new(),
            obligations: Vec::new(),
            determining_policies: Vec::new(),
            bundle_version: "v1".into(),
            denial: None,
        })
    }

    #[test]
    fn every_decision_input_changes_the_key_and_the_transaction_does_not() {
        let base = DecisionKey::new("v1", &request().digest(), None);
        let mut variants: Vec<(&str, DecisionKey)> = vec![
            ("bundle", DecisionKey::new("v2", &request().digest(), None)),
            (
                "expiry",
                DecisionKey::new("v1", &request().digest(), Some(10)),
            ),
        ];
        let mut changed = |name, edit: fn(&mut DecisionRequest)| {
            let mut r = request();
            edit(&mut r);
            variants.push((name, DecisionKey::new("v1", &r.digest(), None)));
        };
        changed("caller", |r| r.caller.id = "other".into());
        changed("caller kind", |r| r.caller.kind = IdentityKind::Service);
        changed("callee", |r| r.callee.id = "other".into());
        changed("principal", |r| r.principal.id = "bob".into());
        changed("chain", |r| {
            r.delegation_chain
                .push(Identity::new(IdentityKind::Agent, "x"))
        });
        changed("scope order", |r| r.scopes.reverse());
        changed("scopes", |r| r.scopes.pop().map(drop).unwrap_or_default());
        changed("context", |r| {
            r.context.insert("amount".into(), json!(6));
        });
        changed("ceiling", |r| r.ceiling = Some(HashSet::new()));
        changed("ceiling members", |r| {
            r.ceiling = Some(["a".to_owned()].into())
        });
        let mut seen = HashSet::from([base]);
        for (name, key) in variants {
            assert!(
                seen.insert(key),
                "changing the {name} did not change the key"
            );
        }
        let mut other_txn = request();
        other_txn.transaction_id = Some("t-2".into());
        assert_eq!(DecisionKey::new("v1", &other_txn.digest(), None), base);
    }

    #[test]
    fn hits_and_misses_are_counted() {
        let cache = DecisionCache::new(CacheSettings::default());
        let key = DecisionKey::new("v1", &request().digest(), None);
        assert!(cache.get(&key).is_none());
        cache.put(key, outcome(Effect::Allow, 60));
        assert_eq!(cache.get(&key).unwrap().ttl_secs, 60);
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1 });
    }

    #[test]
    fn entries_live_no_longer_than_the_grant_or_the_cap() {
        let cache = DecisionCache::new(CacheSettings {
            capacity: 10,
            max_ttl: Duration::from_secs(120),
        });
        assert_eq!(
            cache.ttl(&outcome(Effect::Allow, 60)),
            Duration::from_secs(60)
        );
        assert_eq!(
            cache.ttl(&outcome(Effect::Allow, 900)),
            Duration::from_secs(120)
        );
        assert_eq!(
            cache.ttl(&outcome(Effect::Deny, 0)),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn a_zero_capacity_cache_keeps_nothing() {
        let cache = DecisionCache::new(CacheSettings {
            capacity: 0,
            max_ttl: Duration::from_secs(60),
        });
        let key = DecisionKey::new("v1", &request().digest(), None);
        cache.put(key, outcome(Effect::Allow, 60));
        assert!(cache.get(&key).is_none());
    }
}
