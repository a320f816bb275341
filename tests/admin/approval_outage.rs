//! Approval-required requests while Redis is frozen (`SIGSTOP`) for three seconds: opening the
//! pending approval waited on Redis and failed the whole Authorize with `UNAVAILABLE`. Every
//! answer must now be APPROVAL_REQUIRED (or, for an approval this replica cannot look up, a
//! fail-closed DENY), never an error; once Redis is back the approvals opened meanwhile reach
//! it and can be approved and used.

use std::time::{Duration, Instant};

use baton::fleet::RedisSettings;
use baton::pb::{self, Decision, DenialCode};

use crate::governance::refund;
use crate::helpers::{AdminApp, authed, spawn_admin_app_configured};
use crate::replicas::redis_support::RedisServer;

const FROZEN: Duration = Duration::from_secs(3);
const PATIENCE: Duration = Duration::from_secs(10);

async fn ask(app: &mut AdminApp, request: pb::AuthorizeRequest) -> pb::AuthorizeResponse {
    match app.decisions.authorize(request).await {
        Ok(answer) => answer.into_inner(),
        Err(status) => panic!("Authorize failed: {status:?}"),
    }
}

#[tokio::test]
async fn approval_required_answers_never_fail_while_redis_is_frozen() {
    let redis = RedisServer::start();
    let mut app = spawn_admin_app_configured(|config| {
        config.redis = Some(RedisSettings::new(vec![redis.url()]));
    })
    .await;
    let before = ask(&mut app, refund(700, "")).await;
    assert_eq!(before.decision(), Decision::ApprovalRequired);
    let opened_before = before.approval.unwrap().approval_id;

    redis.pause();
    let frozen_at = Instant::now();
    let (mut opened, mut longest) = (Vec::new(), Duration::ZERO);
    while frozen_at.elapsed() < FROZEN {
        let started = Instant::now();
        let answer = ask(&mut app, refund(700, "")).await;
        longest = longest.max(started.elapsed());
        assert_eq!(answer.decision(), Decision::ApprovalRequired);
        opened.push(answer.approval.unwrap().approval_id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One opened here is read from this replica's outbox: still pending.
    let again = ask(&mut app, refund(700, &opened[0])).await;
    assert_eq!(again.decision(), Decision::ApprovalRequired);
    // One opened before lives only in Redis: it cannot be looked up, so it fails closed.
    let unknown = ask(&mut app, refund(700, &opened_before)).await;
    assert_eq!(unknown.decision(), Decision::Deny);
    assert_eq!(
        unknown.denial.unwrap().code(),
        DenialCode::ApprovalUnavailable
    );
    redis.resume();
    eprintln!(
        "{} approval-required answers while Redis was frozen for {FROZEN:?}, longest {longest:?}",
        opened.len()
    );

    // The outbox reaches Redis: an approver can approve what was opened during the freeze.
    let id = opened.last().unwrap().clone();
    let resumed = Instant::now();
    loop {
        let approved = app
            .governance
            .approve(authed(pb::DecideApprovalRequest {
                approval_id: id.clone(),
                rationale: "checked by hand".into(),
            }))
            .await;
        if approved.is_ok() {
            break;
        }
        assert!(
            resumed.elapsed() < PATIENCE,
            "never reached Redis: {approved:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let allowed = ask(&mut app, refund(700, &id)).await;
    assert_eq!(allowed.decision(), Decision::Allow);
}
