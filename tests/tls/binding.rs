//! Sender-constrained verdicts (RFC 8705 §3): a verdict for a callee known by its certificate
//! carries `cnf.x5t#S256`, and so does the token minted from it; at the next hop only a caller
//! presenting that certificate gets anything from it.

use base64::Engine as _;
use baton::pb::{self, Decision};
use baton::tls::pki::Subject;
use serde_json::Value;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::clients::first_hop;
use crate::pki::{Files, Pki};
use crate::spawn::{Running, server_dir};
use crate::workloads::{self, EDGE, agent, client, reason, start_mtls};

fn thumbprint(files: &Files) -> String {
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(&files.issued.cert_der))
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The edge gateway asks for alice's first hop to her assistant, binding the verdict to the
/// assistant's certificate when `bind` is given.
async fn bound_first_hop(app: &Running, pki: &Pki, bind: Option<&Files>) -> String {
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let request = pb::AuthorizeRequest {
        callee_x5t_s256: bind.map(thumbprint).unwrap_or_default(),
        ..first_hop()
    };
    let answer = client(app, pki, &edge)
        .await
        .authorize(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, Decision::Allow as i32);
    answer.verdict
}

/// The assistant's next hop, to the analyst, presenting `token`.
fn next_hop(token: &str) -> pb::AuthorizeRequest {
    workloads::next_hop(token, Some("user-assistant"))
}

#[tokio::test]
async fn a_bound_verdict_is_worthless_to_another_certificate() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let assistant = agent(&pki, "user-assistant");
    let verdict = bound_first_hop(&app, &pki, Some(&assistant)).await;
    assert_eq!(claims(&verdict)["cnf"]["x5t#S256"], thumbprint(&assistant));

    // Another certificate that the workload rules map to nothing (so the caller check has
    // nothing to say), presenting the stolen verdict as the assistant would.
    let thief = pki.issue(
        "thief",
        &Subject::spiffe("spiffe://elsewhere.example/thief"),
    );
    let refused = client(&app, &pki, &thief)
        .await
        .authorize(next_hop(&verdict))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "TOKEN_BINDING_MISMATCH");

    // Its holder, with its certificate: answered.
    let answer = client(&app, &pki, &assistant)
        .await
        .authorize(next_hop(&verdict))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, Decision::Allow as i32);
}

#[tokio::test]
async fn a_malformed_thumbprint_is_refused_naming_the_field() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let refused = client(&app, &pki, &edge)
        .await
        .authorize(pb::AuthorizeRequest {
            callee_x5t_s256: "not-a-thumbprint".into(),
            ..first_hop()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let fields = refused.get_details_bad_request().unwrap().field_violations;
    assert_eq!(fields[0].field, "callee_x5t_s256");
}

#[tokio::test]
async fn the_minted_token_keeps_the_binding() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let assistant = agent(&pki, "user-assistant");
    let verdict = bound_first_hop(&app, &pki, Some(&assistant)).await;
    let minter = baton::minter::Minter::new(
        baton::token::SigningKey::generate(),
        app.pipeline.delegation().keyring.published().clone(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minted = minter.mint(&verdict, now).await.unwrap();
    assert_eq!(
        claims(&minted.token)["cnf"]["x5t#S256"],
        thumbprint(&assistant)
    );
}

#[tokio::test]
async fn unbound_tokens_are_refused_when_bound_ones_are_required() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = crate::workloads::start_mtls_with(&pki, &dir, |config| {
        config.delegation.require_bound_tokens = true;
    })
    .await;
    let assistant = agent(&pki, "user-assistant");
    let unbound = bound_first_hop(&app, &pki, None).await;
    assert!(claims(&unbound).get("cnf").is_none());
    let refused = client(&app, &pki, &assistant)
        .await
        .authorize(next_hop(&unbound))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "BOUND_TOKEN_REQUIRED");
    let bound = bound_first_hop(&app, &pki, Some(&assistant)).await;
    let answer = client(&app, &pki, &assistant)
        .await
        .authorize(next_hop(&bound))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, Decision::Allow as i32);
}

/// AuthZEN binds through `context.baton.callee_x5t_s256`.
#[tokio::test]
async fn the_authzen_door_binds_too() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let assistant = agent(&pki, "user-assistant");
    let body = serde_json::json!({
        "subject": { "type": "User", "id": "alice" },
        "action": { "name": "reports.generate" },
        "resource": { "type": "Agent", "id": "user-assistant" },
        "context": { "baton": { "callee_x5t_s256": thumbprint(&assistant) } },
    });
    let (status, text) = crate::clients::https(
        app.http_addr,
        "POST",
        "/access/v1/evaluation",
        Some(&body),
        &pki.ca.cert_pem,
        Some(&edge),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let verdict = answer["context"]["verdict"].as_str().unwrap();
    assert_eq!(claims(verdict)["cnf"]["x5t#S256"], thumbprint(&assistant));
}
