//! Workload identities as callers: a client certificate's SPIFFE ID is the caller, through
//! every door; a gateway known by its certificate asserts first hops; an admin known by its
//! certificate needs no token.

use baton::delegation::trust::Gateways;
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::policy_admin_client::PolicyAdminClient;
use baton::pb::{self, Decision};
use baton::tls::ClientAuth;
use baton::tls::pki::Subject;
use baton::transport::AdminTokens;
use baton::workload::{KnownCertificates, WorkloadIdentities};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::clients::{connect, first_hop, https};
use crate::listeners::{listener, start_tls};
use crate::pki::{Files, Pki};
use crate::spawn::{Running, server_dir};

pub const EDGE: &str = "spiffe://corp.example/gateway/edge";

const ENVOY_ROUTES: &str = r#"
[[envoy.identities]]
pattern = "spiffe://corp.example/agent/{id}"
kind = "Agent"

[[envoy.routes]]
host = "analyst.corp.example"
path_prefix = "/reports"
callee = "Agent:data-analyst"
scopes = ["reports.generate"]
"#;

pub fn agent(pki: &Pki, id: &str) -> Files {
    pki.issue(
        id,
        &Subject::spiffe(&format!("spiffe://corp.example/agent/{id}")),
    )
}

/// A Baton requiring client certificates on every port, mapping
/// `spiffe://corp.example/agent/{id}` to `Agent:{id}`, with the edge gateway known by its
/// certificate and `ops` an admin by hers.
pub async fn start_mtls(pki: &Pki, dir: &tempfile::TempDir) -> Running {
    start_mtls_with(pki, dir, |_| {}).await
}

/// [`start_mtls`], then `adjust`ed.
pub async fn start_mtls_with(
    pki: &Pki,
    dir: &tempfile::TempDir,
    adjust: impl FnOnce(&mut baton::app::Config),
) -> Running {
    let server = pki.server("baton");
    let tls = listener(&server).with_clients(pki.ca_file(), ClientAuth::Required);
    let admin_tls = tls.clone();
    start_tls(dir, tls, move |config| {
        config.delegation.workloads = WorkloadIdentities::parse(&[
            "spiffe://corp.example/agent/{id}=Agent:{id}",
            "spiffe://corp.example/svc/{id}=Service:{id}",
        ])
        .unwrap();
        config.delegation.gateways = Gateways::default()
            .with_certificates(KnownCertificates::parse(&[format!("edge={EDGE}")]).unwrap());
        config.tls.admin = Some(admin_tls);
        config.gateway_mapping = baton::mapping::GatewayMapping::parse(ENVOY_ROUTES).unwrap();
        config.admin_tokens = Some(AdminTokens::certificates_only(
            KnownCertificates::parse(&["ops=spiffe://corp.example/admin/ops"]).unwrap(),
        ));
        adjust(config);
    })
    .await
}

/// The `ErrorInfo` reason of a refusal.
pub fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// A decision client presenting `who`'s certificate.
pub async fn client(
    app: &Running,
    pki: &Pki,
    who: &Files,
) -> DecisionServiceClient<tonic::transport::Channel> {
    DecisionServiceClient::new(
        connect(app.decision_addr, &pki.ca_file(), Some(who))
            .await
            .unwrap(),
    )
}

/// The next hop, to the analyst, presenting `token`, naming `caller` when given.
pub fn next_hop(token: &str, caller: Option<&str>) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: caller.map(|id| pb::EntityRef {
            r#type: "Agent".into(),
            id: id.into(),
        }),
        callee: Some(pb::EntityRef {
            r#type: "Agent".into(),
            id: "data-analyst".into(),
        }),
        scopes: vec!["reports.generate".into()],
        subject_token: token.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_gateway_certificate_asserts_a_first_hop_and_nobody_else_does() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let answer = client(&app, &pki, &edge)
        .await
        .authorize(first_hop())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().decision, Decision::Allow as i32);
    // Loopback is no gateway once gateways are known by certificate, and a workload is none.
    let assistant = agent(&pki, "user-assistant");
    let refused = client(&app, &pki, &assistant)
        .await
        .authorize(first_hop())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "CALLER_NOT_AUTHENTICATED");
}

