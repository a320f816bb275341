//! The Redis tier against a real `redis-server` of the test's own: shared between replicas,
//! bounded in time, invalidated on every replica, and never in the way when Redis misbehaves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baton::bundle::PolicyBundle;
use baton::cache::{CacheSettings, RedisReads};
use baton::fleet::{Fleet, RedisSettings};
use baton::pb::{AuthorizeRequest, Decision};
use baton::policy_store::replica::Activation as _;
use tokio::net::TcpListener;

use crate::eventually::eventually;
use crate::helpers::{TestApp, bundle_dir, refund_request, report_request, spawn_configured};
use crate::redis_server::{RedisCluster, RedisServer};

/// Bounds every wait for something that happens in the background.
const PATIENCE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        prefix: prefix.to_owned(),
        ..RedisSettings::new(vec![url.to_owned()])
    }
}

/// A server over the shipped bundle sharing state through `redis`.
async fn unready_replica(redis: RedisSettings, cache: CacheSettings) -> TestApp {
    spawn_configured(|config| {
        config.redis = Some(redis);
        config.cache = cache;
    })
    .await
}

/// A server over the shipped bundle reading Redis on every in-process miss, once it is up.
async fn replica(redis: RedisSettings, cache: CacheSettings) -> TestApp {
    let app = unready_replica(redis, cache).await;
    eventually("Redis is up", || {
        app.pipeline.cache().shared_tier().unwrap().is_up()
    })
    .await;
    app
}

fn always() -> CacheSettings {
    CacheSettings {
        redis_reads: RedisReads::Always,
        ..CacheSettings::default()
    }
}

fn redis_only() -> CacheSettings {
    CacheSettings {
        capacity: 0,
        ..always()
    }
}

async fn ask(app: &mut TestApp, request: AuthorizeRequest) -> baton::pb::AuthorizeResponse {
    app.client.authorize(request).await.unwrap().into_inner()
}

async fn decision_keys(redis: &RedisServer, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}:decision:*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Waits until Redis holds `count` decisions under `prefix`: writes happen in the background.
async fn stored(redis: &RedisServer, prefix: &str, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let keys = decision_keys(redis, prefix).await;
        if keys.len() == count {
            return keys;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis holds {keys:?}, not {count} decisions"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The shipped bundle with one more policy: the analyst takes no calls at all.
fn frozen_bundle() -> PolicyBundle {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(bundle_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let freeze = "\n@id(\"freeze-analyst\")\nforbid(principal, action, resource == Agent::\"data-analyst\");\n";
    let reporting = dir.path().join("reporting.cedar");
    let text = std::fs::read_to_string(&reporting).unwrap() + freeze;
    std::fs::write(&reporting, text).unwrap();
    load(dir.path())
}

fn load(dir: &Path) -> PolicyBundle {
    PolicyBundle::load(dir).unwrap()
}

#[tokio::test]
async fn a_miss_is_stored_under_the_prefix_and_the_next_ask_hits() {
    let redis = RedisServer::start();
    let mut app = replica(settings(&redis.url(), "hits"), redis_only()).await;
    let question = report_request("User:alice", &["reports.generate", "finance.read"]);

    let first = ask(&mut app, question.clone()).await;
    stored(&redis, "hits", 1).await;
    let second = ask(&mut app, question).await;

    let stats = app.pipeline.cache().stats();
    assert_eq!((stats.redis_misses, stats.redis_hits), (1, 1));
    assert_eq!(second.decision(), Decision::Allow);
    assert_eq!(second.granted_scopes, first.granted_scopes);
    assert_ne!(second.decision_id, first.decision_id);
    assert_ne!(
        second.verdict, first.verdict,
        "every answer is signed afresh"
    );
    assert!(decision_keys(&redis, "other").await.is_empty());
}

#[tokio::test]
async fn entries_expire_with_their_ttl() {
    let redis = RedisServer::start();
    let short = CacheSettings {
        max_ttl: Duration::from_secs(1),
        ..redis_only()
    };
    let mut app = replica(settings(&redis.url(), "ttl"), short).await;
    let question = report_request("User:alice", &["reports.generate"]);

    ask(&mut app, question.clone()).await;
    let keys = stored(&redis, "ttl", 1).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (1..=1000).contains(&pttl),
        "PTTL {pttl} is not within the 1 s cap"
    );
    stored(&redis, "ttl", 0).await;
    ask(&mut app, question).await;

    let stats = app.pipeline.cache().stats();
    assert_eq!((stats.redis_misses, stats.redis_hits), (2, 0));
}

#[tokio::test]
async fn two_replicas_share_decisions_and_a_bundle_change_on_one_invalidates_both() {
    let redis = RedisServer::start();
    let mut a = replica(settings(&redis.url(), "pair"), always()).await;
    let mut b = replica(settings(&redis.url(), "pair"), always()).await;
    let question = report_request("User:alice", &["reports.generate", "finance.read"]);

    assert_eq!(
        ask(&mut a, question.clone()).await.decision(),
        Decision::Allow
    );
    stored(&redis, "pair", 1).await;
    assert_eq!(
        ask(&mut b, question.clone()).await.decision(),
        Decision::Allow
    );
    assert_eq!(
        b.pipeline.cache().stats().redis_hits,
        1,
        "B is served what A decided"
    );
    assert_eq!(b.pipeline.cache().local_len(), 1);

    // A push reaches A first; B hears of it through Redis and drops what it holds.
    a.pipeline.activate(Arc::new(frozen_bundle()));
    eventually("B flushes its in-process tier", || {
        b.pipeline.cache().local_len() == 0
    })
    .await;
    assert_eq!(
        ask(&mut a, question.clone()).await.decision(),
        Decision::Deny
    );
    b.pipeline.activate(Arc::new(frozen_bundle()));
    assert_eq!(ask(&mut b, question).await.decision(), Decision::Deny);
    assert_eq!(
        b.pipeline.cache().stats().redis_hits,
        1,
        "nothing of the old epoch is served"
    );
}

#[tokio::test]
async fn authorize_keeps_answering_while_redis_is_killed_and_restarted() {
    let mut redis = RedisServer::start();
    let mut app = replica(settings(&redis.url(), "crash"), redis_only()).await;
    let mut amounts = 1..;
    // Each refund amount is a new question, so every call goes to Redis.
    let mut ask_next = async |app: &mut TestApp| {
        let amount = amounts.next().unwrap() % 400 + 1;
        let answer = ask(app, refund_request(amount)).await;
        assert_eq!(answer.decision(), Decision::Allow, "refund of {amount}");
        assert_eq!(answer.granted_scopes, ["refunds.issue"]);
    };
    for _ in 0..20 {
        ask_next(&mut app).await;
    }
    let epoch_before = app.pipeline.cache().shared_tier().unwrap().epoch();
    redis.kill();
    for _ in 0..50 {
        ask_next(&mut app).await;
    }
    assert!(!app.pipeline.cache().shared_tier().unwrap().is_up());
    let during = app.pipeline.cache().stats();
    assert!(during.redis_fallbacks > 0 && during.redis_errors > 0);
    // The health probe may count more errors meanwhile, never fewer.
    let metrics = app.pipeline.render_metrics();
    for (series, at_least) in [
        ("baton_redis_errors_total ", during.redis_errors),
        ("baton_cache_redis_fallbacks_total ", during.redis_fallbacks),
    ] {
        let value: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.parse().ok())
            .unwrap_or_else(|| panic!("no `{series}` in {metrics}"));
        assert!(value >= at_least, "{series}{value} < {at_least}");
    }

    // An emptied Redis lost the epoch too: a fresh one is made, never the old one again.
    redis.restart();
    let fleet = Arc::clone(app.pipeline.cache().shared_tier().unwrap());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !fleet.is_up() || fleet.epoch() == epoch_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection never came back"
        );
        ask_next(&mut app).await;
    }
    let question = refund_request(999);
    let before = decision_keys(&redis, "crash").await.len();
    ask(&mut app, question.clone()).await;
    stored(&redis, "crash", before + 1).await;
    ask(&mut app, question).await;
    assert_eq!(
        app.pipeline.cache().stats().redis_hits,
        during.redis_hits + 1
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_at_most_the_timeout() {
    // Accepts connections, reads nothing, answers nothing.
    let black_hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}/", black_hole.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            open.push(socket);
        }
    });
    let mut app = unready_replica(settings(&url, "hole"), redis_only()).await;

    for amount in 1..=20 {
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            ask(&mut app, refund_request(amount)),
        )
        .await
        .expect("an Authorize never waits on Redis beyond its timeout");
        assert_eq!(answer.decision(), Decision::Allow);
    }
    let stats = app.pipeline.cache().stats();
    assert_eq!(stats.redis_hits, 0);
    assert!(stats.redis_fallbacks >= 20, "{stats:?}");
    assert!(!app.pipeline.cache().shared_tier().unwrap().is_up());
    held.abort();
}

