//! The Envoy door: `envoy.service.auth.v3.Authorization/Check` on the decision port. Envoy (or
//! Istio, or any gateway speaking `ext_authz`) asks before it forwards an HTTP request; this door
//! reads the hop from the request as the gateway mapping says, asks the pipeline, and answers
//! with Envoy's OK or denied response. It decides nothing itself.
//!
//! - **Callee and scopes**: Envoy's per-route `context_extensions` (`baton.callee`,
//!   `baton.scopes`), else `x-baton-callee` and `x-baton-scopes` when the mapping trusts headers,
//!   else the first route of the mapping the request's host, path and method take.
//! - **Caller**: the route's `baton.caller` context extension, or `x-baton-caller` when headers
//!   are trusted (both only from a trusted gateway), else the peer identity Envoy reports
//!   (`source.principal`, a SPIFFE ID) mapped by the mapping's identity patterns.
//! - **Chain**: a bearer token in `authorization` that claims Baton or a trusted issuer is the
//!   hop's subject token (a chained hop, exactly as `subject_token`); without one the hop is a
//!   first hop asserted for `x-baton-principal` (trusted headers) or the caller itself, which the
//!   pipeline accepts only from a trusted gateway.
//!
//! - **Verdict**: signed for `x-baton-verdict` unless the route's `baton.omit_verdict`
//!   context extension (`true`/`false`) or else the mapping's `envoy.omit_verdict` omits it: a
//!   gateway that only enforces saves Baton the signing.
//!
//! ALLOW is `ok_response` with `x-baton-verdict` (unless omitted), `x-baton-granted-scopes`,
//! `x-baton-transaction-id` and `x-baton-decision-id` on the upstream request; DENY and
//! APPROVAL_REQUIRED are `403` with a small JSON body; a token that does not verify is `401`; bad
//! input is `400`. An error never becomes an ALLOW.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse, HttpStatusCode};
use envoy_types::ext_authz::v3::{
    CheckResponseExt as _, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use serde_json::json;
use tonic::{Code, Request, Response, Status};

use super::status::ApiError;
use crate::decision::request::{self, FieldViolation, InvalidRequest, Limits};
use crate::decision::{DecisionKind, Effect};
use crate::identity::Identity;
use crate::mapping::{EnvoyMapping, typed_identity};
use crate::pipeline::{Answered, ErrorClass, Pipeline, PipelineError, Question};
use crate::token::jws::clip;

/// Answers Envoy's checks through the [`Pipeline`].
#[derive(Clone)]
pub struct ExtAuthzApi {
    pipeline: Arc<Pipeline>,
    mapping: Arc<EnvoyMapping>,
}

/// The HTTP request Envoy checks, as this door reads it.
struct Checked<'a> {
    http: &'a HttpRequest,
    host: &'a str,
    path: &'a str,
    method: &'a str,
    principal: &'a str,
    extensions: &'a HashMap<String, String>,
}

impl<'a> Checked<'a> {
    /// The parts of `request` the mapping reads.
    fn of(request: &'a CheckRequest) -> Result<Self, InvalidRequest> {
        let missing = |what: &str| FieldViolation::new("attributes", format!("has no {what}"));
        let attributes = request
            .attributes
            .as_ref()
            .ok_or_else(|| missing("attributes"))?;
        let http = attributes
            .request
            .as_ref()
            .and_then(|r| r.http.as_ref())
            .ok_or_else(|| missing("HTTP request"))?;
        Ok(Self {
            http,
            host: &http.host,
            path: http.path.split(['?', '#']).next().unwrap_or_default(),
            method: &http.method,
            principal: attributes
                .source
                .as_ref()
                .map_or("", |s| s.principal.as_str()),
            extensions: &attributes.context_extensions,
        })
    }

    /// The value of header `name` (lowercase), if present and not empty. Envoy sends names in
    /// lowercase, in `headers`, or in `header_map` when configured to send raw values; either
    /// is searched ignoring case, without copying the headers.
    fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let http = self.http;
        let found = match http.headers.get(name) {
            Some(v) => Some(Cow::Borrowed(v.as_str())),
            None => http
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| Cow::Borrowed(v.as_str()))
                .or_else(|| {
                    let map = http.header_map.as_ref()?;
                    let h = map
                        .headers
                        .iter()
                        .find(|h| h.key.eq_ignore_ascii_case(name))?;
                    Some(if h.value.is_empty() {
                        String::from_utf8_lossy(&h.raw_value)
                    } else {
                        Cow::Borrowed(h.value.as_str())
                    })
                }),
        };
        found.filter(|v| !v.is_empty())
    }
}

