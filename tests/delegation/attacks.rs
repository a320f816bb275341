//! Attacks on a delegation chain. Each must fail closed: an error with its own reason and a
//! message that says what was wrong, or a narrower grant, never a wider one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton::decision::DecisionSettings;
use baton::delegation::trust::Gateways;
use baton::minter::Minter;
use baton::pb::{Decision, DenialCode, RefusalReason, ScopeCeiling};
use baton::token::{ACCESS_TOKEN_TYP, SigningKey, VERDICT_TYP, VerdictClaims};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::*;

/// Hop 2 of scenario 1 with `token` as the assistant's credential.
fn hop2(token: &str) -> baton::pb::AuthorizeRequest {
    next_hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        token,
        &["reports.generate"],
    )
}

#[tokio::test]
async fn a_flipped_signature_byte_is_refused() {
    let baton = spawn_baton().await;
    let (hop1, token) = assistant_token(&baton).await;
    // The minter's access token and Baton's own verdict alike.
    for forged in [
        flip_signature_byte(&token),
        flip_signature_byte(&hop1.verdict),
    ] {
        let message = assert_refused(
            baton.try_authorize(hop2(&forged)).await,
            Code::Unauthenticated,
            "SIGNATURE_INVALID",
        );
        assert!(message.contains("signature does not verify"), "{message}");
    }
    // The untouched token still works: the refusals were about the flipped byte alone.
    assert_allowed(&baton.authorize(hop2(&token)).await);
}

#[tokio::test]
async fn a_payload_changed_after_signing_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let widened = patched(&token, json!({"scope": "reports.generate finance.write"}));
    assert_refused(
        baton.try_authorize(hop2(&splice(&token, &widened))).await,
        Code::Unauthenticated,
        "SIGNATURE_INVALID",
    );
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let attacker = SigningKey::generate();
    let claims = segment(&token, 1);

    // Its own kid: no trusted key has it.
    let message = assert_refused(
        baton
            .try_authorize(hop2(&sign(&attacker, ACCESS_TOKEN_TYP, &claims)))
            .await,
        Code::Unauthenticated,
        "UNKNOWN_KEY",
    );
    assert!(message.contains(attacker.kid()), "{message}");

    // The trusted minter's kid: the signature is then checked against the minter's key.
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": baton.minter_key.kid()});
    let signature = attacker
        .sign(signing_input(&header, &claims).as_bytes())
        .unwrap();
    assert_refused(
        baton
            .try_authorize(hop2(&assemble(&header, &claims, &signature)))
            .await,
        Code::Unauthenticated,
        "SIGNATURE_INVALID",
    );

    // A header without any kid.
    let header = json!({"alg": "EdDSA", "typ": "at+jwt"});
    let signature = baton
        .minter_key
        .sign(signing_input(&header, &claims).as_bytes())
        .unwrap();
    let message = assert_refused(
        baton
            .try_authorize(hop2(&assemble(&header, &claims, &signature)))
            .await,
        Code::Unauthenticated,
        "UNKNOWN_KEY",
    );
    assert!(message.contains("no `kid`"), "{message}");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let claims = segment(&token, 1);
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": baton.minter_key.kid()});
        // An unsecured JWS (RFC 7515 §A.5) has an empty signature: not even well-formed here.
        let unsecured = format!("{}.", signing_input(&header, &claims));
        assert_refused(
            baton.try_authorize(hop2(&unsecured)).await,
            Code::Unauthenticated,
            "TOKEN_MALFORMED",
        );
        // With some signature, the algorithm itself is refused.
        let message = assert_refused(
            baton
                .try_authorize(hop2(&assemble(&header, &claims, &[0; 64])))
                .await,
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        );
        assert!(message.contains(&format!("`{alg}`")), "{message}");
    }
}

