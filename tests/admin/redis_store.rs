//! The Redis bundle store over the fleet's connection: pushes, activations and rollbacks
//! through a real three-node Redis Cluster, where its keys share one slot, and the key names a
//! single server has always held.

use std::sync::Arc;
use std::time::Duration;

use baton::fleet::{Fleet, RedisSettings};
use baton::pb::{self, Decision};
use baton::policy_store::{BundleStore, RedisStore};
use tokio::sync::watch;
use tonic::Code;

use crate::helpers::{authed, forbidding_files, push, report, spawn_admin_app_configured};
use crate::replicas::redis_support::{RedisCluster, RedisServer};

/// Bounds every wait for something that happens in the background.
const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);
/// Bound on each command of the store, as `baton serve` gives it.
const TIMEOUT: Duration = Duration::from_secs(1);

fn store(settings: RedisSettings) -> Arc<RedisStore> {
    Arc::new(RedisStore::new(Fleet::start(settings).unwrap(), TIMEOUT))
}

/// Waits until `notices` counts more than `seen`, and returns the count.
async fn notice_after(notices: &mut watch::Receiver<u64>, seen: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = *notices.borrow_and_update();
        if now > seen {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no bundle notice after {seen}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn pushes_activations_and_rollbacks_go_through_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let store = store(RedisSettings {
        cluster: true,
        prefix: "admin".to_owned(),
        ..RedisSettings::new(cluster.urls())
    });
    let mut notices = store.subscribe().unwrap();
    // Subscribed once the first notice, the fresh subscription, is counted.
    let subscribed = notice_after(&mut notices, 0).await;
    let mut app = spawn_admin_app_configured(|config| {
        config.redis = Some(RedisSettings {
            cluster: true,
            prefix: "admin".to_owned(),
            ..RedisSettings::new(cluster.urls())
        });
    })
    .await;
    let original = report(&mut app.decisions).await.bundle_version;

    let pushed = push(&mut app, forbidding_files(false), "deny")
        .await
        .unwrap()
        .bundle
        .unwrap();
    assert_eq!(pushed.revision, 2, "the shipped bundle seeded revision 1");
    assert_eq!(report(&mut app.decisions).await.decision(), Decision::Deny);
    // The PUBLISH inside the transaction reaches the subscription on a seed node.
    let pushed_notice = notice_after(&mut notices, subscribed).await;

    let rolled = app
        .admin
        .rollback_bundle(authed(pb::RollbackBundleRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.active.unwrap().revision, 1);
    assert_eq!(report(&mut app.decisions).await.bundle_version, original);
    notice_after(&mut notices, pushed_notice).await;

    app.admin
        .activate_bundle(authed(pb::ActivateBundleRequest { revision: 2 }))
        .await
        .unwrap();
    assert_eq!(report(&mut app.decisions).await.decision(), Decision::Deny);
    let status = app
        .admin
        .activate_bundle(authed(pb::ActivateBundleRequest { revision: 9 }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let listed = app
        .admin
        .list_bundles(authed(pb::ListBundlesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.active_revision, 2);
    let revisions: Vec<u64> = listed.bundles.iter().map(|b| b.revision).collect();
    assert_eq!(revisions, [2, 1]);
    // The rollback took revision 2 off the activations; the activation put it back.
    assert_eq!(store.activations().await.unwrap(), [1, 2]);

    // Every key carries the hash tag, so each lives in the slot the transaction used.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut connection = client.get_async_connection().await.unwrap();
    let active: Option<u64> = redis::cmd("GET")
        .arg("{admin:bundles}:active")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(active, Some(2));
}

#[tokio::test]
async fn a_single_server_keeps_the_key_names_it_always_had() {
    let redis = RedisServer::start();
    let mut app = spawn_admin_app_configured(|config| {
        config.redis = Some(RedisSettings {
            prefix: "single".to_owned(),
            ..RedisSettings::new(vec![redis.url()])
        });
    })
    .await;
    push(&mut app, forbidding_files(false), "deny")
        .await
        .unwrap();

    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("single:bundles:*")
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "single:bundles:activations",
            "single:bundles:active",
            "single:bundles:files:1",
            "single:bundles:files:2",
            "single:bundles:next",
            "single:bundles:record:1",
            "single:bundles:record:2",
        ]
    );
}

#[tokio::test]
async fn an_unreachable_redis_fails_an_admin_call_fast() {
    let port = crate::replicas::redis_support::free_port();
    let store = store(RedisSettings::new(vec![format!(
        "redis://127.0.0.1:{port}/"
    )]));
    // The store's own bound ends the call; the test's only turns a hang into a failure.
    let err = tokio::time::timeout(PATIENCE, store.active())
        .await
        .expect("the call ends")
        .unwrap_err();
    assert!(
        matches!(err, baton::policy_store::StoreError::Unavailable(_)),
        "{err}"
    );
}