/// Scopes written space- or comma-separated, as headers and extensions carry them: each
/// checked, duplicates dropped, at most `max_scopes`.
fn scope_list(field: &str, text: &str, limits: &Limits) -> Result<Vec<String>, InvalidRequest> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in text.split([' ', ',']).filter(|s| !s.is_empty()) {
        if scopes.len() == limits.max_scopes {
            return Err(invalid(
                field,
                format!("names more than {} scopes", limits.max_scopes),
            ));
        }
        request::scope(field, scope, limits)?;
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes)
}

type Check = fn(&str, &str, &str, &Limits) -> Result<Identity, Vec<FieldViolation>>;

/// The `Type:id` at `field`, checked as `check` checks an identity of its role.
fn reference(
    field: &str,
    text: &str,
    limits: &Limits,
    check: Check,
) -> Result<Identity, InvalidRequest> {
    let parsed = typed_identity(text).ok_or_else(|| {
        invalid(
            field,
            format!(
                "is `{}`: expected `Type:id`, such as `Agent:data-analyst`",
                clip(text)
            ),
        )
    })?;
    check(field, parsed.kind.as_str(), &parsed.id, limits)
        .map_err(|violations| InvalidRequest { violations })
}

fn invalid(field: &str, why: impl Into<String>) -> InvalidRequest {
    InvalidRequest::from(FieldViolation::new(field, why))
}

/// Why `path` is not in the normal form routes are matched against, if it is not: a route
/// decided for `/reports` must not let `/reports/../admin` through to an upstream that
/// resolves it. Envoy normalizes paths when told to (`normalize_path`, `merge_slashes`); this
/// refuses what it was not told to normalize.
fn unnormalized(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("must start with `/`".to_owned());
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "\\"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Some(
            "holds an encoded dot, slash or backslash: normalize paths at the gateway".to_owned(),
        );
    }
    if path.contains("//") || path.split('/').any(|seg| seg == "." || seg == "..") {
        return Some(
            "holds an empty, `.` or `..` segment: normalize paths at the gateway".to_owned(),
        );
    }
    None
}