#[tokio::test]
async fn hs256_keyed_with_the_public_key_is_refused() {
    let baton = spawn_baton().await;
    let (hop1, token) = assistant_token(&baton).await;
    // The classic key confusion: an HMAC whose secret is the public key every verifier knows.
    for (original, key, typ) in [
        (&token, &baton.minter_key, "at+jwt"),
        (&hop1.verdict, &baton.signer, VERDICT_TYP),
    ] {
        let public = key.public().to_jwk();
        let secret = URL_SAFE_NO_PAD
            .decode(public["x"].as_str().unwrap())
            .unwrap();
        let claims = segment(original, 1);
        let header = json!({"alg": "HS256", "typ": typ, "kid": key.kid()});
        let mac = hmac_sha256(&secret, signing_input(&header, &claims).as_bytes());
        let message = assert_refused(
            baton
                .try_authorize(hop2(&assemble(&header, &claims, &mac)))
                .await,
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        );
        assert!(message.contains("`HS256`"), "{message}");
    }
}

#[tokio::test]
async fn a_wrong_token_type_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let claims = segment(&token, 1);
    // A plain JWT of the minter's is not an access token...
    let message = assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, "JWT", &claims)))
            .await,
        Code::Unauthenticated,
        "WRONG_TOKEN_TYPE",
    );
    assert!(message.contains("`JWT`"), "{message}");
    // ...and a minter cannot issue verdicts: those are Baton's word alone.
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, VERDICT_TYP, &claims)))
            .await,
        Code::Unauthenticated,
        "WRONG_TOKEN_TYPE",
    );
    // No `typ` at all.
    let header = json!({"alg": "EdDSA", "kid": baton.minter_key.kid()});
    let signature = baton
        .minter_key
        .sign(signing_input(&header, &claims).as_bytes())
        .unwrap();
    assert_refused(
        baton
            .try_authorize(hop2(&assemble(&header, &claims, &signature)))
            .await,
        Code::Unauthenticated,
        "WRONG_TOKEN_TYPE",
    );
}

#[tokio::test]
async fn an_expired_or_future_token_is_refused() {
    let baton = spawn_baton().await;
    let (hop1, token) = assistant_token(&baton).await;
    let now = now();
    let expired = patched(&token, json!({"iat": now - 4000, "exp": now - 3600}));
    let message = assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &expired)))
            .await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    assert!(message.contains("expired"), "{message}");

    // A verdict of Baton's own, signed by its key, past its two minutes.
    let old_verdict = patched(
        &hop1.verdict,
        json!({"iat": now - 600, "nbf": now - 600, "exp": now - 480}),
    );
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.signer, VERDICT_TYP, &old_verdict)))
            .await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );

    let future = patched(&token, json!({"nbf": now + 3600, "exp": now + 7200}));
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &future)))
            .await,
        Code::Unauthenticated,
        "TOKEN_NOT_YET_VALID",
    );

    // The token is current, but the grant it was minted from has ended.
    let ended = patched(&token, json!({"exp_max": now - 1}));
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &ended)))
            .await,
        Code::Unauthenticated,
        "GRANT_EXPIRED",
    );
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let attacker = SigningKey::generate();
    let evil = patched(&token, json!({"iss": "urn:evil-minter"}));
    let message = assert_refused(
        baton
            .try_authorize(hop2(&sign(&attacker, ACCESS_TOKEN_TYP, &evil)))
            .await,
        Code::Unauthenticated,
        "UNTRUSTED_ISSUER",
    );
    assert!(message.contains("`urn:evil-minter`"), "{message}");
    // The trusted minter's key does not make another issuer trusted...
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &evil)))
            .await,
        Code::Unauthenticated,
        "UNTRUSTED_ISSUER",
    );
    // ...nor may the minter speak as Baton.
    let as_baton = patched(&token, json!({"iss": "urn:baton"}));
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &as_baton)))
            .await,
        Code::Unauthenticated,
        "UNKNOWN_KEY",
    );
}

