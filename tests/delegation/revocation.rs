//! Revocation reaches every door and everything derived from what it names: a revoked agent,
//! principal, transaction or verdict denies Authorize, BatchAuthorize and Exchange alike, and
//! revoking a verdict revokes the tokens minted from it and every grant made further down.

use baton::pb::{self, Decision, DenialCode, ExchangeRequest, RefusalReason};
use baton::revocation::Target;
use serde_json::Value;
use std::sync::Arc;

use crate::helpers::*;

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Hop 2 of scenario 1: the assistant asks the analyst, presenting `token`.
fn hop2(token: &str) -> pb::AuthorizeRequest {
    next_hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        token,
        &["reports.generate"],
    )
}

/// Hop 3 of scenario 1: the analyst asks the database agent, presenting `token`.
fn hop3(token: &str) -> pb::AuthorizeRequest {
    next_hop(
        "Agent:data-analyst",
        "Agent:database-agent",
        token,
        &["reports.generate"],
    )
}

/// The same hop 2 through `Exchange`: the token's holder asks for a grant at the analyst.
fn exchange_hop2(token: &str) -> ExchangeRequest {
    ExchangeRequest {
        subject_token: token.to_owned(),
        subject_token_type: ACCESS_TOKEN_TYPE.to_owned(),
        scope: "reports.generate".to_owned(),
        resource: "Agent:data-analyst".to_owned(),
        ..Default::default()
    }
}

fn assert_revoked(response: &pb::AuthorizeResponse, door: &str) {
    assert_eq!(
        response.decision(),
        Decision::Deny,
        "{door}: expected DENY: {response:#?}"
    );
    assert_eq!(
        response.denial.as_ref().map(pb::Denial::code),
        Some(DenialCode::Revoked),
        "{door}: {response:#?}"
    );
    assert!(
        response
            .refused_scopes
            .iter()
            .all(|r| r.reason() == RefusalReason::Revoked),
        "{door}: {response:#?}"
    );
    assert!(
        response.verdict.is_empty(),
        "{door}: a deny carries no verdict"
    );
}

/// Asks hop 2 with `token` through every decision door and checks each answers REVOKED.
async fn assert_every_door_denies(baton: &Baton, token: &str, what: &str) {
    let authorized = baton.authorize(hop2(token)).await;
    assert_revoked(&authorized, &format!("Authorize after revoking {what}"));

    let batch = baton
        .client
        .clone()
        .batch_authorize(pb::BatchAuthorizeRequest {
            requests: vec![hop2(token)],
        })
        .await
        .expect("BatchAuthorize answers")
        .into_inner();
    match &batch.results[0].result {
        Some(pb::batch_authorize_result::Result::Response(r)) => {
            assert_revoked(r, &format!("BatchAuthorize after revoking {what}"));
        }
        other => panic!("BatchAuthorize after revoking {what}: {other:?}"),
    }

    let exchanged = baton
        .exchange(exchange_hop2(token))
        .await
        .unwrap_or_else(|status| panic!("Exchange after revoking {what}: {status:?}"));
    assert!(
        exchanged.issued_token.is_empty(),
        "Exchange after revoking {what} issued a token"
    );
    assert_revoked(
        exchanged
            .decision
            .as_ref()
            .expect("Exchange carries its decision"),
        &format!("Exchange after revoking {what}"),
    );
}

/// What to revoke, from the claims of the minted token and of the verdict it came from.
type TargetOf = fn(&Value, &Value) -> Target;

#[tokio::test]
async fn exchange_after_a_revocation_is_denied_like_authorize() {
    // One target of each kind the assistant's token touches, each on a fresh Baton.
    let targets: [(&str, TargetOf); 5] = [
        ("the agent", |_, _| Target::Agent("user-assistant".into())),
        ("the principal", |_, _| {
            Target::Principal(baton::identity::Identity::new(
                baton::identity::IdentityKind::User,
                "alice",
            ))
        }),
        ("the transaction", |token, _| {
            Target::Transaction(token["txn"].as_str().unwrap().into())
        }),
        ("the minted token", |token, _| {
            Target::Verdict(token["jti"].as_str().unwrap().into())
        }),
        ("the verdict it was minted from", |_, verdict| {
            Target::Verdict(verdict["jti"].as_str().unwrap().into())
        }),
    ];
    for (what, target) in targets {
        let baton = spawn_baton().await;
        let (hop1, token) = assistant_token(&baton).await;
        // Before: every door allows.
        assert_allowed(&baton.authorize(hop2(&token)).await);
        let exchanged = baton.exchange(exchange_hop2(&token)).await.unwrap();
        assert!(!exchanged.issued_token.is_empty());

        baton
            .revoke(target(&segment(&token, 1), &segment(&hop1.verdict, 1)))
            .await;
        assert_every_door_denies(&baton, &token, what).await;
    }
}

#[tokio::test]
async fn a_minted_token_names_the_verdict_it_came_from() {
    let baton = spawn_baton().await;
    let (hop1, token) = assistant_token(&baton).await;
    let minted = segment(&token, 1);
    assert_eq!(minted["verdict"], hop1.decision_id, "{minted}");
}

#[tokio::test]
async fn revoking_a_verdict_revokes_everything_derived_from_it() {
    let mut baton = spawn_baton().await;
    baton.minter.revocations = Some(Arc::clone(baton.pipeline.revocations()));
    // alice → assistant (V1, minted T1) → analyst (V2, minted T2).
    let (hop1, t1) = assistant_token(&baton).await;
    let v2 = baton.authorize(hop2(&t1)).await;
    assert_allowed(&v2);
    let t2 = baton.minter.mint(&v2.verdict, now()).await.unwrap().token;
    let lineage = segment(&v2.verdict, 1)["lineage"].clone();
    assert_eq!(
        lineage,
        serde_json::json!([hop1.decision_id]),
        "a verdict names the verdicts it derives from"
    );
    // Another grant of the same lineage, not redeemed yet.
    let unredeemed = baton.authorize(hop2(&t1)).await;
    assert_allowed(&unredeemed);

    baton
        .revoke(Target::Verdict(hop1.decision_id.clone()))
        .await;

    // The token minted from V1, at the next hop, through every door.
    assert_every_door_denies(&baton, &t1, "V1").await;
    // Everything further down: V2 presented as it is, and the token minted from it.
    assert_revoked(&baton.authorize(hop3(&v2.verdict)).await, "V2 at hop 3");
    assert_revoked(&baton.authorize(hop3(&t2)).await, "T2 at hop 3");
    // A minter that honours Baton's revocations mints nothing of that lineage.
    let refused = baton.minter.mint(&unredeemed.verdict, now()).await;
    assert_eq!(refused.err().map(|e| e.code()), Some("REVOKED"));
}