/// The bearer token of an `authorization` value, if it is one (RFC 6750 §2.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl ExtAuthzApi {
    /// The door over `pipeline`, reading hops as `mapping` says.
    pub fn new(pipeline: Arc<Pipeline>, mapping: Arc<EnvoyMapping>) -> Self {
        Self { pipeline, mapping }
    }

    /// The question the checked request asks. `from_gateway` says whether the check comes from
    /// a trusted gateway: only then are `x-baton-*` headers honoured, even when the mapping
    /// trusts them. Every value read is checked and named by where it was read from.
    fn question(
        &self,
        checked: &Checked<'_>,
        from_gateway: bool,
    ) -> Result<Question, InvalidRequest> {
        let limits = self.pipeline.limits();
        if let Some(why) = unnormalized(checked.path) {
            return Err(invalid("attributes.request.http.path", why));
        }
        let honour = self.mapping.trust_headers && from_gateway;
        let trusted = |name: &'static str| {
            honour
                .then(|| checked.header(name))
                .flatten()
                .map(|v| (name, v))
        };
        let extension = |name: &'static str| {
            checked
                .extensions
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| (name, Cow::Borrowed(v.as_str())))
        };
        let route = self
            .mapping
            .route(checked.host, checked.path, checked.method);

        let callee = match extension("baton.callee").or_else(|| trusted("x-baton-callee")) {
            Some((field, text)) => reference(field, &text, limits, request::callee)?,
            None => {
                let route = route.ok_or_else(|| {
                    invalid(
                        "attributes.request.http",
                        format!(
                            "`{} {}{}` takes no route of the gateway mapping, and names no callee",
                            clip(checked.method),
                            clip(checked.host),
                            clip(checked.path)
                        ),
                    )
                })?;
                route.callee.clone()
            }
        };

        let scopes = match extension("baton.scopes").or_else(|| trusted("x-baton-scopes")) {
            Some((field, text)) => scope_list(field, &text, limits)?,
            None => route.map(|r| r.scopes.clone()).unwrap_or_default(),
        };
        if scopes.is_empty() {
            return Err(invalid("scopes", "the checked request names no scope"));
        }

        // A route's own caller is the Envoy operator's word, honoured only from a gateway Baton
        // trusts: an egress sidecar names the agent it serves.
        let configured = |name: &'static str| from_gateway.then(|| extension(name)).flatten();
        let caller = match configured("baton.caller").or_else(|| trusted("x-baton-caller")) {
            Some((field, text)) => reference(field, &text, limits, request::identity)?,
            None => {
                let peer = self.mapping.identify(checked.principal).ok_or_else(|| {
                    invalid(
                        "attributes.source.principal",
                        if checked.principal.is_empty() {
                            "is empty: Envoy reports no peer identity, and no trusted header names the caller".to_owned()
                        } else {
                            format!(
                                "`{}` matches no identity pattern of the gateway mapping",
                                clip(checked.principal)
                            )
                        },
                    )
                })?;
                request::identity(
                    "attributes.source.principal",
                    peer.kind.as_str(),
                    &peer.id,
                    limits,
                )
                .map_err(|violations| InvalidRequest { violations })?
            }
        };

        let authorization = checked.header("authorization");
        let token = authorization.as_deref().and_then(bearer).filter(|t| {
            self.pipeline
                .delegation()
                .verifier
                .uncached()
                .claims_known_issuer(t)
        });
        let principal = match (token, trusted("x-baton-principal")) {
            (Some(_), _) => None,
            (None, Some((field, text))) => {
                Some(reference(field, &text, limits, request::identity)?)
            }
            (None, None) => Some(caller.clone()),
        };
        let transaction_id = match trusted("x-baton-transaction-id") {
            Some((field, text)) => {
                request::token(field, &text, limits).map_err(InvalidRequest::from)?;
                Some(text.into_owned())
            }
            None => None,
        };
        let omit_verdict = match extension("baton.omit_verdict") {
            None => self.mapping.omit_verdict,
            Some((field, text)) => match text.as_ref() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid(field, "must be `true` or `false`")),
            },
        };
        let mut question = Question::new(caller.clone(), callee, caller, scopes);
        question.principal = principal;
        question.subject_token = token.map(str::to_owned);
        question.transaction_id = transaction_id;
        question.omit_verdict = omit_verdict;
        Ok(question)
    }

    /// Envoy's response to an answered question.
    fn answer(&self, answered: Answered) -> CheckResponse {
        let decision = &answered.decision;
        let metadata = dynamic_metadata(&decision.decision_id, &decision.transaction_id);
        if decision.kind() == DecisionKind::Allow && decision.outcome.effect == Effect::Allow {
            let mut ok = OkHttpResponseBuilder::new();
            let mut set = |key: &str, value: &str| {
                ok.add_header(
                    key,
                    value,
                    Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                    false,
                );
            };
            if let Some(verdict) = &answered.verdict {
                set("x-baton-verdict", verdict);
            }
            set(
                "x-baton-granted-scopes",
                &decision.outcome.granted.join(" "),
            );
            set("x-baton-transaction-id", &decision.transaction_id);
            set("x-baton-decision-id", &decision.decision_id);
            if self.mapping.strip_authorization {
                ok.remove_header("authorization");
            }
            let mut response = CheckResponse::with_status(Status::ok(""));
            response
                .set_http_response(ok)
                .set_dynamic_metadata(Some(metadata));
            return response;
        }
        let body = json!({
            "decision": decision.kind().as_str(),
            "decision_id": decision.decision_id,
            "transaction_id": decision.transaction_id,
            "denial": decision.outcome.denial.as_ref().map(|d| json!({
                "code": serde_json::to_value(d.code).unwrap_or_default(),
                "detail": d.detail,
            })),
            "refused": decision.outcome.refused.iter().map(|r| json!({
                "scope": r.scope,
                "reason": serde_json::to_value(r.reason).unwrap_or_default(),
                "detail": r.detail,
            })).collect::<Vec<_>>(),
            "approval_id": decision.approval.as_ref().map(|a| a.id.clone()),
        });
        let mut response = denied(
            Code::PermissionDenied,
            HttpStatusCode::Forbidden,
            "the hop is not allowed",
            &body.to_string(),
        );
        response.set_dynamic_metadata(Some(metadata));
        response
    }
}

/// A denied response: `code` for Envoy, `http` and a JSON `body` for the client.
fn denied(code: Code, http: HttpStatusCode, message: &str, body: &str) -> CheckResponse {
    let mut denied = DeniedHttpResponseBuilder::new();
    denied.set_http_status(http).set_body(body);
    denied.add_header(
        "content-type",
        "application/json",
        Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
        false,
    );
    let mut response = CheckResponse::with_status(Status::new(code, message));
    response.set_http_response(denied);
    response
}