#[tokio::test]
async fn claims_without_a_ceiling_or_chain_are_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let no_scope = patched(&token, json!({"scope": null}));
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &no_scope)))
            .await,
        Code::Unauthenticated,
        "NO_SCOPE_CEILING",
    );
    let robot = patched(
        &token,
        json!({"act": {"sub": "user-assistant", "sub_kind": "robot"}}),
    );
    assert_refused(
        baton
            .try_authorize(hop2(&sign(&baton.minter_key, ACCESS_TOKEN_TYP, &robot)))
            .await,
        Code::Unauthenticated,
        "CLAIMS_INVALID",
    );
    assert_refused(
        baton.try_authorize(hop2("not.a.token")).await,
        Code::Unauthenticated,
        "TOKEN_MALFORMED",
    );
}

#[tokio::test]
async fn only_the_tokens_holder_may_present_it() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    // The analyst got hold of the assistant's token and calls the database agent with it.
    let stolen = next_hop(
        "Agent:data-analyst",
        "Agent:database-agent",
        &token,
        &["finance.read"],
    );
    let message = assert_refused(
        baton.try_authorize(stolen).await,
        Code::PermissionDenied,
        "CALLER_NOT_TOKEN_HOLDER",
    );
    assert!(
        message.contains("Agent data-analyst") && message.contains("Agent user-assistant"),
        "{message}"
    );
    // Nor may the principal itself present what it delegated.
    let by_alice = next_hop(
        "User:alice",
        "Agent:user-assistant",
        &token,
        &["reports.generate"],
    );
    assert_refused(
        baton.try_authorize(by_alice).await,
        Code::PermissionDenied,
        "CALLER_NOT_TOKEN_HOLDER",
    );
}

#[tokio::test]
async fn a_swapped_principal_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let mut request = hop2(&token);
    request.principal = Some(entity("User:dave"));
    let message = assert_refused(
        baton.try_authorize(request).await,
        Code::PermissionDenied,
        "PRINCIPAL_MISMATCH",
    );
    assert!(
        message.contains("User dave") && message.contains("User alice"),
        "{message}"
    );
}

#[tokio::test]
async fn a_truncated_or_reordered_chain_does_not_verify() {
    let baton = spawn_baton().await;
    let (_, token) = analyst_token(&baton).await;
    let attacker = SigningKey::generate();
    // Dropping the assistant: alice would seem to have called the analyst directly.
    let truncated = patched(
        &token,
        json!({"act": {"sub": "data-analyst", "sub_kind": "agent"}}),
    );
    // Swapping the two agents: the assistant would hold the token.
    let reordered = patched(
        &token,
        json!({"act": {"sub": "user-assistant", "sub_kind": "agent",
                       "act": {"sub": "data-analyst", "sub_kind": "agent"}}}),
    );
    for (claims, caller) in [
        (truncated, "Agent:data-analyst"),
        (reordered, "Agent:user-assistant"),
    ] {
        let request =
            |token: &str| next_hop(caller, "Agent:database-agent", token, &["finance.read"]);
        assert_refused(
            baton
                .try_authorize(request(&sign(&attacker, ACCESS_TOKEN_TYP, &claims)))
                .await,
            Code::Unauthenticated,
            "UNKNOWN_KEY",
        );
        assert_refused(
            baton.try_authorize(request(&splice(&token, &claims))).await,
            Code::Unauthenticated,
            "SIGNATURE_INVALID",
        );
    }
}

#[tokio::test]
async fn a_chain_asserted_beside_a_token_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;

    let mut with_chain = hop2(&token);
    with_chain.delegation_chain = vec![entity("Agent:reconciler")];
    let status = baton.try_authorize(with_chain).await.unwrap_err();
    assert_eq!(
        status.get_details_bad_request().unwrap().field_violations[0].field,
        "delegation_chain"
    );
    assert_refused(Err(status), Code::InvalidArgument, "CHAIN_BESIDE_TOKEN");

    let mut with_ceiling = hop2(&token);
    with_ceiling.ceiling = Some(ScopeCeiling {
        scopes: vec!["reports.generate".to_owned(), "finance.write".to_owned()],
    });
    assert_refused(
        baton.try_authorize(with_ceiling).await,
        Code::InvalidArgument,
        "CHAIN_BESIDE_TOKEN",
    );

    let mut other_txn = hop2(&token);
    other_txn.transaction_id = "another-transaction".to_owned();
    assert_refused(
        baton.try_authorize(other_txn).await,
        Code::InvalidArgument,
        "TRANSACTION_MISMATCH",
    );
}

