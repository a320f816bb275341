use std::sync::Arc;

use super::*;
use crate::decision::DecisionRequest;
use crate::identity::{Identity, IdentityKind};

fn agent(id: &str) -> Identity {
    Identity::new(IdentityKind::Agent, id)
}

fn request() -> DecisionRequest {
    DecisionRequest {
        scopes: vec!["read".into()],
        delegation_chain: vec![agent("assistant")],
        transaction_id: Some("t-1".into()),
        ..DecisionRequest::new(
            agent("analyst"),
            agent("database"),
            Identity::new(IdentityKind::User, "alice"),
        )
    }
}

fn clock() -> Arc<dyn crate::clock::Clock> {
    Arc::new(crate::clock::SystemClock)
}

const JTI: Presented<'static> = Presented {
    token_id: Some("jti-1"),
    verdicts: &[],
};

fn revoked(target: Target, expires_at: Option<u64>) -> Revocation {
    Revocation {
        target,
        reason: "test".into(),
        revoked_by: "admin".into(),
        revoked_at: 100,
        expires_at,
    }
}

#[test]
fn any_agent_of_the_chain_the_principal_the_transaction_or_a_token_is_caught() {
    let hits = [
        Target::Agent("assistant".into()),
        Target::Agent("analyst".into()),
        Target::Agent("database".into()),
        Target::Principal(Identity::new(IdentityKind::User, "alice")),
        Target::Transaction("t-1".into()),
        Target::Verdict("jti-1".into()),
    ];
    for target in hits {
        let set = RevocationSet::new([revoked(target.clone(), None)]);
        let found = set.check(&request(), &JTI, 200);
        assert_eq!(found.map(|r| &r.target), Some(&target));
    }
    let misses = [
        Target::Agent("alice".into()),
        Target::Principal(agent("assistant")),
        Target::Transaction("t-2".into()),
        Target::Verdict("jti-2".into()),
    ];
    for target in misses {
        let set = RevocationSet::new([revoked(target.clone(), None)]);
        assert!(
            set.check(&request(), &JTI, 200).is_none(),
            "{target} caught"
        );
    }
}

#[test]
fn a_lapsed_revocation_is_not_in_force() {
    let set = RevocationSet::new([revoked(Target::Agent("analyst".into()), Some(150))]);
    assert!(set.check(&request(), &Presented::default(), 149).is_some());
    assert!(set.check(&request(), &Presented::default(), 150).is_none());
}

#[test]
fn a_revoked_verdict_upstream_of_the_token_is_caught() {
    let lineage = vec!["v-1".to_owned(), "v-2".to_owned()];
    let presented = Presented {
        token_id: Some("at-9"),
        verdicts: &lineage,
    };
    for id in ["v-1", "v-2", "at-9"] {
        let set = RevocationSet::new([revoked(Target::Verdict(id.into()), None)]);
        assert!(set.check(&request(), &presented, 200).is_some(), "{id}");
    }
    let set = RevocationSet::new([revoked(Target::Verdict("v-3".into()), None)]);
    assert!(set.check(&request(), &presented, 200).is_none());
}

#[test]
fn the_revoked_outcome_refuses_every_scope_and_names_the_revocation() {
    let r = revoked(Target::Agent("analyst".into()), None);
    let outcome = revoked_outcome(&request(), Vec::new(), &r, "v1");
    assert_eq!(outcome.effect, crate::decision::Effect::Deny);
    assert_eq!(outcome.refused.len(), 1);
    let denial = outcome.denial.unwrap();
    assert_eq!(denial.code, crate::decision::DenialCode::Revoked);
    assert!(denial.detail.contains("agent analyst"), "{}", denial.detail);
}

#[tokio::test]
async fn revocations_survive_a_restart_through_the_file_and_lifting_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("revocations.json");
    let first = Revocations::open(Some(path.clone()), clock()).unwrap();
    let target = Target::Transaction("t-1".into());
    first.revoke(revoked(target.clone(), None)).await.unwrap();
    first
        .revoke(revoked(Target::Agent("gone".into()), Some(1)))
        .await
        .unwrap();

    let again = Revocations::open(Some(path.clone()), clock()).unwrap();
    assert!(again.snapshot().get(&target, 200).is_some());
    assert_eq!(
        again.snapshot().all().count(),
        1,
        "lapsed ones are not kept"
    );
    assert_eq!(
        again.lift(&target).await.unwrap().map(|r| r.target),
        Some(target.clone())
    );
    assert_eq!(again.lift(&target).await.unwrap(), None);
    let third = Revocations::open(Some(path), clock()).unwrap();
    assert!(third.snapshot().is_empty());
}