/// The answer to a question that got no decision: `400` for bad input, `401` for a credential
/// that does not verify, `403` for a chain that may not be asserted, `503` when a store cannot
/// answer, `500` otherwise. The body names the class, the reason and every field at fault.
fn refused(error: PipelineError) -> CheckResponse {
    let class = error.class();
    let http = match class {
        ErrorClass::InvalidArgument => HttpStatusCode::BadRequest,
        ErrorClass::Unauthenticated => HttpStatusCode::Unauthorized,
        ErrorClass::PermissionDenied | ErrorClass::NotFound | ErrorClass::FailedPrecondition => {
            HttpStatusCode::Forbidden
        }
        ErrorClass::Unavailable | ErrorClass::Aborted => HttpStatusCode::ServiceUnavailable,
        ErrorClass::Internal => HttpStatusCode::InternalServerError,
    };
    let reason = error.reason();
    let fields: Vec<serde_json::Value> = match &error {
        PipelineError::InvalidArgument(e) => e
            .violations
            .iter()
            .map(|v| json!({ "field": v.field, "description": v.description }))
            .collect(),
        _ => Vec::new(),
    };
    // The status's message is the one gRPC callers get: internal causes stay in the log.
    let status = Status::from(ApiError::from(error));
    let mut body = json!({ "error": class.as_str(), "message": status.message() });
    if let Some(reason) = reason {
        body["reason"] = reason.into();
    }
    if !fields.is_empty() {
        body["fields"] = fields.into();
    }
    denied(status.code(), http, status.message(), &body.to_string())
}

/// `baton.decision_id` and `baton.transaction_id`, for Envoy's access log.
fn dynamic_metadata(decision_id: &str, transaction_id: &str) -> Struct {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    };
    Struct {
        fields: [
            ("baton.decision_id".to_owned(), string(decision_id)),
            ("baton.transaction_id".to_owned(), string(transaction_id)),
        ]
        .into_iter()
        .collect(),
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzApi {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let received = std::time::Instant::now();
        let asker = super::decision_service::asker(&request);
        let from_gateway = self
            .pipeline
            .delegation()
            .gateways
            .identify(
                asker.bearer.as_deref(),
                asker.peer,
                asker.certificate.as_deref(),
            )
            .is_some();
        let message = request.into_inner();
        let question =
            Checked::of(&message).and_then(|checked| self.question(&checked, from_gateway));
        let response = match question {
            Ok(question) => match self.pipeline.decide(question, &asker).await {
                Ok(answered) => self.answer(answered),
                Err(e) => refused(e),
            },
            Err(invalid) => refused(self.pipeline.refused(invalid, received)),
        };
        Ok(Response::new(response))
    }
}

/// Headers the OK response sets on the upstream request, by name, for tests and tools.
pub fn upstream_headers(response: &CheckResponse) -> HashMap<String, String> {
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        return HashMap::new();
    };
    let header =
        |h: &HeaderValueOption| h.header.as_ref().map(|h| (h.key.clone(), h.value.clone()));
    ok.headers.iter().filter_map(header).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        let limits = Limits::default();
        let list = |text| scope_list("s", text, &limits).unwrap();
        assert_eq!(list("a b,c,,  d a"), ["a", "b", "c", "d"]);
        assert!(list(" , ").is_empty());
        let many = vec!["s"; 65]
            .iter()
            .enumerate()
            .map(|(i, _)| format!("s{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(scope_list("s", &many, &limits).is_err());
        assert!(scope_list("s", &"x".repeat(200), &limits).is_err());
        assert_eq!(bearer("Bearer x.y.z"), Some("x.y.z"));
        assert_eq!(bearer("Basic x"), None);
    }

    #[test]
    fn headers_are_found_in_any_case_and_in_raw_form() {
        use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
        use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
        use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request as Attr;
        let request = |http: HttpRequest| CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Attr {
                    http: Some(http),
                    ..Attr::default()
                }),
                ..AttributeContext::default()
            }),
        };
        let cooked = request(HttpRequest {
            headers: [("X-Baton-Caller".to_owned(), "User:alice".to_owned())].into(),
            path: "/a?b=/../#c".to_owned(),
            ..HttpRequest::default()
        });
        let checked = Checked::of(&cooked).unwrap();
        assert_eq!(
            checked.header("x-baton-caller").as_deref(),
            Some("User:alice")
        );
        assert_eq!(checked.path, "/a");
        let raw = request(HttpRequest {
            header_map: Some(HeaderMap {
                headers: vec![HeaderValue {
                    key: "authorization".to_owned(),
                    raw_value: b"Bearer t".to_vec(),
                    ..HeaderValue::default()
                }],
            }),
            ..HttpRequest::default()
        });
        let checked = Checked::of(&raw).unwrap();
        assert_eq!(checked.header("authorization").as_deref(), Some("Bearer t"));
        assert!(checked.header("x-baton-caller").is_none());
    }

    #[test]
    fn paths_must_be_normalized() {
        assert!(unnormalized("/reports/q4").is_none());
        assert!(unnormalized("/").is_none());
        for bad in [
            "/reports/../admin",
            "/reports/./x",
            "//x",
            "/a%2F..",
            "/a%2e%2e/b",
            "x",
            "/a\\b",
        ] {
            assert!(unnormalized(bad).is_some(), "{bad}");
        }
    }
}