#[tokio::test]
async fn a_later_hop_without_a_token_is_refused() {
    let baton = spawn_baton().await;
    // Even the loopback gateway may assert only a first hop: the analyst claims a chain.
    let asserted = baton::pb::AuthorizeRequest {
        caller: Some(entity("Agent:data-analyst")),
        callee: Some(entity("Agent:database-agent")),
        principal: Some(entity("User:alice")),
        delegation_chain: vec![entity("Agent:user-assistant")],
        scopes: vec!["finance.read".to_owned()],
        ..Default::default()
    };
    let message = assert_refused(
        baton.try_authorize(asserted.clone()).await,
        Code::PermissionDenied,
        "SUBJECT_TOKEN_REQUIRED",
    );
    assert!(message.contains("subject_token"), "{message}");
    // A ceiling alone also says that a hop came before.
    let ceiling_only = baton::pb::AuthorizeRequest {
        delegation_chain: Vec::new(),
        ceiling: Some(ScopeCeiling {
            scopes: vec!["finance.read".to_owned()],
        }),
        ..asserted
    };
    assert_refused(
        baton.try_authorize(ceiling_only).await,
        Code::PermissionDenied,
        "SUBJECT_TOKEN_REQUIRED",
    );
}

#[tokio::test]
async fn a_first_hop_needs_a_trusted_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateways");
    std::fs::write(&path, "edge 0123456789abcdef0123456789\n").unwrap();
    let baton = spawn_baton_with(Options {
        gateways: Some(Gateways::from_file(&path).unwrap()),
        ..Options::default()
    })
    .await;
    let request = first_hop("User:alice", "Agent:user-assistant", &["reports.generate"]);
    // Loopback is no longer enough once gateways authenticate with tokens.
    assert_refused(
        baton.try_authorize(request.clone()).await,
        Code::PermissionDenied,
        "SUBJECT_TOKEN_REQUIRED",
    );
    assert_refused(
        baton
            .try_authorize_as("0123456789abcdef0123456789x", request.clone())
            .await,
        Code::PermissionDenied,
        "SUBJECT_TOKEN_REQUIRED",
    );
    let response = baton
        .try_authorize_as("0123456789abcdef0123456789", request)
        .await
        .unwrap();
    assert_allowed(&response);
}

#[tokio::test]
async fn a_widened_scope_is_refused_above_the_ceiling() {
    let baton = spawn_baton().await;
    // Alice delegates reports only, though she could have delegated finance reads too.
    let (_, token) = baton
        .allow_and_mint(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    let widened = next_hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        &token,
        &["reports.generate", "finance.read"],
    );
    let response = baton.authorize(widened).await;
    assert_allowed(&response);
    assert_eq!(response.granted_scopes, ["reports.generate"]);
    assert_eq!(response.refused_scopes.len(), 1);
    assert_eq!(response.refused_scopes[0].scope, "finance.read");
    assert_eq!(
        response.refused_scopes[0].reason(),
        RefusalReason::AboveCeiling
    );
    assert_eq!(
        claims::<VerdictClaims>(&response.verdict).scope,
        "reports.generate"
    );

    // Asking only for what was not delegated is a DENY, and a DENY is never mintable.
    let only_wider = next_hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        &token,
        &["finance.read"],
    );
    let response = baton.authorize(only_wider).await;
    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(
        response.refused_scopes[0].reason(),
        RefusalReason::AboveCeiling
    );
    assert!(response.verdict.is_empty());
}

