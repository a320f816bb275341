//! The `baton.v1.DecisionService` handlers: convert, establish the chain, decide, sign, reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::FutureExt as _;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::convert;
use super::spans::{self, Spans};
use super::status::ApiError;
use crate::cache::DecisionKey;
use crate::decision::{Decision, DecisionRequest, FieldViolation, InvalidRequest, Outcome, decide};
use crate::delegation::verdict::unix;
use crate::delegation::{trust, upstream};
use crate::metrics::{CacheTier, DecisionOutcome, TokenOperation};
use crate::pb::decision_service_server::DecisionService;
use crate::pb::{self, batch_authorize_result::Result as ItemResult};
use crate::state::State;
use crate::token::Upstream;

/// RFC 8693 §3 token type identifiers.
const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_VERDICT: &str = "urn:baton:params:oauth:token-type:verdict";

/// Answers decision RPCs from the shared [`State`].
#[derive(Clone)]
pub struct DecisionApi {
    state: Arc<State>,
    spans: Arc<Spans>,
}

/// Who is asking Baton: the gateway it authenticated as, if any.
struct Asker {
    gateway: Option<String>,
}

impl Asker {
    fn of(state: &State, metadata: &MetadataMap, peer: Option<SocketAddr>) -> Self {
        let bearer = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        Self {
            gateway: state.delegation.gateways.identify(bearer, peer),
        }
    }
}

/// The token of an `authorization` value; the scheme name is case-insensitive (RFC 6750 §2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl DecisionApi {
    pub fn new(state: Arc<State>) -> Self {
        Self {
            state,
            spans: Arc::new(Spans::new()),
        }
    }

    /// One question to one stamped decision and its verdict. `prefix` locates the question in a
    /// batch.
    fn answer(
        &self,
        mut msg: pb::AuthorizeRequest,
        prefix: &str,
        asker: &Asker,
    ) -> Result<(Decision, Option<String>), ApiError> {
        let subject_token = std::mem::take(&mut msg.subject_token);
        let principal_given = msg.principal.is_some();
        let mut request =
            convert::decision_request(msg, prefix, &self.state.limits, !subject_token.is_empty())?;
        let now = SystemTime::now();
        let upstream = if subject_token.is_empty() {
            let delegation = &self.state.delegation;
            trust::admit_asserted(
                &request,
                delegation.asserted_chains,
                asker.gateway.as_deref(),
            )?;
            None
        } else {
            Some(self.verify(&subject_token, now)?)
        };
        let answered = self.decide_hop(
            request_with(&mut request, upstream, principal_given, now)?,
            prefix,
            now,
        );
        if let Ok((decision, _)) = &answered {
            spans::record_decision(&request, decision);
        }
        answered
    }

    /// Counts a question by what became of it: its decision, or `None` when it was refused
    /// before one.
    fn count(&self, decided: Option<&Decision>) {
        self.state.metrics.decided(match decided {
            Some(d) if d.outcome.effect == crate::decision::Effect::Allow => DecisionOutcome::Allow,
            Some(_) => DecisionOutcome::Deny,
            None => DecisionOutcome::Error,
        });
    }

    fn verify(&self, token: &str, now: SystemTime) -> Result<Upstream, ApiError> {
        let verified = self.spans.in_child("baton.token.verify", || {
            self.state.delegation.verifier.verify(token, unix(now))
        });
        if verified.is_err() {
            self.state.metrics.token_failed(TokenOperation::Verify);
        }
        Ok(verified.map_err(crate::delegation::DelegationError::from)?)
    }

    /// Decides a request whose chain is established, then stamps and signs the answer.
    fn decide_hop(
        &self,
        (request, latest_expiry): (&DecisionRequest, Option<SystemTime>),
        prefix: &str,
        now: SystemTime,
    ) -> Result<(Decision, Option<String>), ApiError> {
        let bundle = self.state.bundle();
        let digest = request.digest();
        let key = DecisionKey::new(bundle.version(), &digest, latest_expiry.map(unix));
        let cached = self
            .spans
            .in_child("baton.cache.lookup", || self.state.cache.get(&key));
        self.state
            .metrics
            .cache_lookup(CacheTier::Local, cached.is_some());
        spans::record_cached(cached.is_some());
        let outcome = match cached {
            Some(cached) => Outcome::clone(&cached),
            None => {
                let decided = self.spans.in_child("baton.evaluate", || {
                    decide(&bundle, request, &self.state.settings)
                });
                let outcome = decided.map_err(|mut e| {
                    for v in &mut e.violations {
                        v.field.insert_str(0, prefix);
                    }
                    e
                })?;
                self.state.cache.put(key, Arc::new(outcome.clone()));
                outcome
            }
        };
        let decision = Decision::stamp(outcome, request.transaction_id.clone(), now, latest_expiry);
        let delegation = &self.state.delegation;
        let verdict = self
            .spans
            .in_child("baton.verdict.sign", || {
                delegation
                    .verdicts
                    .issue(delegation.keyring.signer(), &decision, request, &digest)
            })
            .map_err(|e| {
                self.state.metrics.token_failed(TokenOperation::Sign);
                ApiError::Signing(e)
            })?;
        tracing::debug!(
            caller = %request.caller,
            callee = %request.callee,
            principal = %request.principal,
            effect = ?decision.outcome.effect,
            "decided"
        );
        Ok((decision, verdict))
    }
}

