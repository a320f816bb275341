//! Scenario 1 end to end: alice → user-assistant → data-analyst → database-agent, each hop
//! proving its chain with the access token a separate minter made from the previous verdict.

use std::collections::BTreeSet;

use baton::pb::RefusalReason;
use baton::token::{AccessTokenClaims, Actor, VerdictClaims};
use serde_json::Value;
use tonic::Code;

use crate::helpers::*;

/// The actors of an `act` claim, outermost (the current holder) first.
fn actors(act: &Actor) -> Vec<String> {
    let mut names = Vec::new();
    let mut next = Some(act);
    while let Some(actor) = next {
        names.push(format!("{}:{}", actor.sub_kind, actor.sub));
        next = actor.act.as_deref();
    }
    names
}

fn set(scopes: &[String]) -> BTreeSet<&str> {
    scopes.iter().map(String::as_str).collect()
}

/// What every verdict of the chain says, beside its own hop's details.
fn check_verdict(
    baton: &Baton,
    response: &baton::pb::AuthorizeResponse,
    expected_actors: &[&str],
) -> VerdictClaims {
    let header = segment(&response.verdict, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "baton-verdict+jwt");
    assert_eq!(header["kid"], baton.signer.kid());
    let verdict: VerdictClaims = claims(&response.verdict);
    assert_eq!(verdict.iss, "urn:baton");
    assert_eq!(verdict.aud, "urn:baton:minter");
    assert_eq!(
        (verdict.sub.as_str(), verdict.sub_kind.as_str()),
        ("alice", "user")
    );
    assert_eq!(actors(&verdict.act), expected_actors);
    assert_eq!(verdict.scope, response.granted_scopes.join(" "));
    assert_eq!(verdict.txn, response.transaction_id);
    assert_eq!(verdict.jti, response.decision_id);
    assert_eq!(verdict.exp_max, expires_at(response));
    assert_eq!(verdict.ttl, response.ttl_seconds);
    assert!(
        verdict.exp - verdict.iat <= 120,
        "a verdict lives two minutes at most"
    );
    assert!(verdict.exp <= verdict.exp_max);
    verdict
}

