//! Where approvals are kept and how approvers find them: without Redis in the store directory,
//! so one asked for before a restart is approved and used after it; `ListApprovals` over the
//! directory, a Redis server (with this replica's outbox while Redis is frozen) and a Redis
//! Cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::clock::ManualClock;
use baton::fleet::RedisSettings;
use baton::pb::{self, ApprovalStatus, Decision};
use tonic::Code;

use crate::governance::refund;
use crate::helpers::{
    AdminApp, authed, spawn_admin_app_configured, spawn_admin_app_in, with_token,
};
use crate::replicas::redis_support::{RedisCluster, RedisServer};
use crate::spawn::server_dir;

/// Bounds every wait for something that happens in the background.
const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

async fn ask(app: &mut AdminApp, amount: i64, approval_id: &str) -> pb::AuthorizeResponse {
    app.decisions
        .authorize(refund(amount, approval_id))
        .await
        .unwrap()
        .into_inner()
}

/// Asks for a refund that needs approval and returns the approval's id.
async fn open(app: &mut AdminApp, amount: i64) -> String {
    let asked = ask(app, amount, "").await;
    assert_eq!(asked.decision(), Decision::ApprovalRequired);
    asked.approval.unwrap().approval_id
}

async fn decide(app: &mut AdminApp, id: &str, approve: bool) -> pb::Approval {
    let request = authed(pb::DecideApprovalRequest {
        approval_id: id.to_owned(),
        rationale: "checked by hand".into(),
    });
    let decided = if approve {
        app.governance.approve(request).await
    } else {
        app.governance.reject(request).await
    };
    decided.unwrap().into_inner()
}

async fn list(
    app: &mut AdminApp,
    request: pb::ListApprovalsRequest,
) -> Result<pb::ListApprovalsResponse, tonic::Status> {
    app.governance
        .list_approvals(authed(request))
        .await
        .map(tonic::Response::into_inner)
}

fn ids(listed: &pb::ListApprovalsResponse) -> Vec<&str> {
    listed
        .approvals
        .iter()
        .map(|a| a.approval_id.as_str())
        .collect()
}

fn bob() -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: "User".into(),
        id: "bob".into(),
    })
}

#[tokio::test]
async fn an_approval_asked_for_before_a_restart_is_approved_and_used_after_it() {
    let dir = server_dir();
    let mut before = spawn_admin_app_in(dir.path(), |_| {}).await;
    let id = open(&mut before, 750).await;
    before.stop().await;
    assert!(
        dir.path()
            .join("store")
            .join("approvals")
            .join(format!("{id}.json"))
            .exists(),
        "the approval is kept in the store directory"
    );

    let mut after = spawn_admin_app_in(dir.path(), |_| {}).await;
    let still = ask(&mut after, 750, &id).await;
    assert_eq!(
        still.decision(),
        Decision::ApprovalRequired,
        "still pending"
    );
    let approved = decide(&mut after, &id, true).await;
    assert_eq!(approved.status(), ApprovalStatus::Approved);
    let allowed = ask(&mut after, 750, &id).await;
    assert_eq!(allowed.decision(), Decision::Allow);
    assert!(!allowed.verdict.is_empty());
    after.stop().await;

    // Used is kept too: a third start does not let it open again.
    let mut again = spawn_admin_app_in(dir.path(), |_| {}).await;
    let reused = ask(&mut again, 750, &id).await;
    assert_eq!(reused.decision(), Decision::Deny);
    assert_eq!(reused.denial.unwrap().code(), pb::DenialCode::ApprovalUsed);
}

#[tokio::test]
async fn an_approval_that_cannot_be_recorded_fails_closed_rather_than_erring() {
    let dir = server_dir();
    let mut app = spawn_admin_app_in(dir.path(), |_| {}).await;
    let approvals = dir.path().join("store").join("approvals");
    std::fs::remove_dir_all(&approvals).unwrap();
    // A file where the directory was: no approval can be written, even as root.
    std::fs::write(&approvals, b"").unwrap();
    let denied = ask(&mut app, 750, "").await;
    assert_eq!(denied.decision(), Decision::Deny);
    assert_eq!(
        denied.denial.unwrap().code(),
        pb::DenialCode::ApprovalUnavailable
    );
    assert!(denied.verdict.is_empty() && denied.approval.is_none());
}

#[tokio::test]
async fn approvals_are_listed_pending_first_newest_first_filtered_and_bounded() {
    let clock = Arc::new(ManualClock::starting_now());
    let mut app = spawn_admin_app_configured(|config| config.clock = clock.clone()).await;
    let mut opened = Vec::new();
    for amount in [750, 760, 770, 780] {
        opened.push(open(&mut app, amount).await);
        clock.advance(Duration::from_secs(1));
    }
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| opened[i].as_str());
    decide(&mut app, c, true).await;
    decide(&mut app, d, false).await;

    let all = list(&mut app, pb::ListApprovalsRequest::default())
        .await
        .unwrap();
    assert_eq!(ids(&all), [b, a, c, d]);
    assert!(!all.truncated && !all.incomplete);
    let first = &all.approvals[0];
    assert_eq!(first.status(), ApprovalStatus::Pending);
    let chain: Vec<_> = first.chain.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(chain, ["bob", "support-assistant", "refund-agent"]);
    assert_eq!(first.scopes, ["refunds.issue"]);
    assert!(!first.transaction_id.is_empty() && !first.decision_id.is_empty());
    assert!(first.expires_at.is_some() && !first.in_outbox);

    let pending = pb::ListApprovalsRequest {
        status: ApprovalStatus::Pending as i32,
        ..Default::default()
    };
    assert_eq!(ids(&list(&mut app, pending).await.unwrap()), [b, a]);
    let bobs = pb::ListApprovalsRequest {
        principal: bob(),
        ..Default::default()
    };
    assert_eq!(ids(&list(&mut app, bobs).await.unwrap()), [b, a, c, d]);
    let alices = pb::ListApprovalsRequest {
        principal: Some(pb::EntityRef {
            r#type: "User".into(),
            id: "alice".into(),
        }),
        ..Default::default()
    };
    assert!(list(&mut app, alices).await.unwrap().approvals.is_empty());
    let one = pb::ListApprovalsRequest {
        limit: Some(1),
        ..Default::default()
    };
    let one = list(&mut app, one).await.unwrap();
    assert_eq!(ids(&one), [b]);
    assert!(one.truncated);
}