#[tokio::test]
async fn a_stretched_lifetime_is_capped_by_the_upstream_grant() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    // The minter granted a minute only, though its token claims to live an hour; the analyst
    // policy's own TTL is 900 s.
    let now = now();
    let short = patched(&token, json!({"exp": now + 3600, "exp_max": now + 60}));
    let token = sign(&baton.minter_key, ACCESS_TOKEN_TYP, &short);
    let response = baton.authorize(hop2(&token)).await;
    assert_allowed(&response);
    assert!(expires_at(&response) <= now + 60, "{response:#?}");
    assert!(response.ttl_seconds <= 60);
    let verdict: VerdictClaims = claims(&response.verdict);
    assert!(verdict.exp_max <= now + 60);
    assert!(verdict.exp <= now + 60);
    // What is minted from it ends with the grant, too.
    let minted = baton.minter.mint(&response.verdict, now).await.unwrap();
    assert!(minted.claims.exp <= now + 60);
    assert_eq!(minted.claims.exp_max, verdict.exp_max);
}

#[tokio::test]
async fn a_chain_deeper_than_the_maximum_is_denied() {
    // The shipped bundle's own cases go four hops deep: they are not for this setting.
    let dir = tempfile::tempdir().unwrap();
    let baton = spawn_baton_with(Options {
        settings: DecisionSettings {
            max_depth: 2,
            ..DecisionSettings::default()
        },
        bundle: Some(shipped_without_tests(dir.path())),
        ..Options::default()
    })
    .await;
    let (hop2, token) = analyst_token(&baton).await;
    assert_eq!(hop2.chain.len(), 3, "two hops are within the limit");
    let response = baton
        .authorize(next_hop(
            "Agent:data-analyst",
            "Agent:database-agent",
            &token,
            &["finance.read"],
        ))
        .await;
    assert_eq!(response.decision(), Decision::Deny);
    let denial = response.denial.as_ref().unwrap();
    assert_eq!(denial.code(), DenialCode::ChainTooDeep);
    assert!(denial.detail.contains("3 hops"), "{}", denial.detail);
    assert!(response.verdict.is_empty());
    assert_eq!(chain_of(&response).len(), 4);
}

#[tokio::test]
async fn header_tricks_are_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let claims = segment(&token, 1);
    let key = &baton.minter_key;
    let signed = |header: &serde_json::Value| {
        let signature = key.sign(signing_input(header, &claims).as_bytes()).unwrap();
        assemble(header, &claims, &signature)
    };
    // An extension the verifier is told it must understand (RFC 7515 §4.1.11).
    let crit =
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid(), "crit": ["b64"], "b64": false});
    assert_refused(
        baton.try_authorize(hop2(&signed(&crit))).await,
        Code::Unauthenticated,
        "CRITICAL_HEADER_UNSUPPORTED",
    );
    // Two `alg` members: two parsers could read two different headers.
    let header = format!(
        r#"{{"alg":"EdDSA","alg":"none","typ":"at+jwt","kid":"{}"}}"#,
        key.kid()
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let duplicate = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).unwrap())
    );
    assert_refused(
        baton.try_authorize(hop2(&duplicate)).await,
        Code::Unauthenticated,
        "TOKEN_MALFORMED",
    );
    // A token padded far beyond any real chain is refused before it is decoded.
    let padded = patched(&token, json!({"padding": "x".repeat(10_000)}));
    assert_refused(
        baton.try_authorize(hop2(&splice(&token, &padded))).await,
        Code::Unauthenticated,
        "TOKEN_TOO_LARGE",
    );
    // The fully specified name of the same algorithm (RFC 9864) is the one other accepted.
    let ed25519 = json!({"alg": "Ed25519", "typ": "at+jwt", "kid": key.kid()});
    assert_allowed(&baton.authorize(hop2(&signed(&ed25519))).await);
}

