//! The Envoy door: `envoy.service.auth.v3.Authorization/Check` on the decision port, asked with
//! `CheckRequest`s built as Envoy sends them (HTTP attributes, lowercase headers, the peer's
//! SPIFFE ID in `source.principal`, per-route `context_extensions`).

use std::collections::HashMap;

use baton::delegation::trust::Gateways;
use baton::mapping::GatewayMapping;
use baton::revocation::Target;
use baton::transport::upstream_headers;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::google::protobuf::value::Kind;
use serde_json::Value;
use tonic::transport::Channel;

use crate::helpers::{Baton, Options, spawn_baton_with, stderr, stdout};

const ROUTES: &str = r#"
[[envoy.identities]]
pattern = "spiffe://corp.example/agent/{id}"
kind = "Agent"

[[envoy.routes]]
host = "assistant.corp.example"
callee = "Agent:user-assistant"
scopes = ["db.read"]

[[envoy.routes]]
host = "analyst.corp.example"
path_prefix = "/reports"
methods = ["GET"]
callee = "Agent:data-analyst"
scopes = ["reports.generate"]

[[envoy.routes]]
host = "analyst.corp.example"
path_prefix = "/db"
callee = "Agent:data-analyst"
scopes = ["db.read"]

[[envoy.routes]]
host = "database.corp.example"
callee = "Agent:database-agent"
scopes = ["db.read"]
"#;

/// The test mapping: headers trusted (from trusted gateways), `extra` settings of `[envoy]`.
pub fn mapping(extra: &str) -> GatewayMapping {
    GatewayMapping::parse(&format!("[envoy]\ntrust_headers = true\n{extra}\n{ROUTES}"))
        .expect("the test mapping is valid")
}

pub async fn spawn(extra: &str, gateways: Option<Gateways>) -> (Baton, Envoy) {
    let baton = spawn_baton_with(Options {
        mapping: Some(mapping(extra)),
        gateways,
        ..Options::default()
    })
    .await;
    let envoy = Envoy::connect(&baton).await;
    (baton, envoy)
}

/// Envoy's side of the door: it checks HTTP requests it is about to forward.
#[derive(Clone)]
pub struct Envoy {
    client: AuthorizationClient<Channel>,
    /// The gateway token Envoy presents to Baton (`grpc_service.initial_metadata`), if any.
    pub bearer: Option<String>,
}

/// An HTTP request as Envoy describes it to an external authorizer.
#[derive(Clone, Default)]
pub struct Http {
    pub method: &'static str,
    pub host: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub principal: String,
    pub extensions: Vec<(String, String)>,
}

impl Http {
    pub fn get(host: &str, path: &str) -> Self {
        Self {
            method: "GET",
            host: host.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    /// The peer is the agent `id`, by its SPIFFE ID.
    pub fn by_agent(mut self, id: &str) -> Self {
        self.principal = format!("spiffe://corp.example/agent/{id}");
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn extension(mut self, name: &str, value: &str) -> Self {
        self.extensions.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn check_request(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> = self.headers.iter().cloned().collect();
        headers.insert(":authority".to_owned(), self.host.clone());
        headers.insert(":method".to_owned(), self.method.to_owned());
        headers.insert(":path".to_owned(), self.path.clone());
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    principal: self.principal.clone(),
                    ..Peer::default()
                }),
                request: Some(AttrRequest {
                    http: Some(HttpRequest {
                        id: "17".to_owned(),
                        method: self.method.to_owned(),
                        headers,
                        path: self.path.clone(),
                        host: self.host.clone(),
                        scheme: "https".to_owned(),
                        protocol: "HTTP/1.1".to_owned(),
                        ..HttpRequest::default()
                    }),
                    ..AttrRequest::default()
                }),
                context_extensions: self.extensions.iter().cloned().collect(),
                ..AttributeContext::default()
            }),
        }
    }
}

impl Envoy {
    pub async fn connect(baton: &Baton) -> Self {
        let client = AuthorizationClient::connect(baton.url.clone())
            .await
            .expect("connect to the decision port");
        Self {
            client,
            bearer: None,
        }
    }

    pub async fn check_raw(&self, request: CheckRequest) -> CheckResponse {
        let mut request = tonic::Request::new(request);
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        }
        self.client
            .clone()
            .check(request)
            .await
            .expect("Check always answers; errors are denied responses")
            .into_inner()
    }

    pub async fn check(&self, http: &Http) -> Checked {
        Checked(self.check_raw(http.check_request()).await)
    }
}

/// Envoy's view of an answer.
pub struct Checked(pub CheckResponse);

impl Checked {
    pub fn code(&self) -> i32 {
        self.0.status.as_ref().map_or(0, |s| s.code)
    }