#[tokio::test]
async fn a_redis_cluster_works_by_configuration_alone() {
    let cluster = RedisCluster::start();
    let settings = RedisSettings {
        cluster: true,
        prefix: "cluster".to_owned(),
        ..RedisSettings::new(cluster.urls())
    };
    let mut app = replica(settings, redis_only()).await;
    let question = report_request("User:alice", &["reports.generate", "finance.read"]);

    assert_eq!(
        ask(&mut app, question.clone()).await.decision(),
        Decision::Allow
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    // The write is in the background: ask until the cluster answers it.
    while app.pipeline.cache().stats().redis_hits == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never served from the cluster"
        );
        tokio::time::sleep(POLL).await;
        assert_eq!(
            ask(&mut app, question.clone()).await.decision(),
            Decision::Allow
        );
    }
    assert_eq!(app.pipeline.cache().stats().redis_fallbacks, 0);
    assert_ne!(app.pipeline.cache().shared_tier().unwrap().epoch(), 0);
}

#[tokio::test]
async fn a_doorbell_rung_on_one_replica_reaches_every_replica_listening() {
    let redis = RedisServer::start();
    let ringer = Fleet::start(settings(&redis.url(), "bells")).unwrap();
    let listener = Fleet::start(settings(&redis.url(), "bells")).unwrap();
    let (mut theirs, mut own) = (listener.notices(), ringer.notices());
    // Each fleet subscribes in the background: ring until both have heard.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut heard = (false, false);
    while heard != (true, true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the doorbell never arrived (heard by the listener, the ringer: {heard:?})"
        );
        ringer.ring("revocations").await;
        tokio::time::sleep(POLL).await;
        for (notices, heard) in [(&mut theirs, &mut heard.0), (&mut own, &mut heard.1)] {
            while let Ok(notice) = notices.try_recv() {
                assert_eq!(notice, "revocations");
                *heard = true;
            }
        }
    }
}