#[tokio::test]
async fn bad_listings_name_their_field_and_need_the_admin_token() {
    let mut app = spawn_admin_app_configured(|_| {}).await;
    let cases = [
        (
            pb::ListApprovalsRequest {
                limit: Some(0),
                ..Default::default()
            },
            "limit",
        ),
        (
            pb::ListApprovalsRequest {
                limit: Some(1001),
                ..Default::default()
            },
            "limit",
        ),
        (
            pb::ListApprovalsRequest {
                status: 99,
                ..Default::default()
            },
            "status",
        ),
        (
            pb::ListApprovalsRequest {
                principal: Some(pb::EntityRef {
                    r#type: "Robot".into(),
                    id: "r2".into(),
                }),
                ..Default::default()
            },
            "principal.type",
        ),
    ];
    for (request, field) in cases {
        let status = list(&mut app, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    let max = pb::ListApprovalsRequest {
        limit: Some(1000),
        ..Default::default()
    };
    assert!(list(&mut app, max).await.is_ok());
    let anonymous = app
        .governance
        .list_approvals(pb::ListApprovalsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong = app
        .governance
        .list_approvals(with_token(
            "not-the-admin-token-at-all",
            pb::ListApprovalsRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
}

/// Lists until `done` holds of the listing, within [`PATIENCE`].
async fn list_until(
    app: &mut AdminApp,
    done: impl Fn(&pb::ListApprovalsResponse) -> bool,
) -> pb::ListApprovalsResponse {
    let started = Instant::now();
    loop {
        let listed = list(app, pb::ListApprovalsRequest::default()).await;
        match listed {
            Ok(listed) if done(&listed) => return listed,
            other => assert!(started.elapsed() < PATIENCE, "never listed so: {other:?}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the listing is complete and holds exactly `opened`, none of it in the outbox.
async fn all_in_redis(app: &mut AdminApp, mut opened: Vec<String>) {
    opened.sort();
    list_until(app, |l| {
        let mut listed: Vec<&str> = ids(l);
        listed.sort_unstable();
        !l.incomplete && listed == opened && l.approvals.iter().all(|a| !a.in_outbox)
    })
    .await;
}

#[tokio::test]
async fn with_redis_the_listing_scans_redis_and_keeps_the_outbox_while_redis_is_frozen() {
    let redis = RedisServer::start();
    let mut app = spawn_admin_app_configured(|config| {
        config.redis = Some(RedisSettings::new(vec![redis.url()]));
    })
    .await;
    let mut opened = vec![open(&mut app, 750).await, open(&mut app, 760).await];
    let listed = list_until(&mut app, |l| {
        l.approvals.len() == 2 && l.approvals.iter().all(|a| !a.in_outbox)
    })
    .await;
    assert!(!listed.incomplete);

    redis.pause();
    let waiting = open(&mut app, 770).await;
    let frozen = list(&mut app, pb::ListApprovalsRequest::default())
        .await
        .unwrap();
    assert!(frozen.incomplete, "Redis could not be read");
    assert_eq!(ids(&frozen), [waiting.as_str()]);
    assert!(frozen.approvals[0].in_outbox);
    redis.resume();

    opened.push(waiting);
    all_in_redis(&mut app, opened).await;
}

#[tokio::test]
async fn on_a_redis_cluster_the_listing_scans_every_primary() {
    let cluster = RedisCluster::start();
    let mut app = spawn_admin_app_configured(|config| {
        config.redis = Some(RedisSettings {
            cluster: true,
            ..RedisSettings::new(cluster.urls())
        });
    })
    .await;
    // Enough ids that their keys fall on every node.
    let mut opened = Vec::new();
    for amount in 700..716 {
        opened.push(open(&mut app, amount).await);
    }
    all_in_redis(&mut app, opened).await;
}

#[tokio::test]
async fn pending_approvals_are_forwarded_again_after_redis_loses_them() {
    let redis = RedisServer::start();
    let mut app = spawn_admin_app_configured(|config| {
        config.redis = Some(RedisSettings::new(vec![redis.url()]));
    })
    .await;
    let id = open(&mut app, 750).await;
    list_until(&mut app, |l| {
        ids(l) == [id.as_str()] && !l.approvals[0].in_outbox
    })
    .await;

    crate::lost_redis::flushall(&redis.url()).await;
    // Re-forwarded within a few forward intervals, and counted once.
    let listed = list_until(&mut app, |l| ids(l) == [id.as_str()]).await;
    assert_eq!(listed.approvals[0].status(), ApprovalStatus::Pending);
    let metrics = app.pipeline.render_metrics();
    assert!(
        metrics.contains("baton_store_reseeds_total{store=\"approvals\"} 1"),
        "{metrics}"
    );
    decide(&mut app, &id, true).await;
    let allowed = ask(&mut app, 750, &id).await;
    assert_eq!(allowed.decision(), Decision::Allow);
}
