//! The AuthZEN door: the OpenID AuthZEN Authorization API 1.0 on the HTTP port, for policy
//! enforcement points that speak the standard rather than Baton's proto.
//!
//! - `POST /access/v1/evaluation`: one evaluation, answered `{"decision": bool, "context"}`.
//! - `POST /access/v1/evaluations`: top-level defaults, `evaluations` items that override them
//!   member by member, and `options.evaluations_semantic` (`execute_all`, `deny_on_first_deny`,
//!   `permit_on_first_permit`). An item that is malformed or gets no decision answers
//!   `decision: false` with the reason in its context; the batch goes on. Without items the
//!   request is one evaluation, answered as one.
//! - `GET /.well-known/authzen-configuration`: the PDP's metadata.
//!
//! The enforcement point authenticates as a trusted gateway (`Authorization: Bearer`, the
//! gateway tokens; on loopback when none are configured), since it asserts who the subject is:
//! anything else is `401`. A body that is not JSON, or not `application/json`, or too large, or
//! a single evaluation with a bad member, is a `4xx` naming the problem; a store that cannot
//! answer is `503`. `X-Request-ID` is echoed. Each evaluation is one question to the
//! [`Pipeline`], converted as [`convert`] documents; this door decides nothing itself.

mod convert;
pub mod wire;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::wire::{Decisions, Evaluation, Evaluations, Semantic};
use crate::decision::{FieldViolation, InvalidRequest};
use crate::mapping::AuthzenMapping;
use crate::pipeline::{Asker, ErrorClass, Pipeline, PipelineError};
use crate::tls::PeerInfo;

/// Where single evaluations are asked.
pub const EVALUATION_PATH: &str = "/access/v1/evaluation";
/// Where batches of evaluations are asked.
pub const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
/// Where the PDP's metadata is published.
pub const CONFIGURATION_PATH: &str = "/.well-known/authzen-configuration";

/// Answers AuthZEN evaluations through the [`Pipeline`].
pub struct AuthzenApi {
    pipeline: Arc<Pipeline>,
    mapping: Arc<AuthzenMapping>,
    max_body_bytes: usize,
}

impl AuthzenApi {
    /// The door over `pipeline`, naming types as `mapping` says, reading batches of at most
    /// `max_body_bytes` (single evaluations: the pipeline's `max_request_bytes`).
    pub fn new(
        pipeline: Arc<Pipeline>,
        mapping: Arc<AuthzenMapping>,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            pipeline,
            mapping,
            max_body_bytes,
        }
    }
}

/// The AuthZEN routes.
pub fn router(api: Arc<AuthzenApi>) -> Router {
    Router::new()
        .route(EVALUATION_PATH, post(evaluation))
        .route(EVALUATIONS_PATH, post(evaluations))
        .route(CONFIGURATION_PATH, get(configuration))
        .with_state(api)
}

/// Why a request got no answer in AuthZEN's terms.
enum Problem {
    /// The enforcement point is not a trusted gateway.
    Unauthenticated { presented: bool },
    /// The body is not declared as JSON.
    MediaType(String),
    /// The body is over the limit.
    TooLarge(usize),
    /// The question was refused: malformed, or unanswerable now.
    Refused(PipelineError),
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = |code: &str, message: String| json!({ "error": code, "message": message });
        match self {
            Self::Unauthenticated { presented } => {
                let challenge = if presented {
                    r#"Bearer realm="baton", error="invalid_token""#
                } else {
                    r#"Bearer realm="baton""#
                };
                let message = if presented {
                    "the bearer token is not a gateway token of this Baton"
                } else {
                    "authenticate as a trusted gateway: `Authorization: Bearer <gateway token>`"
                };
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, challenge)],
                    axum::Json(body("UNAUTHENTICATED", message.to_owned())),
                )
                    .into_response()
            }
            Self::MediaType(got) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                axum::Json(body(
                    "UNSUPPORTED_MEDIA_TYPE",
                    format!("`content-type` is {got}: send `application/json`"),
                )),
            )
                .into_response(),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                axum::Json(body(
                    "PAYLOAD_TOO_LARGE",
                    format!("the body is over the limit of {limit} bytes"),
                )),
            )
                .into_response(),
            Self::Refused(error) => {
                let status = match error.class() {
                    ErrorClass::InvalidArgument => StatusCode::BAD_REQUEST,
                    ErrorClass::Unavailable | ErrorClass::Aborted => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                    // The hop is not entitled to a decision: an answer, not an HTTP error.
                    _ => return axum::Json(convert::refused(&error)).into_response(),
                };
                let mut body = convert::error_body(&error);
                if let Value::Object(map) = &mut body {
                    // `error` names the class, as every other error body here does.
                    if let Some(code) = map.remove("code") {
                        map.insert("error".into(), code);
                    }
                }
                (status, axum::Json(body)).into_response()
            }
        }
    }
}

/// `X-Request-ID` as the request sent it, to echo.
fn request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get("x-request-id")
        .filter(|v| v.len() <= 256)
        .cloned()
}

