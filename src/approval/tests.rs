use super::*;
use crate::decision::DenialCode;

fn pending(expires_at: u64) -> Approval {
    Approval {
        id: "a-1".into(),
        status: ApprovalStatus::Pending,
        request_hash: "h".into(),
        chain: Vec::new(),
        scopes: vec!["refunds.issue".into()],
        obligations: vec!["human_approval".into()],
        transaction_id: "t".into(),
        decision_id: "d".into(),
        requested_at: 100,
        expires_at,
        decided_by: None,
        decided_at: None,
        rationale: None,
        used_by_decision: None,
    }
}

fn code(gate: Gate) -> Option<DenialCode> {
    match gate {
        Gate::Closed(code, _) => Some(code),
        _ => None,
    }
}

#[test]
fn only_an_approved_unexpired_approval_for_the_same_request_opens() {
    let mut a = pending(200);
    assert_eq!(a.gate("h", 150), Gate::Pending);
    a.decide(true, "carol", "fine", 150).unwrap();
    assert_eq!(a.gate("h", 150), Gate::Open);
    assert_eq!(
        code(a.gate("other", 150)),
        Some(DenialCode::ApprovalMismatch)
    );
    assert_eq!(code(a.gate("h", 200)), Some(DenialCode::ApprovalExpired));
    a.status = ApprovalStatus::Used;
    assert_eq!(code(a.gate("h", 150)), Some(DenialCode::ApprovalUsed));
}

#[test]
fn a_decision_is_taken_once_and_only_before_expiry() {
    let mut a = pending(200);
    assert!(matches!(
        a.decide(true, "carol", "ok", 200),
        Err(ApprovalError::Expired)
    ));
    a.decide(false, "carol", "too much", 150).unwrap();
    assert_eq!(a.decided_by.as_deref(), Some("carol"));
    assert_eq!(code(a.gate("h", 150)), Some(DenialCode::ApprovalRejected));
    assert!(matches!(
        a.decide(true, "dave", "ok", 160),
        Err(ApprovalError::NotPending(ApprovalStatus::Rejected))
    ));
}

#[tokio::test]
async fn an_update_that_fails_changes_nothing() {
    let store = Approvals::in_memory();
    store.create(&pending(200), 100).await.unwrap();
    let refused = store
        .update("a-1", |a| a.decide(true, "carol", "late", 300))
        .await;
    assert!(matches!(refused, Err(ApprovalError::Expired)));
    assert_eq!(
        store.get("a-1").await.unwrap().status,
        ApprovalStatus::Pending
    );
    assert!(matches!(
        store.get("nope").await,
        Err(ApprovalError::NotFound)
    ));
}