#[tokio::test]
async fn a_token_cannot_lead_back_into_its_own_chain() {
    let baton = spawn_baton().await;
    let (_, token) = analyst_token(&baton).await;
    let response = baton
        .authorize(next_hop(
            "Agent:data-analyst",
            "Agent:user-assistant",
            &token,
            &["reports.generate"],
        ))
        .await;
    assert_eq!(response.decision(), Decision::Deny);
    assert_eq!(
        response.denial.as_ref().unwrap().code(),
        DenialCode::ChainCycle
    );
    assert!(response.verdict.is_empty());
}

#[tokio::test]
async fn a_batch_refuses_a_forged_item_alone() {
    use baton::pb::batch_authorize_result::Result as Item;
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let batch = baton::pb::BatchAuthorizeRequest {
        requests: vec![hop2(&token), hop2(&flip_signature_byte(&token))],
    };
    let results = baton
        .client
        .clone()
        .batch_authorize(batch)
        .await
        .unwrap()
        .into_inner()
        .results;
    match &results[0].result {
        Some(Item::Response(response)) => assert_allowed(response),
        other => panic!("expected a decision, got {other:?}"),
    }
    match &results[1].result {
        Some(Item::Error(error)) => {
            assert_eq!(error.code, "UNAUTHENTICATED");
            assert!(
                error.message.starts_with("SIGNATURE_INVALID: "),
                "{}",
                error.message
            );
        }
        other => panic!("expected an item error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_principal_set_but_empty_beside_a_token_is_invalid() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    let mut request = hop2(&token);
    // Presence decides, as for every message field: a principal sent is checked as given.
    request.principal = Some(baton::pb::EntityRef::default());
    let status = baton.try_authorize(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["principal.type", "principal.id"]);
}

/// The monitoring service's first hop, signed by Baton, then rewritten so that its `act`
/// chain repeats the subject: monitoring → diagnostics → monitoring, held by monitoring. Baton
/// would issue exactly this shape for a chain that comes back to its principal.
async fn token_held_by_its_own_principal(baton: &Baton, trusted_issuer: bool) -> String {
    let (hop1, token) = baton
        .allow_and_mint(first_hop(
            "Service:monitoring",
            "Agent:diagnostics",
            &["diagnostics.run"],
        ))
        .await;
    let act = json!({
        "sub": "monitoring", "sub_kind": "service",
        "act": {"sub": "diagnostics", "sub_kind": "agent"},
    });
    if trusted_issuer {
        sign(
            &baton.minter_key,
            ACCESS_TOKEN_TYP,
            &patched(&token, json!({ "act": act })),
        )
    } else {
        sign(
            &baton.signer,
            VERDICT_TYP,
            &patched(&hop1.verdict, json!({ "act": act })),
        )
    }
}

fn monitoring_again(token: &str) -> baton::pb::AuthorizeRequest {
    next_hop(
        "Service:monitoring",
        "Agent:diagnostics",
        token,
        &["diagnostics.run"],
    )
}

const COMING_BACK: [&str; 4] = [
    "Service:monitoring",
    "Agent:diagnostics",
    "Service:monitoring",
    "Agent:diagnostics",
];

#[tokio::test]
async fn a_chain_is_not_shortened_when_its_principal_holds_the_token() {
    for trusted_issuer in [false, true] {
        // Cycles refused (the default): the repeat is seen.
        let baton = spawn_baton().await;
        let token = token_held_by_its_own_principal(&baton, trusted_issuer).await;
        let response = baton.authorize(monitoring_again(&token)).await;
        assert_eq!(chain_of(&response), COMING_BACK, "{response:#?}");
        assert_eq!(response.decision(), Decision::Deny);
        assert_eq!(
            response.denial.as_ref().unwrap().code(),
            DenialCode::ChainCycle
        );

        // Cycles allowed: every earlier hop still counts towards the depth.
        let dir = tempfile::tempdir().unwrap();
        let baton = spawn_baton_with(Options {
            settings: DecisionSettings {
                allow_cycles: true,
                max_depth: 2,
                ..DecisionSettings::default()
            },
            bundle: Some(shipped_without_tests(dir.path())),
            ..Options::default()
        })
        .await;
        let token = token_held_by_its_own_principal(&baton, trusted_issuer).await;
        let response = baton.authorize(monitoring_again(&token)).await;
        assert_eq!(chain_of(&response), COMING_BACK, "{response:#?}");
        assert_eq!(
            response.denial.as_ref().unwrap().code(),
            DenialCode::ChainTooDeep
        );

        // Deep enough: the hop is delegated (monitoring acts through diagnostics), which the
        // monitoring policy does not allow.
        let baton = spawn_baton_with(Options {
            settings: DecisionSettings {
                allow_cycles: true,
                ..DecisionSettings::default()
            },
            ..Options::default()
        })
        .await;
        let token = token_held_by_its_own_principal(&baton, trusted_issuer).await;
        let response = baton.authorize(monitoring_again(&token)).await;
        assert_eq!(chain_of(&response), COMING_BACK, "{response:#?}");
        assert_eq!(
            response.denial.as_ref().unwrap().code(),
            DenialCode::ConnectionNotAllowed
        );
    }
}

#[tokio::test]
async fn a_subject_token_with_an_exp_max_beyond_any_clock_is_refused() {
    let baton = spawn_baton().await;
    let (_, token) = assistant_token(&baton).await;
    for exp_max in [json!(9_223_372_036_854_775_808u64), json!(u64::MAX)] {
        let forged = sign(
            &baton.minter_key,
            ACCESS_TOKEN_TYP,
            &patched(&token, json!({ "exp_max": exp_max })),
        );
        let message = assert_refused(
            baton.try_authorize(hop2(&forged)).await,
            Code::Unauthenticated,
            "CLAIMS_INVALID",
        );
        assert!(message.contains("exp_max"), "{message}");
    }
    let far_exp = sign(
        &baton.minter_key,
        ACCESS_TOKEN_TYP,
        &patched(&token, json!({ "exp": u64::MAX })),
    );
    assert_refused(
        baton.try_authorize(hop2(&far_exp)).await,
        Code::Unauthenticated,
        "CLAIMS_INVALID",
    );
    // The server is unharmed.
    assert_allowed(&baton.authorize(hop2(&token)).await);
}

#[tokio::test]
async fn obligations_are_not_shed_by_skipping_the_minter() {
    let baton = spawn_baton().await;
    let (hop1, _) = assistant_token(&baton).await;
    // A verdict Baton signed with an obligation no minter here understands.
    let obliged = sign(
        &baton.signer,
        VERDICT_TYP,
        &patched(&hop1.verdict, json!({"obligations": ["watermark"]})),
    );
    assert!(baton.minter.mint(&obliged, now()).await.is_err());

    // Presented straight to Baton, the obligation carries into the next grant...
    let response = baton.authorize(hop2(&obliged)).await;
    assert_allowed(&response);
    assert!(
        response.obligations.contains(&"watermark".to_owned()),
        "{response:#?}"
    );
    let next: VerdictClaims = claims(&response.verdict);
    assert!(next.obligations.contains(&"watermark".to_owned()));
    // ...so the minter still refuses what it cannot enforce.
    let refused = baton.minter.mint(&response.verdict, now()).await;
    assert_eq!(
        refused.err().map(|e| e.code()),
        Some("OBLIGATION_NOT_UNDERSTOOD")
    );

    // A minter that understands it meets it when it mints; the minted token carries none.
    let mut minter = Minter {
        issuer: MINTER_ISSUER.to_owned(),
        ..Minter::new(baton.minter_key.clone(), baton.minter.baton_keys.clone())
    };
    minter.understood.insert("watermark".to_owned());
    let minted = minter.mint(&obliged, now()).await.unwrap();
    let response = baton.authorize(hop2(&minted.token)).await;
    assert_allowed(&response);
    assert!(
        !response.obligations.contains(&"watermark".to_owned()),
        "{response:#?}"
    );
}