    pub fn is_ok(&self) -> bool {
        self.code() == 0 && matches!(self.0.http_response, Some(HttpResponse::OkResponse(_)))
    }

    /// The headers added to the upstream request on OK.
    pub fn upstream(&self) -> HashMap<String, String> {
        upstream_headers(&self.0)
    }

    /// The HTTP status and JSON body Envoy returns to the client on a denial.
    pub fn denied(&self) -> (u32, Value) {
        let Some(HttpResponse::DeniedResponse(denied)) = &self.0.http_response else {
            panic!("expected a denied response, got {:?}", self.0);
        };
        let status = denied.status.as_ref().map_or(0, |s| s.code as u32);
        let body = serde_json::from_str(&denied.body)
            .unwrap_or_else(|e| panic!("the denial body is JSON ({e}): {}", denied.body));
        (status, body)
    }

    fn metadata(&self, key: &str) -> Option<String> {
        let field = self.0.dynamic_metadata.as_ref()?.fields.get(key)?;
        match &field.kind {
            Some(Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        }
    }
}

/// Mints the access token of `verdict` with the `baton-minter` binary, as a token service does.
async fn minted(baton: &Baton, verdict: &str) -> String {
    let output = baton.mint_with_binary(verdict, &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

#[tokio::test]
async fn a_chain_of_envoy_checks_goes_end_to_end_with_minted_tokens() {
    let (baton, envoy) = spawn("", None).await;

    // Hop 1: the edge gateway vouches for alice calling her assistant.
    let hop1 = envoy
        .check(&Http::get("assistant.corp.example", "/ask").header("x-baton-caller", "User:alice"))
        .await;
    assert!(hop1.is_ok(), "{:?}", hop1.0);
    let up1 = hop1.upstream();
    assert_eq!(up1["x-baton-granted-scopes"], "db.read");
    let verdict1 = up1["x-baton-verdict"].clone();
    assert_eq!(verdict1.split('.').count(), 3);
    assert_eq!(
        hop1.metadata("baton.decision_id").as_ref(),
        Some(&up1["x-baton-decision-id"])
    );

    // Hop 2: the assistant, known by its SPIFFE ID, presents its minted token.
    let token1 = minted(&baton, &verdict1).await;
    let hop2 = envoy
        .check(
            &Http::get("analyst.corp.example", "/db/q4")
                .by_agent("user-assistant")
                .bearer(&token1),
        )
        .await;
    assert!(hop2.is_ok(), "{:?}", hop2.0);
    let up2 = hop2.upstream();
    assert_eq!(up2["x-baton-transaction-id"], up1["x-baton-transaction-id"]);

    // Hop 3, from the analyst to the database agent.
    let token2 = minted(&baton, &up2["x-baton-verdict"]).await;
    let hop3 = envoy
        .check(
            &Http::get("database.corp.example", "/query")
                .by_agent("data-analyst")
                .bearer(&token2),
        )
        .await;
    assert!(hop3.is_ok(), "{:?}", hop3.0);

    // The chain cannot be shortened: the database agent does not hold the assistant's token.
    let shortened = envoy
        .check(
            &Http::get("database.corp.example", "/query")
                .by_agent("database-agent")
                .bearer(&token1),
        )
        .await;
    assert!(!shortened.is_ok());
    let (status, body) = shortened.denied();
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("does not hold"),
        "{body}"
    );

    // A token that claims a trusted issuer but does not verify is a 401, whether its
    // signature is wrong or not even canonical base64url.
    let signature_at = token1.rfind('.').unwrap() + 10;
    let wrong = |at: usize, token: &str| {
        let mut bytes = token.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    for tampered in [
        wrong(signature_at, &token1),
        wrong(token1.len() - 1, &token1),
    ] {
        let forged = envoy
            .check(
                &Http::get("analyst.corp.example", "/db/q4")
                    .by_agent("user-assistant")
                    .bearer(&tampered),
            )
            .await;
        let (status, body) = forged.denied();
        assert_eq!(status, 401, "{body}");
        assert_eq!(forged.code(), tonic::Code::Unauthenticated as i32);
    }
}

#[tokio::test]
async fn a_denied_hop_is_a_403_with_the_reasons() {
    let (_baton, envoy) = spawn("", None).await;
    // carol is a contractor: her assistant may not read finance data for her.
    let check = envoy
        .check(
            &Http::get("analyst.corp.example", "/anything")
                .by_agent("user-assistant")
                .header("x-baton-principal", "User:carol")
                .extension("baton.callee", "Agent:data-analyst")
                .extension("baton.scopes", "finance.read"),
        )
        .await;
    assert!(!check.is_ok());
    assert_eq!(check.code(), tonic::Code::PermissionDenied as i32);
    let (status, body) = check.denied();
    assert_eq!(status, 403);
    assert_eq!(body["decision"], "DENY");
    assert_eq!(body["refused"][0]["scope"], "finance.read");
    assert_eq!(body["refused"][0]["reason"], "FORBIDDEN_BY_POLICY");
    assert!(body["decision_id"].is_string());
    assert_eq!(
        check.metadata("baton.decision_id").as_deref(),
        body["decision_id"].as_str()
    );
}

#[tokio::test]
async fn a_revoked_agent_is_denied_through_this_door() {
    let (baton, envoy) = spawn("", None).await;
    let for_alice = Http::get("analyst.corp.example", "/reports/q4")
        .by_agent("user-assistant")
        .header("x-baton-principal", "User:alice");
    assert!(envoy.check(&for_alice).await.is_ok());
    baton
        .revoke(Target::Agent("user-assistant".to_owned()))
        .await;
    let after = envoy.check(&for_alice).await;
    let (status, body) = after.denied();
    assert_eq!(status, 403);
    assert_eq!(body["denial"]["code"], "REVOKED", "{body}");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_problem() {
    let (_baton, envoy) = spawn("", None).await;
    let alice = |http: Http| http.header("x-baton-caller", "User:alice");
    let cases = [
        (
            alice(Http::get("unknown.corp.example", "/")),
            "takes no route",
        ),
        (
            alice(Http::get("analyst.corp.example", "/reports/../admin")),
            "attributes.request.http.path",
        ),
        (
            alice(Http::get("analyst.corp.example", "/reports%2F..%2Fadmin")),
            "encoded",
        ),
        (
            alice(Http::get("analyst.corp.example", "/x")).extension("baton.callee", "nonsense"),
            "baton.callee",
        ),
        (
            alice(Http::get("analyst.corp.example", "/x"))
                .extension("baton.callee", "Ticket:1")
                .extension("baton.scopes", "db.read"),
            "callee.type",
        ),
        (
            Http::get("analyst.corp.example", "/reports/q4"),
            "attributes.source.principal",
        ),
        (
            Http::get("analyst.corp.example", "/reports/q4").by_agent("a/b"),
            "matches no identity pattern",
        ),
        (
            Http::get("analyst.corp.example", "/reports/q4").header("x-baton-caller", "Robot:r2"),
            "x-baton-caller",
        ),
        (
            alice(Http::get("analyst.corp.example", "/x"))
                .extension("baton.callee", "Agent:data-analyst")
                .extension("baton.scopes", " , "),
            "scopes",
        ),
    ];
    for (http, names) in cases {
        let check = envoy.check(&http).await;
        assert!(!check.is_ok(), "{names}");
        assert_eq!(check.code(), tonic::Code::InvalidArgument as i32, "{names}");
        let (status, body) = check.denied();
        assert_eq!(status, 400, "{names}: {body}");
        assert!(
            body.to_string().contains(names),
            "{body} names no `{names}`"
        );
    }
    let empty = Checked(envoy.check_raw(CheckRequest::default()).await);
    let (status, body) = empty.denied();
    assert_eq!(status, 400);
    assert!(body.to_string().contains("attributes"), "{body}");
}

#[tokio::test]
async fn only_a_trusted_gateway_may_assert_a_hop_or_set_baton_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateways");
    std::fs::write(&path, "envoy 0123456789abcdef0123456789\n").unwrap();
    let (_baton, mut envoy) = spawn("", Some(Gateways::from_file(&path).unwrap())).await;
    let for_alice = Http::get("analyst.corp.example", "/reports/q4")
        .by_agent("user-assistant")
        .header("x-baton-principal", "User:alice");

    // An Envoy that does not authenticate: its hop is refused, and its headers are not read
    // (the caller would be alice's assistant acting for itself).
    let refused = envoy.check(&for_alice).await;
    let (status, body) = refused.denied();
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("trusted gateway"),
        "{body}"
    );
    let spoofed = envoy
        .check(
            &Http::get("analyst.corp.example", "/reports/q4")
                .header("x-baton-caller", "User:alice"),
        )
        .await;
    let (status, body) = spoofed.denied();
    assert_eq!(
        status, 400,
        "the header is ignored, so no caller is known: {body}"
    );

    envoy.bearer = Some("0123456789abcdef0123456789".to_owned());
    assert!(envoy.check(&for_alice).await.is_ok());
}

#[tokio::test]
async fn the_presented_token_can_be_stripped_before_the_upstream_sees_it() {
    let (baton, envoy) = spawn("strip_authorization = true", None).await;
    let _ = baton;
    let hop1 = envoy
        .check(&Http::get("assistant.corp.example", "/").header("x-baton-caller", "User:alice"))
        .await;
    let Some(HttpResponse::OkResponse(ok)) = &hop1.0.http_response else {
        panic!("expected OK: {:?}", hop1.0);
    };
    assert_eq!(ok.headers_to_remove, ["authorization"]);
}

/// What deploy/envoy.yaml configures: the gateway token Envoy presents, and the `/reports`
/// route's context extensions. Read from the file, so the test follows it.
fn deployed_envoy() -> (String, Vec<(String, String)>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/envoy.yaml");
    let text = std::fs::read_to_string(path).expect("deploy/envoy.yaml");
    let value = |line: &str| {
        line.split_once(':')
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())
    };
    let mut bearer = None;
    let mut extensions = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("value: \"Bearer ") {
            bearer = Some(v.trim_end_matches('"').to_owned());
        }
        for key in ["baton.caller", "baton.callee", "baton.scopes"] {
            if line.starts_with(&format!("{key}:")) {
                extensions.push((key.to_owned(), value(line).unwrap()));
            }
        }
    }
    assert_eq!(extensions.len(), 3, "the /reports route names its hop");
    (bearer.expect("Envoy presents a gateway token"), extensions)
}

