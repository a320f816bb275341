use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::decision::DecisionRequest;
use crate::identity::{Identity, IdentityKind};

fn request() -> DecisionRequest {
    DecisionRequest {
        scopes: vec!["a".into(), "b".into()],
        context: json!({ "amount": 5 }).as_object().cloned().unwrap(),
        transaction_id: Some("t-1".into()),
        ..DecisionRequest::new(
            Identity::new(IdentityKind::Agent, "assistant"),
            Identity::new(IdentityKind::Agent, "analyst"),
            Identity::new(IdentityKind::User, "alice"),
        )
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

fn key_of(r: &DecisionRequest) -> DecisionKey {
    DecisionKey::new("v1", &r.digest(), None, 7)
}

#[test]
fn every_decision_input_changes_the_key_and_the_transaction_does_not() {
    let base = key_of(&request());
    let mut variants: Vec<(&str, DecisionKey)> = vec![
        (
            "bundle",
            DecisionKey::new("v2", &request().digest(), None, 7),
        ),
        (
            "expiry",
            DecisionKey::new("v1", &request().digest(), Some(10), 7),
        ),
        (
            "epoch",
            DecisionKey::new("v1", &request().digest(), None, 8),
        ),
    ];
    let mut changed = |name, edit: fn(&mut DecisionRequest)| {
        let mut r = request();
        edit(&mut r);
        variants.push((name, key_of(&r)));
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
    changed("caller as an actor", |r| r.caller_is_actor = true);
    changed("upstream obligations", |r| {
        r.upstream_obligations = vec!["watermark".into()]
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
    assert_eq!(key_of(&other_txn), base);
}

#[test]
fn hits_and_misses_are_counted() {
    let cache = DecisionCache::new(CacheSettings::default());
    let key = cache.key("v1", &request().digest(), None);
    assert!(cache.get_local(&key).is_none());
    cache.put(&key, outcome(Effect::Allow, 60), None);
    assert_eq!(cache.get_local(&key).unwrap().ttl_secs, 60);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

#[test]
fn entries_live_no_longer_than_the_grant_the_cap_or_the_upstream_token() {
    let cache = DecisionCache::new(CacheSettings {
        capacity: 10,
        max_ttl: Duration::from_secs(120),
        ..CacheSettings::default()
    });
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
    assert_eq!(secs(cache.ttl(&outcome(Effect::Allow, 60), None)), Some(60));
    assert_eq!(
        secs(cache.ttl(&outcome(Effect::Allow, 900), None)),
        Some(120)
    );
    assert_eq!(secs(cache.ttl(&outcome(Effect::Deny, 0), None)), Some(120));
    let soon = SystemTime::now() + Duration::from_secs(30);
    let bounded = cache.ttl(&outcome(Effect::Allow, 60), Some(soon)).unwrap();
    assert!(bounded <= Duration::from_secs(30) && bounded > Duration::from_secs(25));
    let past = SystemTime::now() - Duration::from_secs(1);
    assert_eq!(cache.ttl(&outcome(Effect::Allow, 60), Some(past)), None);
}

#[test]
fn an_expired_upstream_token_is_never_cached() {
    let cache = DecisionCache::new(CacheSettings::default());
    let key = cache.key("v1", &request().digest(), None);
    let past = SystemTime::now() - Duration::from_secs(1);
    cache.put(&key, outcome(Effect::Allow, 60), Some(past));
    assert!(cache.get_local(&key).is_none());
}

#[test]
fn a_zero_capacity_cache_keeps_nothing() {
    let cache = DecisionCache::new(CacheSettings {
        capacity: 0,
        ..CacheSettings::default()
    });
    let key = cache.key("v1", &request().digest(), None);
    cache.put(&key, outcome(Effect::Allow, 60), None);
    assert!(cache.get_local(&key).is_none());
}

#[test]
fn invalidation_empties_the_local_tier_at_once() {
    let cache = DecisionCache::new(CacheSettings::default());
    let key = cache.key("v1", &request().digest(), None);
    cache.put(&key, outcome(Effect::Allow, 60), None);
    cache.invalidate();
    assert!(cache.get_local(&key).is_none());
    assert_eq!(cache.local_len(), 0);
}

#[test]
fn auto_reads_redis_only_while_a_round_trip_is_cheaper_than_evaluating() {
    let us = |n| Some(Duration::from_micros(n));
    assert!(RedisReads::Auto.worth_it(us(900), us(130)));
    assert!(!RedisReads::Auto.worth_it(us(30), us(130)));
    assert!(!RedisReads::Auto.worth_it(None, us(130)));
    assert!(!RedisReads::Auto.worth_it(us(900), None));
    assert!(RedisReads::Always.worth_it(us(30), us(130)));
    assert!(RedisReads::Always.worth_it(None, None));
}

#[tokio::test]
async fn replicas_sharing_a_tier_share_decisions_and_one_invalidation_reaches_both() {
    let shared: Arc<dyn SharedTier> = Arc::new(MemoryTier::new(100));
    let settings = CacheSettings {
        redis_reads: RedisReads::Always,
        ..CacheSettings::default()
    };
    let a = DecisionCache::shared(settings, Arc::clone(&shared));
    let b = DecisionCache::shared(settings, Arc::clone(&shared));
    let key = a.key("v1", &request().digest(), None);
    a.put(&key, outcome(Effect::Allow, 60), None);
    assert!(b.get_local(&key).is_none());
    assert!(b.asks_shared());
    let found = b.get_shared(&key, "v1", None).await.unwrap();
    assert_eq!(found.unwrap().ttl_secs, 60);
    // Now also in b's own tier.
    assert!(b.get_local(&key).is_some());

    let before = shared.epoch();
    a.invalidate();
    // The retirement runs on a task of its own; the memory tier takes it at once.
    while shared.epoch() == before {
        tokio::task::yield_now().await;
    }
    let key = b.key("v1", &request().digest(), None);
    assert!(b.get_local(&key).is_none(), "b flushed on the epoch move");
    assert!(b.get_shared(&key, "v1", None).await.unwrap().is_none());
}