/// What every minted token says: the verdict's chain, for its callee, within its grant.
fn check_access_token(token: &str, verdict: &VerdictClaims, holder: &str) -> AccessTokenClaims {
    let header = segment(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let minted: AccessTokenClaims = claims(token);
    assert_eq!(minted.iss, MINTER_ISSUER);
    assert_eq!(minted.aud, holder);
    assert_eq!(minted.client_id, holder);
    assert_eq!(minted.sub, verdict.sub);
    assert_eq!(minted.sub_kind, verdict.sub_kind);
    assert_eq!(minted.act.as_ref(), Some(&verdict.act));
    assert_eq!(minted.scope, verdict.scope);
    assert_eq!(minted.txn, verdict.txn);
    assert_eq!(minted.exp_max, verdict.exp_max);
    assert!(minted.exp <= minted.exp_max);
    assert_ne!(minted.jti, verdict.jti, "a minted token has its own id");
    minted
}

#[tokio::test]
async fn an_employee_delegates_through_three_agents() {
    let baton = spawn_baton().await;

    // Hop 1: alice asks her assistant herself; the loopback gateway vouches for her.
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate", "finance.read", "finance.write"],
        ))
        .await;
    assert_allowed(&hop1);
    assert_eq!(chain_of(&hop1), ["User:alice", "Agent:user-assistant"]);
    assert_eq!(hop1.granted_scopes, ["reports.generate", "finance.read"]);
    assert_eq!(hop1.refused_scopes.len(), 1);
    assert_eq!(hop1.refused_scopes[0].scope, "finance.write");
    assert_eq!(
        hop1.refused_scopes[0].reason(),
        RefusalReason::NotPermittedForCaller
    );
    let verdict1 = check_verdict(&baton, &hop1, &["agent:user-assistant"]);
    let minted1 = baton
        .minter
        .mint(&hop1.verdict, now())
        .await
        .expect("the minter redeems hop 1's verdict");
    check_access_token(&minted1.token, &verdict1, "Agent:user-assistant");
    assert_eq!(minted1.claims, claims::<AccessTokenClaims>(&minted1.token));

    // Hop 2: the assistant asks the analyst with its token, and nothing else of the chain.
    let hop2 = baton
        .authorize(next_hop(
            "Agent:user-assistant",
            "Agent:data-analyst",
            &minted1.token,
            &["reports.generate", "finance.read"],
        ))
        .await;
    assert_allowed(&hop2);
    assert_eq!(
        chain_of(&hop2),
        ["User:alice", "Agent:user-assistant", "Agent:data-analyst"]
    );
    assert_eq!(hop2.granted_scopes, ["reports.generate", "finance.read"]);
    assert!(set(&hop2.granted_scopes).is_subset(&set(&hop1.granted_scopes)));
    assert!(expires_at(&hop2) <= expires_at(&hop1));
    assert_eq!(hop2.transaction_id, hop1.transaction_id);
    let verdict2 = check_verdict(
        &baton,
        &hop2,
        &["agent:data-analyst", "agent:user-assistant"],
    );

    // A separate program redeems hop 2's verdict, knowing only Baton's address and its own key.
    let output = baton.mint_with_binary(&hop2.verdict, &["--json"]).await;
    assert!(output.status.success(), "baton-minter: {}", stderr(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).expect("JSON output");
    let token2 = printed["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    assert_eq!(printed["token_type"], "Bearer");
    let minted2 = check_access_token(&token2, &verdict2, "Agent:data-analyst");
    assert_eq!(printed["claims"], serde_json::to_value(&minted2).unwrap());
    assert_eq!(segment(&token2, 0)["kid"], baton.minter_key.kid());

    // Hop 3: the analyst asks the database agent, which may only read.
    let hop3 = baton
        .authorize(next_hop(
            "Agent:data-analyst",
            "Agent:database-agent",
            &token2,
            &["finance.read", "reports.generate"],
        ))
        .await;
    assert_allowed(&hop3);
    assert_eq!(
        chain_of(&hop3),
        [
            "User:alice",
            "Agent:user-assistant",
            "Agent:data-analyst",
            "Agent:database-agent"
        ]
    );
    assert_eq!(hop3.granted_scopes, ["finance.read"]);
    assert_eq!(hop3.refused_scopes[0].scope, "reports.generate");
    assert!(set(&hop3.granted_scopes).is_subset(&set(&hop2.granted_scopes)));
    assert!(expires_at(&hop3) <= expires_at(&hop2));
    assert_eq!(hop3.transaction_id, hop1.transaction_id);
    let verdict3 = check_verdict(
        &baton,
        &hop3,
        &[
            "agent:database-agent",
            "agent:data-analyst",
            "agent:user-assistant",
        ],
    );
    let minted3 = baton
        .minter
        .mint(&hop3.verdict, now())
        .await
        .expect("the minter redeems hop 3's verdict");
    check_access_token(&minted3.token, &verdict3, "Agent:database-agent");

    // The policy TTLs narrow too: 3600 s, then 900 s, then 300 s.
    assert!(verdict1.ttl > verdict2.ttl && verdict2.ttl > verdict3.ttl);
    assert!(verdict3.exp_max <= verdict2.exp_max && verdict2.exp_max <= verdict1.exp_max);
}

#[tokio::test]
async fn the_verdict_itself_is_a_subject_token() {
    let baton = spawn_baton().await;
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop1);
    let hop2 = baton
        .authorize(next_hop(
            "Agent:user-assistant",
            "Agent:data-analyst",
            &hop1.verdict,
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop2);
    assert_eq!(
        chain_of(&hop2),
        ["User:alice", "Agent:user-assistant", "Agent:data-analyst"]
    );
    assert_eq!(hop2.transaction_id, hop1.transaction_id);
}

#[tokio::test]
async fn a_principal_may_be_named_when_it_is_the_tokens() {
    let baton = spawn_baton().await;
    let (_, token) = baton
        .allow_and_mint(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    let mut request = next_hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        &token,
        &["reports.generate"],
    );
    request.principal = Some(entity("User:alice"));
    assert_allowed(&baton.authorize(request).await);
}

#[tokio::test]
async fn a_chain_ends_at_a_tool_which_cannot_call_onwards() {
    let baton = spawn_baton().await;
    let scopes = ["db.read", "finance.read"];
    let (_, assistant) = baton
        .allow_and_mint(first_hop("User:alice", "Agent:user-assistant", &scopes))
        .await;
    let (_, analyst) = baton
        .allow_and_mint(next_hop(
            "Agent:user-assistant",
            "Agent:data-analyst",
            &assistant,
            &scopes,
        ))
        .await;
    let (_, database) = baton
        .allow_and_mint(next_hop(
            "Agent:data-analyst",
            "Agent:database-agent",
            &analyst,
            &scopes,
        ))
        .await;
    let (at_tool, tool_token) = baton
        .allow_and_mint(next_hop(
            "Agent:database-agent",
            "Tool:sql-query",
            &database,
            &["db.read"],
        ))
        .await;
    assert_eq!(
        chain_of(&at_tool),
        [
            "User:alice",
            "Agent:user-assistant",
            "Agent:data-analyst",
            "Agent:database-agent",
            "Tool:sql-query"
        ]
    );
    assert_eq!(at_tool.granted_scopes, ["db.read"]);
    // The token is for the tool: its holder, the outermost actor, is the tool.
    let claims = segment(&tool_token, 1);
    assert_eq!(claims["act"]["sub"], "sql-query");
    assert_eq!(claims["act"]["sub_kind"], "resource:Tool");
    assert_eq!(claims["client_id"], "Tool:sql-query");

    // A tool never calls onwards: not as a caller, and not by exchanging its token.
    let onwards = next_hop(
        "Tool:sql-query",
        "Agent:data-analyst",
        &tool_token,
        &["db.read"],
    );
    assert_eq!(
        baton.try_authorize(onwards).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let exchanged = baton
        .exchange(baton::pb::ExchangeRequest {
            subject_token: tool_token,
            scope: "db.read".into(),
            resource: "Agent:data-analyst".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(exchanged.code(), Code::InvalidArgument);
    assert!(exchanged.message().contains("caller"), "{exchanged:?}");
}