#[tokio::test]
async fn the_compose_topology_decides_as_deployed() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let baton = spawn_baton_with(Options {
        mapping: Some(GatewayMapping::from_file(&deploy.join("gateway-mapping.toml")).unwrap()),
        gateways: Some(Gateways::from_file(&deploy.join("gateway-tokens")).unwrap()),
        ..Options::default()
    })
    .await;
    // The edge asserts alice's first hop, as the compose file's grpcurl line does.
    let edge = std::fs::read_to_string(deploy.join("gateway-tokens")).unwrap();
    let edge = edge
        .lines()
        .find_map(|l| l.strip_prefix("edge "))
        .expect("an edge gateway")
        .trim();
    let first = baton
        .try_authorize_as(
            edge,
            crate::helpers::first_hop("User:alice", "Agent:user-assistant", &["reports.generate"]),
        )
        .await
        .expect("the edge's first hop is answered");
    assert!(!first.verdict.is_empty(), "{first:?}");

    let (bearer, extensions) = deployed_envoy();
    let mut envoy = Envoy::connect(&baton).await;
    let mut request = Http::get("localhost:10000", "/reports/q4").bearer(&first.verdict);
    for (key, value) in &extensions {
        request = request.extension(key, value);
    }
    // Envoy that does not authenticate may not name the caller.
    let (status, body) = envoy.check(&request).await.denied();
    assert_eq!(status, 400, "{body}");

    envoy.bearer = Some(bearer);
    let checked = envoy.check(&request).await;
    assert!(checked.is_ok(), "{:?}", checked.0);
    assert_eq!(
        checked.upstream()["x-baton-granted-scopes"],
        "reports.generate"
    );
    let Some(HttpResponse::OkResponse(ok)) = &checked.0.http_response else {
        unreachable!()
    };
    assert_eq!(
        ok.headers_to_remove,
        ["authorization"],
        "the mapping strips the token"
    );
}

