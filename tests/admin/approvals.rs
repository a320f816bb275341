//! Where approvals are kept: without Redis in the store directory, so one asked for before a
//! restart is approved and used after it.

use baton::pb::{self, ApprovalStatus, Decision};

use crate::governance::refund;
use crate::helpers::{AdminApp, authed, spawn_admin_app_in};
use crate::spawn::server_dir;

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
