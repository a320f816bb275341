//! `Exchange`: a token service narrows what a subject token carries for one resource.

use baton::pb::{Decision, ExchangeRequest, ExchangeResponse, RefusalReason};
use baton::token::VerdictClaims;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const VERDICT_TOKEN_TYPE: &str = "urn:baton:params:oauth:token-type:verdict";

async fn exchange(
    baton: &Baton,
    request: ExchangeRequest,
) -> Result<ExchangeResponse, tonic::Status> {
    baton
        .client
        .clone()
        .exchange(request)
        .await
        .map(tonic::Response::into_inner)
}

fn narrowing(token: &str, scope: &str) -> ExchangeRequest {
    ExchangeRequest {
        subject_token: token.to_owned(),
        subject_token_type: ACCESS_TOKEN_TYPE.to_owned(),
        scope: scope.to_owned(),
        resource: "Agent:data-analyst".to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_minted_token_is_narrowed_for_a_resource() {
    let baton = spawn_baton().await;
    let (hop1, token) = assistant_token(&baton).await;
    let response = exchange(&baton, narrowing(&token, "finance.read"))
        .await
        .unwrap();
    assert_eq!(response.scope, "finance.read");
    assert_eq!(response.issued_token_type, VERDICT_TOKEN_TYPE);
    assert_eq!(response.token_type, "N_A");
    assert!(response.expires_in > 0 && response.expires_in <= 900);

    let decision = response.decision.as_ref().unwrap();
    assert_allowed(decision);
    assert_eq!(decision.verdict, response.issued_token);
    assert_eq!(
        chain_of(decision),
        ["User:alice", "Agent:user-assistant", "Agent:data-analyst"]
    );
    assert!(expires_at(decision) <= expires_at(&hop1));

    let verdict: VerdictClaims = claims(&response.issued_token);
    assert_eq!(verdict.scope, "finance.read");
    assert_eq!(verdict.sub, "alice");
    assert_eq!(verdict.act.sub, "data-analyst");
    assert_eq!(verdict.act.act.as_ref().unwrap().sub, "user-assistant");
    assert_eq!(verdict.txn, hop1.transaction_id);

    // The narrowed verdict is redeemed like any other, and carries the chain on.
    let minted = baton
        .minter
        .mint(&response.issued_token, now())
        .await
        .unwrap();
    assert_eq!(minted.claims.scope, "finance.read");
    let hop3 = baton
        .authorize(next_hop(
            "Agent:data-analyst",
            "Agent:database-agent",
            &minted.token,
            &["finance.read"],
        ))
        .await;
    assert_allowed(&hop3);
    assert_eq!(hop3.transaction_id, hop1.transaction_id);
}

#[tokio::test]
async fn an_exchange_never_widens_the_subject_token() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let mut request = narrowing(&token, "finance.read finance.write");
    // `audience` names the resource as well as `resource` does.
    request.audience = std::mem::take(&mut request.resource);
    let response = exchange(&baton, request).await.unwrap();
    assert_eq!(response.scope, "finance.read");
    let decision = response.decision.unwrap();
    assert_eq!(decision.refused_scopes[0].scope, "finance.write");
    assert_eq!(
        decision.refused_scopes[0].reason(),
        RefusalReason::AboveCeiling
    );

    // Nothing left to grant: a DENY, and no token.
    let response = exchange(&baton, narrowing(&token, "finance.write"))
        .await
        .unwrap();
    assert!(response.issued_token.is_empty());
    assert!(response.issued_token_type.is_empty());
    assert!(response.scope.is_empty());
    assert_eq!(response.decision.unwrap().decision(), Decision::Deny);
}

#[tokio::test]
async fn an_exchange_verifies_the_subject_token() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let status = exchange(
        &baton,
        narrowing(&flip_signature_byte(&token), "finance.read"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SIGNATURE_INVALID"
    );

    let mut no_resource = narrowing(&token, "finance.read");
    no_resource.resource = "data-analyst".to_owned();
    let status = exchange(&baton, no_resource).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}