/// A gateway that only enforces asks for no verdict: the mapping's `omit_verdict`, or a
/// route's `baton.omit_verdict` extension, which wins. The decision is the same either way.
#[tokio::test]
async fn a_gateway_that_only_enforces_gets_no_verdict() {
    let alice =
        || Http::get("assistant.corp.example", "/ask").header("x-baton-caller", "User:alice");

    let (_baton, envoy) = spawn("omit_verdict = true", None).await;
    let omitted = envoy.check(&alice()).await;
    assert!(omitted.is_ok(), "{:?}", omitted.0);
    let upstream = omitted.upstream();
    assert!(!upstream.contains_key("x-baton-verdict"), "{upstream:?}");
    assert_eq!(upstream["x-baton-granted-scopes"], "db.read");
    assert!(!upstream["x-baton-decision-id"].is_empty());
    // A route that forwards the verdict to an agent asks for it again.
    let signed = envoy
        .check(&alice().extension("baton.omit_verdict", "false"))
        .await;
    assert_eq!(signed.upstream()["x-baton-verdict"].split('.').count(), 3);

    let (_baton, envoy) = spawn("", None).await;
    let signed = envoy.check(&alice()).await;
    assert_eq!(signed.upstream()["x-baton-verdict"].split('.').count(), 3);
    let omitted = envoy
        .check(&alice().extension("baton.omit_verdict", "true"))
        .await;
    assert!(omitted.is_ok(), "{:?}", omitted.0);
    assert!(!omitted.upstream().contains_key("x-baton-verdict"));
    let bad = envoy
        .check(&alice().extension("baton.omit_verdict", "yes"))
        .await;
    let (status, body) = bad.denied();
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("baton.omit_verdict"), "{body}");
}