/// Applies a verified upstream credential, returning the request and its latest expiry.
fn request_with(
    request: &mut DecisionRequest,
    upstream: Option<Upstream>,
    principal_given: bool,
    now: SystemTime,
) -> Result<(&DecisionRequest, Option<SystemTime>), ApiError> {
    let Some(upstream) = upstream else {
        return Ok((request, None));
    };
    let bound = UNIX_EPOCH + Duration::from_secs(upstream.exp_max);
    upstream::apply(request, upstream, principal_given, unix(now))?;
    Ok((request, Some(bound)))
}

fn response(decision: Decision, verdict: Option<String>) -> pb::AuthorizeResponse {
    let mut response = pb::AuthorizeResponse::from(decision);
    response.verdict = verdict.unwrap_or_default();
    response
}

#[tonic::async_trait]
impl DecisionService for DecisionApi {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let started = Instant::now();
        let cx = self.spans.start_rpc("Authorize", request.metadata());
        let asker = Asker::of(&self.state, request.metadata(), request.remote_addr());
        let answered = async { self.answer(request.into_inner(), "", &asker) }
            .with_context(cx.clone())
            .await;
        self.count(answered.as_ref().ok().map(|(decision, _)| decision));
        let reply = answered
            .map(|(decision, verdict)| Response::new(response(decision, verdict)))
            .map_err(Status::from);
        spans::finish(&cx, &reply);
        self.state.metrics.authorize_took(started.elapsed());
        reply
    }

    async fn batch_authorize(
        &self,
        request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let cx = self.spans.start_rpc("BatchAuthorize", request.metadata());
        let asker = Asker::of(&self.state, request.metadata(), request.remote_addr());
        let reply = self
            .batch(request.into_inner().requests, &asker)
            .with_context(cx.clone())
            .await;
        spans::finish(&cx, &reply);
        reply
    }

    async fn exchange(
        &self,
        request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let cx = self.spans.start_rpc("Exchange", request.metadata());
        let reply = self
            .exchange_token(request.into_inner())
            .with_context(cx.clone())
            .await;
        if reply.is_err() {
            self.count(None);
        }
        spans::finish(&cx, &reply);
        reply
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks: self.state.jwks_json(),
        }))
    }
}

impl DecisionApi {
    async fn batch(
        &self,
        requests: Vec<pb::AuthorizeRequest>,
        asker: &Asker,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let max = self.state.limits.max_batch_items;
        if requests.len() > max {
            let e = FieldViolation::new(
                "requests",
                format!("has {} items, over the limit of {max}", requests.len()),
            );
            return Err(ApiError::from(InvalidRequest::from(e)).into());
        }
        let mut results = Vec::with_capacity(requests.len());
        for (i, msg) in requests.into_iter().enumerate() {
            let item = self.spans.start_batch_item(i);
            let answered = async { self.answer(msg, &format!("requests[{i}]."), asker) }
                .with_context(item.clone())
                .await;
            self.count(answered.as_ref().ok().map(|(decision, _)| decision));
            spans::finish_item(&item, answered.is_ok());
            let result = match answered {
                Ok((decision, verdict)) => ItemResult::Response(response(decision, verdict)),
                Err(e) => ItemResult::Error(e.into()),
            };
            results.push(pb::BatchAuthorizeResult {
                result: Some(result),
            });
        }
        Ok(Response::new(pb::BatchAuthorizeResponse { results }))
    }

    /// RFC 8693 token exchange: the holder of a verified subject token asks for a verdict to
    /// call `audience` (or `resource`).
    async fn exchange_token(
        &self,
        msg: pb::ExchangeRequest,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let invalid = |field: &str, why: &str| -> Status {
            ApiError::from(InvalidRequest::from(FieldViolation::new(field, why))).into()
        };
        if msg.subject_token.is_empty() {
            return Err(invalid("subject_token", "is required"));
        }
        if ![
            "",
            TOKEN_TYPE_JWT,
            TOKEN_TYPE_ACCESS_TOKEN,
            TOKEN_TYPE_VERDICT,
        ]
        .contains(&msg.subject_token_type.as_str())
        {
            return Err(invalid(
                "subject_token_type",
                "must be a JWT, access-token or Baton verdict token type (RFC 8693 §3)",
            ));
        }
        let (field, target) = if msg.resource.is_empty() {
            ("audience", msg.audience)
        } else {
            ("resource", msg.resource)
        };
        let Some((kind, id)) = target.split_once(':') else {
            return Err(invalid(field, "must name the agent as `Agent:id`"));
        };
        let now = SystemTime::now();
        let upstream = self.verify(&msg.subject_token, now)?;
        let Some(holder) = upstream.actors.last().cloned() else {
            return Err(invalid("subject_token", "names no actor"));
        };
        let authorize = pb::AuthorizeRequest {
            caller: Some(convert::entity_ref(&holder)),
            callee: Some(pb::EntityRef {
                r#type: kind.to_owned(),
                id: id.to_owned(),
            }),
            principal: None,
            scopes: msg.scope.split_whitespace().map(str::to_owned).collect(),
            context: msg.context,
            ..Default::default()
        };
        let mut request = convert::decision_request(authorize, "", &self.state.limits, true)
            .map_err(ApiError::from)?;
        let (decision, verdict) = self.decide_hop(
            request_with(&mut request, Some(upstream), false, now)?,
            "",
            now,
        )?;
        self.count(Some(&decision));
        spans::record_decision(&request, &decision);
        let granted = decision.outcome.granted.join(" ");
        let expires_in = decision.ttl_secs;
        Ok(Response::new(pb::ExchangeResponse {
            issued_token_type: if verdict.is_some() {
                TOKEN_TYPE_VERDICT.to_owned()
            } else {
                String::new()
            },
            issued_token: verdict.clone().unwrap_or_default(),
            token_type: "N_A".to_owned(),
            expires_in,
            scope: granted,
            decision: Some(response(decision, verdict)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