fn echoed(mut response: Response, id: Option<HeaderValue>) -> Response {
    if let Some(id) = id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

impl AuthzenApi {
    /// Who asks, if it is a trusted gateway.
    fn authenticate(&self, request: &Request) -> Result<Asker, Problem> {
        let headers = request.headers();
        let presented = headers.get(header::AUTHORIZATION);
        let bearer = presented
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let connection = request
            .extensions()
            .get::<ConnectInfo<PeerInfo>>()
            .map(|c| c.0.clone());
        let peer = connection.as_ref().map(|c| c.addr);
        let certificate = connection.and_then(|c| c.certificate);
        let delegation = self.pipeline.delegation();
        let gateway = delegation
            .gateways
            .identify(bearer.as_deref(), peer, certificate.as_deref());
        // A workload its certificate proves may ask for itself; the pipeline holds it to
        // being the caller.
        let workload = certificate
            .as_deref()
            .is_some_and(|c| matches!(delegation.workloads.identity_of(c), Ok(Some(_))));
        if gateway.is_none() && !workload {
            return Err(Problem::Unauthenticated {
                presented: presented.is_some(),
            });
        }
        let trace_id = crate::telemetry::current_trace_id().or_else(|| {
            headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::telemetry::traceparent_trace_id)
        });
        Ok(Asker {
            bearer,
            peer,
            certificate,
            trace_id,
        })
    }

    /// The body, parsed, if it is JSON of the right shape within the limit.
    async fn body<T: DeserializeOwned>(
        &self,
        request: Request,
        limit: usize,
    ) -> Result<T, Problem> {
        let received = Instant::now();
        let declared = request
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let json = declared.as_deref().is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        });
        if !json {
            return Err(Problem::MediaType(match declared {
                Some(t) => format!("`{}`", t.chars().take(64).collect::<String>()),
                None => "missing".to_owned(),
            }));
        }
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| Problem::TooLarge(limit))?;
        // Serde would read a struct from an array too; AuthZEN requests are objects.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            let invalid = InvalidRequest::from(FieldViolation::new(
                "body",
                "must be a JSON object: `{\"subject\": …, \"action\": …, \"resource\": …}`",
            ));
            return Err(Problem::Refused(self.pipeline.refused(invalid, received)));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let parsed = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." { "body".to_owned() } else { path };
                (field, e.into_inner())
            })
            .and_then(|value| {
                deserializer
                    .end()
                    .map(|()| value)
                    .map_err(|e| ("body".to_owned(), e))
            });
        parsed.map_err(|(field, e)| {
            let invalid = InvalidRequest::from(FieldViolation::new(
                field,
                format!("is not valid JSON for this request: {e}"),
            ));
            Problem::Refused(self.pipeline.refused(invalid, received))
        })
    }

    /// One evaluation, decided; an error when it got no decision.
    async fn decide(
        &self,
        evaluation: Evaluation,
        asker: &Asker,
    ) -> Result<wire::Decision, PipelineError> {
        let received = Instant::now();
        let bundle = self.pipeline.bundle();
        let question =
            convert::question(evaluation, &self.mapping, &bundle, self.pipeline.limits())
                .map_err(|e| self.pipeline.refused(e, received))?;
        drop(bundle);
        let answered = self.pipeline.decide(question, asker).await?;
        Ok(convert::decision(answered))
    }

    async fn single(&self, evaluation: Evaluation, asker: &Asker) -> Response {
        match self.decide(evaluation, asker).await {
            Ok(decision) => axum::Json(decision).into_response(),
            Err(e) => Problem::Refused(e).into_response(),
        }
    }
}

async fn evaluation(State(api): State<Arc<AuthzenApi>>, request: Request) -> Response {
    let id = request_id(request.headers());
    let response = async {
        let asker = api.authenticate(&request)?;
        // One question, held to the size of one `Authorize` request.
        let limit = api.pipeline.limits().max_request_bytes;
        let evaluation: Evaluation = api.body(request, limit).await?;
        Ok::<_, Problem>(api.single(evaluation, &asker).await)
    };
    echoed(response.await.unwrap_or_else(Problem::into_response), id)
}

async fn evaluations(State(api): State<Arc<AuthzenApi>>, request: Request) -> Response {
    let id = request_id(request.headers());
    let response = async {
        let asker = api.authenticate(&request)?;
        let batch: Evaluations = api.body(request, api.max_body_bytes).await?;
        let defaults = batch.defaults();
        let items = match batch.evaluations {
            Some(items) if !items.is_empty() => items,
            _ => return Ok(api.single(defaults, &asker).await),
        };
        let invalid = |field: &str, why: String| {
            Problem::Refused(
                api.pipeline
                    .refused(FieldViolation::new(field, why).into(), Instant::now()),
            )
        };
        let max = api.pipeline.limits().max_batch_items;
        if items.len() > max {
            return Err(invalid(
                "evaluations",
                format!("has {} items, over the limit of {max}", items.len()),
            ));
        }
        let named = batch
            .options
            .as_ref()
            .and_then(|o| o.evaluations_semantic.as_deref());
        let Some(semantic) = Semantic::parse(named) else {
            return Err(invalid(
                "options.evaluations_semantic",
                "must be `execute_all`, `deny_on_first_deny` or `permit_on_first_permit`"
                    .to_owned(),
            ));
        };
        let mut answers = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let answer = match api.decide(item.over(&defaults), &asker).await {
                Ok(decision) => decision,
                Err(e) => convert::refused(&e.located(&format!("evaluations[{i}]."))),
            };
            let allowed = answer.decision;
            answers.push(answer);
            let stop = match semantic {
                Semantic::ExecuteAll => false,
                Semantic::DenyOnFirstDeny => !allowed,
                Semantic::PermitOnFirstPermit => allowed,
            };
            if stop {
                break;
            }
        }
        Ok(axum::Json(Decisions {
            evaluations: answers,
        })
        .into_response())
    };
    echoed(response.await.unwrap_or_else(Problem::into_response), id)
}

/// The PDP metadata (AuthZEN §9), its endpoints under the scheme and host the request used.
async fn configuration(headers: HeaderMap) -> Response {
    let id = request_id(&headers);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.parse::<axum::http::uri::Authority>().is_ok())
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let base = format!("{scheme}://{host}");
    let body = json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION_PATH}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS_PATH}"),
    });
    let response = ([(header::CACHE_CONTROL, "max-age=300")], axum::Json(body)).into_response();
    echoed(response, id)
}
