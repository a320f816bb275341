//! Approvals by risk: a refund over 5000 (`@approvers("2")` in the shipped bundle) opens only
//! once two distinct approvers, each a `User` of the directory through `--approver`, approved
//! it; nobody party to the request approves it, nobody counts twice, and the verdict and the
//! audit trail name every approver.

use std::path::Path;
use std::time::{Duration, Instant};

use baton::audit::{AuditEvent, AuditMode, AuditRecord, AuditSettings};
use baton::fleet::RedisSettings;
use baton::pb::{self, ApprovalStatus, Decision};
use baton::transport::AdminTokens;
use tonic::Code;
use tonic_types::StatusExt;

use crate::governance::refund;
use crate::helpers::{AdminApp, spawn_admin_app_configured, with_token};
use crate::replicas::redis_support::RedisServer;

/// Bounds every wait for something that happens in the background.
const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

const CAROL: &str = "carol-0123456789abcdef";
const ALICE: &str = "alice-0123456789abcdef";
const BOB: &str = "bob-0123456789abcdef00";
/// An admin with no directory identity: it may approve what needs one approver only.
const OPS: &str = "ops-0123456789abcdef00";
/// An admin whose identity left the directory.
const MALLORY: &str = "mallory-0123456789abcd";

/// A server whose admins are carol, alice and bob (each the `User` of that name), ops (no
/// identity) and mallory (`User:mallory`, whom the bundle does not know), auditing to a file
/// in `dir`.
async fn spawn(dir: &Path) -> AdminApp {
    spawn_with_redis(dir, None).await
}

/// As [`spawn`], keeping approvals in the Redis at `redis` when there is one.
async fn spawn_with_redis(dir: &Path, redis: Option<String>) -> AdminApp {
    let tokens = dir.join("admins");
    std::fs::write(
        &tokens,
        format!("carol {CAROL}\nalice {ALICE}\nbob {BOB}\nops {OPS}\nmallory {MALLORY}\n"),
    )
    .unwrap();
    let admins = AdminTokens::from_file(&tokens)
        .unwrap()
        .with_approvers(&[
            "carol=User:carol",
            "alice=User:alice",
            "bob=User:bob",
            "mallory=User:mallory",
        ])
        .unwrap();
    let audit = AuditSettings {
        mode: AuditMode::File,
        file: dir.join("audit.jsonl"),
        spool: dir.join("spool.jsonl"),
        ..AuditSettings::default()
    };
    let app = spawn_admin_app_configured(|config| {
        config.admin_tokens = Some(admins);
        config.audit = audit;
        config.redis = redis.map(|url| RedisSettings::new(vec![url]));
    })
    .await;
    if app.pipeline.cache().shared_tier().is_some() {
        let deadline = Instant::now() + PATIENCE;
        while !app
            .pipeline
            .cache()
            .shared_tier()
            .is_some_and(|t| t.is_up())
        {
            assert!(Instant::now() < deadline, "Redis never answered");
            tokio::time::sleep(POLL).await;
        }
    }
    app
}

async fn ask(app: &mut AdminApp, amount: i64, approval_id: &str) -> pb::AuthorizeResponse {
    app.decisions
        .authorize(refund(amount, approval_id))
        .await
        .unwrap()
        .into_inner()
}

async fn approve(
    app: &mut AdminApp,
    token: &str,
    id: &str,
    rationale: &str,
) -> Result<pb::Approval, tonic::Status> {
    let request = pb::DecideApprovalRequest {
        approval_id: id.to_owned(),
        rationale: rationale.to_owned(),
    };
    app.governance
        .approve(with_token(token, request))
        .await
        .map(tonic::Response::into_inner)
}