#[tokio::test]
async fn a_caller_whose_certificate_names_another_agent_is_refused() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let first = client(&app, &pki, &edge)
        .await
        .authorize(first_hop())
        .await
        .unwrap()
        .into_inner();
    let verdict = first.verdict;
    assert!(!verdict.is_empty());

    // The holder, known by its certificate, presents its verdict: answered.
    let assistant = agent(&pki, "user-assistant");
    let answer = client(&app, &pki, &assistant)
        .await
        .authorize(next_hop(&verdict, Some("user-assistant")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.decision, Decision::Allow as i32);

    // Another agent presenting the same verdict, naming the holder as caller or leaving the
    // caller to the token: refused, whatever the request says.
    let analyst = agent(&pki, "data-analyst");
    let mut stolen = client(&app, &pki, &analyst).await;
    let refused = stolen
        .authorize(next_hop(&verdict, Some("user-assistant")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "CALLER_NOT_AUTHENTICATED");
    let refused = stolen
        .exchange(pb::ExchangeRequest {
            subject_token: verdict.clone(),
            scope: "reports.generate".into(),
            resource: "Agent:data-analyst".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), "CALLER_NOT_AUTHENTICATED");
}

#[tokio::test]
async fn the_authzen_door_holds_the_subject_to_the_certificate() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let evaluation = |subject: &str, resource: &str, baton: serde_json::Value| {
        let (kind, id) = subject.split_once(':').unwrap();
        let (rkind, rid) = resource.split_once(':').unwrap();
        json!({
            "subject": { "type": kind, "id": id },
            "action": { "name": "reports.generate" },
            "resource": { "type": rkind, "id": rid },
            "context": { "baton": baton },
        })
    };
    let post = |body: serde_json::Value, who: &'static str| {
        let pki = &pki;
        let edge = &edge;
        let addr = app.http_addr;
        async move {
            let files = match who {
                "edge" => Files {
                    cert: edge.cert.clone(),
                    key: edge.key.clone(),
                    issued: edge.issued.clone(),
                },
                id => agent(pki, id),
            };
            let (status, text) = https(
                addr,
                "POST",
                "/access/v1/evaluation",
                Some(&body),
                &pki.ca.cert_pem,
                Some(&files),
            )
            .await
            .unwrap();
            (
                status,
                serde_json::from_str::<serde_json::Value>(&text).unwrap_or(json!(text)),
            )
        }
    };
    let (status, first) = post(
        evaluation("User:alice", "Agent:user-assistant", json!({})),
        "edge",
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["decision"], true, "{first}");
    let token = first["context"]["verdict"].clone();
    let hop = evaluation(
        "Agent:user-assistant",
        "Agent:data-analyst",
        json!({ "subject_token": token }),
    );
    let (_, stolen) = post(hop.clone(), "data-analyst").await;
    assert_eq!(stolen["decision"], false, "{stolen}");
    assert!(
        stolen.to_string().contains("CALLER_NOT_AUTHENTICATED"),
        "{stolen}"
    );
    let (_, held) = post(hop, "user-assistant").await;
    assert_eq!(held["decision"], true, "{held}");
}

#[tokio::test]
async fn an_admin_is_known_by_her_certificate() {
    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let admin_addr = app.admin_addr.unwrap();
    let ops = pki.issue("ops", &Subject::spiffe("spiffe://corp.example/admin/ops"));
    let channel = connect(admin_addr, &pki.ca_file(), Some(&ops))
        .await
        .unwrap();
    PolicyAdminClient::new(channel)
        .list_bundles(pb::ListBundlesRequest::default())
        .await
        .unwrap();
    let assistant = agent(&pki, "user-assistant");
    let channel = connect(admin_addr, &pki.ca_file(), Some(&assistant))
        .await
        .unwrap();
    let refused = PolicyAdminClient::new(channel)
        .list_bundles(pb::ListBundlesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

/// Envoy's door: the caller is the peer Envoy names in `source.principal`; a workload asking
/// for itself with its own certificate cannot name another, Envoy known by its certificate can.
#[tokio::test]
async fn the_envoy_door_holds_the_named_peer_to_the_certificate() {
    use envoy_types::ext_authz::v3::pb::CheckRequest;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Peer, Request as AttrRequest,
    };
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;

    let pki = Pki::new();
    let dir = server_dir();
    let app = start_mtls(&pki, &dir).await;
    let edge = pki.issue("edge", &Subject::spiffe(EDGE));
    let verdict = client(&app, &pki, &edge)
        .await
        .authorize(first_hop())
        .await
        .unwrap()
        .into_inner()
        .verdict;
    let check = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                principal: "spiffe://corp.example/agent/user-assistant".into(),
                ..Peer::default()
            }),
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/reports/q4".into(),
                    host: "analyst.corp.example".into(),
                    headers: [
                        (":authority".to_owned(), "analyst.corp.example".to_owned()),
                        (":method".to_owned(), "GET".to_owned()),
                        (":path".to_owned(), "/reports/q4".to_owned()),
                        ("authorization".to_owned(), format!("Bearer {verdict}")),
                    ]
                    .into_iter()
                    .collect(),
                    ..HttpRequest::default()
                }),
                ..AttrRequest::default()
            }),
            ..AttributeContext::default()
        }),
    };
    let ca = pki.ca_file();
    let ask = async |who: &Files| {
        let channel = connect(app.decision_addr, &ca, Some(who)).await.unwrap();
        AuthorizationClient::new(channel)
            .check(check.clone())
            .await
            .unwrap()
            .into_inner()
    };
    let analyst = agent(&pki, "data-analyst");
    let refused = ask(&analyst).await;
    assert_ne!(refused.status.as_ref().unwrap().code, 0, "{refused:?}");
    assert!(
        format!("{refused:?}").contains("CALLER_NOT_AUTHENTICATED"),
        "{refused:?}"
    );
    let through_envoy = ask(&edge).await;
    assert_eq!(
        through_envoy.status.as_ref().unwrap().code,
        0,
        "{through_envoy:?}"
    );
}