/// The `google.rpc.ErrorInfo` reason of a refusal.
fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The claims of a compact JWS, unverified: the tests only read what Baton wrote.
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn records(app: &AdminApp, dir: &Path) -> Vec<AuditRecord> {
    app.pipeline.audit().flush().await;
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn a_refund_over_5000_opens_only_once_two_distinct_approvers_approved_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn(dir.path()).await;
    let asked = ask(&mut app, 6000, "").await;
    assert_eq!(asked.decision(), Decision::ApprovalRequired);
    let pending = asked.approval.unwrap();
    assert_eq!(
        (pending.approvals_required, pending.approvals_needed),
        (2, 2)
    );
    let id = pending.approval_id;

    let first = approve(&mut app, CAROL, &id, "customer verified")
        .await
        .unwrap();
    assert_eq!(first.status(), ApprovalStatus::Pending);
    assert_eq!((first.approvals_required, first.approvals_needed), (2, 1));
    assert_eq!(first.approvers.len(), 1);
    assert_eq!(first.approvers[0].approver, "User:carol");
    assert_eq!(first.approvers[0].admin, "carol");
    assert!(first.decided_by.is_empty(), "one of two decides nothing");
    let still = ask(&mut app, 6000, &id).await;
    assert_eq!(
        still.decision(),
        Decision::ApprovalRequired,
        "one is not enough"
    );
    assert!(still.verdict.is_empty());
    assert_eq!(still.approval.unwrap().approvals_needed, 1);

    // The same approver twice is refused, and the approval is left as it was.
    let twice = approve(&mut app, CAROL, &id, "really sure")
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(reason(&twice), "ALREADY_APPROVED_BY");
    assert!(
        twice.message().contains("User:carol"),
        "{}",
        twice.message()
    );
    // An admin with no directory identity cannot count as a second person.
    let anonymous = approve(&mut app, OPS, &id, "fine").await.unwrap_err();
    assert_eq!(anonymous.code(), Code::PermissionDenied);
    assert_eq!(reason(&anonymous), "APPROVER_IDENTITY_REQUIRED");
    // Nor one the directory does not know (any more).
    let stranger = approve(&mut app, MALLORY, &id, "fine").await.unwrap_err();
    assert_eq!(stranger.code(), Code::PermissionDenied);
    assert_eq!(reason(&stranger), "APPROVER_NOT_IN_DIRECTORY");

    let listed = app
        .governance
        .list_approvals(with_token(
            OPS,
            pb::ListApprovalsRequest {
                status: ApprovalStatus::Pending as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.approvals.len(), 1);
    assert_eq!(
        listed.approvals[0].approvals_needed, 1,
        "the inbox shows what is left"
    );

    let second = approve(&mut app, ALICE, &id, "amount matches the invoice")
        .await
        .unwrap();
    assert_eq!(second.status(), ApprovalStatus::Approved);
    assert_eq!((second.approvals_required, second.approvals_needed), (2, 0));
    assert_eq!(second.decided_by, "User:alice");
    assert_eq!(second.rationale, "amount matches the invoice");

    let allowed = ask(&mut app, 6000, &id).await;
    assert_eq!(allowed.decision(), Decision::Allow);
    let verdict = claims(&allowed.verdict);
    assert_eq!(verdict["approval"], id.as_str());
    let approvers = verdict["approvers"].as_array().unwrap();
    let named: Vec<(&str, &str)> = approvers
        .iter()
        .map(|a| (a["sub"].as_str().unwrap(), a["rationale"].as_str().unwrap()))
        .collect();
    assert_eq!(
        named,
        [
            ("User:carol", "customer verified"),
            ("User:alice", "amount matches the invoice")
        ]
    );
    assert!(approvers.iter().all(|a| a["at"].as_u64().is_some()));

    // The trail: an answer record per approver, and the allow that used it naming both.
    let trail = records(&app, dir.path()).await;
    let answers: Vec<(String, u8)> = trail
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::ApprovalGranted(a) if a.approval_id == id => {
                Some((a.approver.clone(), a.approvals_needed))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [("User:carol".to_owned(), 1), ("User:alice".to_owned(), 0)]
    );
    let used = trail
        .iter()
        .find_map(|r| match &r.event {
            AuditEvent::Decision(d) if r.id == allowed.decision_id => d.approval.clone(),
            _ => None,
        })
        .expect("the allow is audited with its approval");
    let who: Vec<(&str, &str)> = used
        .approvers
        .iter()
        .map(|a| (a.approver.as_str(), a.rationale.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            ("User:carol", "customer verified"),
            ("User:alice", "amount matches the invoice")
        ]
    );
}

#[tokio::test]
async fn the_principal_never_approves_its_own_request_and_anyone_else_may_reject_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn(dir.path()).await;
    // Bob's refund of 750 needs one approver; bob is the principal.
    let id = ask(&mut app, 750, "").await.approval.unwrap().approval_id;
    let own = approve(&mut app, BOB, &id, "trust me").await.unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied);
    assert_eq!(reason(&own), "SELF_APPROVAL");
    assert!(own.message().contains("User:bob"), "{}", own.message());
    let still = ask(&mut app, 750, &id).await;
    assert_eq!(still.decision(), Decision::ApprovalRequired);

    // One approver needed: ops, with no directory identity, approves as before.
    let approved = approve(&mut app, OPS, &id, "checked").await.unwrap();
    assert_eq!(approved.status(), ApprovalStatus::Approved);
    assert_eq!(approved.decided_by, "ops");
    assert_eq!(
        (approved.approvals_required, approved.approvals_needed),
        (1, 0)
    );

    // Of two, one approval then a rejection by another: rejected.
    let big = ask(&mut app, 7000, "").await.approval.unwrap().approval_id;
    approve(&mut app, CAROL, &big, "looks fine").await.unwrap();
    let rejected = app
        .governance
        .reject(with_token(
            ALICE,
            pb::DecideApprovalRequest {
                approval_id: big.clone(),
                rationale: "duplicate refund".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.status(), ApprovalStatus::Rejected);
    assert_eq!(rejected.approvers.len(), 2);
    assert!(!rejected.approvers[1].approved);
    let denied = ask(&mut app, 7000, &big).await;
    assert_eq!(denied.decision(), Decision::Deny);
    assert_eq!(
        denied.denial.unwrap().code(),
        pb::DenialCode::ApprovalRejected
    );
}

#[tokio::test]
async fn two_approvers_answering_at_once_through_redis_are_both_kept() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_with_redis(dir.path(), Some(redis.url())).await;
    // Each round races two compare-and-sets on one record: one of them must read again and
    // apply its answer on top of the other's, never over it.
    for round in 0..8 {
        let id = ask(&mut app, 6000 + round, "")
            .await
            .approval
            .unwrap()
            .approval_id;
        let (mut first, mut second) = (app.governance.clone(), app.governance.clone());
        let answer = |token: &str| {
            with_token(
                token,
                pb::DecideApprovalRequest {
                    approval_id: id.clone(),
                    rationale: format!("round {round}"),
                },
            )
        };
        let (carol, alice) =
            tokio::join!(first.approve(answer(CAROL)), second.approve(answer(ALICE)));
        carol.unwrap();
        alice.unwrap();
        let stands = app
            .governance
            .get_approval(with_token(
                OPS,
                pb::GetApprovalRequest {
                    approval_id: id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stands.status(), ApprovalStatus::Approved, "round {round}");
        let mut who: Vec<&str> = stands
            .approvers
            .iter()
            .map(|a| a.approver.as_str())
            .collect();
        who.sort_unstable();
        assert_eq!(who, ["User:alice", "User:carol"], "round {round}");
        let allowed = ask(&mut app, 6000 + round, &id).await;
        assert_eq!(allowed.decision(), Decision::Allow, "round {round}");
    }
}
