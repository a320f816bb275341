//! The `baton.v1.DecisionService` handlers: convert, establish the chain, decide, sign, reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::FutureExt as _;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::convert;
use super::spans::{self, Rpc, Spans};
use super::status::ApiError;
use crate::approval::{self, Approval, ApprovalError, ApprovalRef, ApprovalStatus, Gate};
use crate::audit::{Asked, AuditRecord};
use crate::bundle::PolicyBundle;
use crate::cache::Source;
use crate::decision::{
    Decision, DecisionRequest, DelegationChain, DenialCode, Effect, FieldViolation, InvalidRequest,
    Outcome, decide,
};
use crate::delegation::verdict::unix;
use crate::delegation::{trust, upstream};
use crate::metrics::{CacheTier, DecisionOutcome, TokenOperation};
use crate::pb::decision_service_server::DecisionService;
use crate::pb::{self, batch_authorize_result::Result as ItemResult};
use crate::revocation::{Revocation, revoked_outcome};
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

/// Who is asking Baton: the gateway it authenticated as, if any, and the trace of the ask.
struct Asker {
    gateway: Option<String>,
    trace_id: Option<String>,
}

impl Asker {
    fn of(state: &State, metadata: &MetadataMap, peer: Option<SocketAddr>) -> Self {
        let bearer = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        Self {
            gateway: state.delegation.gateways.identify(bearer, peer),
            // The span's trace when tracing is on; else whatever `traceparent` names.
            trace_id: crate::telemetry::current_trace_id()
                .or_else(|| super::trace::trace_id(metadata)),
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

    /// Counts a question by what became of it: its decision, or `None` when it was refused
    /// before one.
    fn count(&self, decided: Option<&Decision>) {
        self.state.metrics.decided(match decided {
            Some(d) if d.outcome.effect == Effect::Allow => DecisionOutcome::Allow,
            Some(_) => DecisionOutcome::Deny,
            None => DecisionOutcome::Error,
        });
    }

    /// One question to one stamped decision and its verdict. `prefix` locates the question in a
    /// batch.
    async fn answer(
        &self,
        mut msg: pb::AuthorizeRequest,
        prefix: &str,
        asker: &Asker,
    ) -> Result<(Decision, Option<String>), ApiError> {
        let started = Instant::now();
        let subject_token = std::mem::take(&mut msg.subject_token);
        let approval_id = std::mem::take(&mut msg.approval_id);
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
        let token_id = upstream.as_ref().map(|u| u.jti.clone());
        let hop = request_with(&mut request, upstream, principal_given, now)?;
        // Before any cache: a revocation takes effect on the very next request.
        let revocations = self.state.revocations.snapshot();
        if let Some(revoked) = revocations.check(hop.0, token_id.as_deref(), unix(now)) {
            let decision = self.revoked(hop, revoked, now);
            self.audit(hop.0, &decision, (asker, started), "revocation")
                .await;
            return Ok((decision, None));
        }
        let answered = self
            .decide_hop(hop, prefix, now, &approval_id, (asker, started))
            .await;
        if let Ok((decision, _)) = &answered {
            spans::record_decision(&request, decision);
        }
        answered
    }

    /// The deny of a hop that touches a revocation.
    fn revoked(
        &self,
        (request, latest_expiry): (&DecisionRequest, Option<SystemTime>),
        revocation: &Revocation,
        now: SystemTime,
    ) -> Decision {
        let chain = DelegationChain::new(
            &request.principal,
            &request.delegation_chain,
            &request.caller,
            &request.callee,
        );
        let bundle = self.state.bundle();
        let outcome = revoked_outcome(request, chain.into_members(), revocation, bundle.version());
        tracing::info!(target = %revocation.target, callee = %request.callee, "denied a revoked hop");
        Decision::stamp(outcome, request.transaction_id.clone(), now, latest_expiry)
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
    async fn decide_hop(
        &self,
        (request, latest_expiry): (&DecisionRequest, Option<SystemTime>),
        prefix: &str,
        now: SystemTime,
        approval_id: &str,
        (asker, started): (&Asker, Instant),
    ) -> Result<(Decision, Option<String>), ApiError> {
        let bundle = self.state.bundle();
        let digest = request.digest();
        let (outcome, source) = self
            .outcome(&bundle, request, &digest, latest_expiry, prefix)
            .await?;
        let needs_approval = outcome.effect == Effect::Allow
            && outcome
                .obligations
                .contains(&self.state.approvals.obligation);
        let mut decision =
            Decision::stamp(outcome, request.transaction_id.clone(), now, latest_expiry);
        if needs_approval {
            self.gate(&mut decision, &digest, approval_id, now).await?;
        }
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
            source = source.as_str(),
            "decided"
        );
        self.audit(request, &decision, (asker, started), source.as_str())
            .await;
        Ok((decision, verdict))
    }

    /// One audit record for one answer, whichever way it was reached.
    async fn audit(
        &self,
        request: &DecisionRequest,
        decision: &Decision,
        (asker, started): (&Asker, Instant),
        source: &'static str,
    ) {
        if self.state.audit.is_on() {
            let asked = Asked {
                pdp_caller: asker.gateway.clone(),
                trace_id: asker.trace_id.clone(),
                latency: started.elapsed(),
                source,
            };
            let record = AuditRecord::decision(request, decision, asked);
            self.state.audit.record(record).await;
        }
    }

    /// Holds an allow that needs a human until one approved exactly this request: the first
    /// ask opens a pending approval, a later one with its id consumes it, once.
    async fn gate(
        &self,
        decision: &mut Decision,
        digest: &[u8; 32],
        approval_id: &str,
        now: SystemTime,
    ) -> Result<(), ApiError> {
        let approvals = &self.state.approvals;
        let (hash, now) = (hex(digest), unix(now));
        if approval_id.is_empty() {
            let approval = Approval {
                id: uuid::Uuid::now_v7().to_string(),
                status: ApprovalStatus::Pending,
                request_hash: hash,
                chain: decision.outcome.chain.clone(),
                scopes: decision.outcome.granted.clone(),
                obligations: decision.outcome.obligations.clone(),
                transaction_id: decision.transaction_id.clone(),
                decision_id: decision.decision_id.clone(),
                requested_at: now,
                expires_at: now.saturating_add(approvals.ttl.as_secs()),
                decided_by: None,
                decided_at: None,
                rationale: None,
                used_by_decision: None,
            };
            approvals.create(&approval, now).await?;
            decision.approval = Some(ApprovalRef::from(&approval));
            return Ok(());
        }
        let decision_id = decision.decision_id.clone();
        let used = approvals
            .update(approval_id, |a| match a.gate(&hash, now) {
                Gate::Open => {
                    a.status = ApprovalStatus::Used;
                    a.used_by_decision = Some(decision_id.clone());
                    Ok(())
                }
                gate => Err(Held::Gate(gate, ApprovalRef::from(&*a))),
            })
            .await;
        match used {
            Ok(approval) => {
                // The approval meets the obligation: the minter has nothing left to enforce.
                let obligation = &approvals.obligation;
                decision.outcome.obligations.retain(|o| o != obligation);
                decision.approval = Some(ApprovalRef::from(&approval));
            }
            Err(Held::Gate(Gate::Pending, pending)) => decision.approval = Some(pending),
            Err(Held::Gate(Gate::Closed(code, detail), _)) => {
                decision.deny_with(approval::closed(decision.outcome.clone(), code, detail));
            }
            Err(Held::Store(ApprovalError::NotFound)) => {
                let detail = format!("there is no approval {approval_id}");
                let outcome = decision.outcome.clone();
                decision.deny_with(approval::closed(
                    outcome,
                    DenialCode::ApprovalMismatch,
                    detail,
                ));
            }
            Err(Held::Gate(Gate::Open, _)) => {}
            Err(Held::Store(e)) => return Err(e.into()),
        }
        Ok(())
    }

    /// The outcome from the nearest tier that has it, or from evaluating (then cached).
    async fn outcome(
        &self,
        bundle: &PolicyBundle,
        request: &DecisionRequest,
        digest: &[u8; 32],
        latest_expiry: Option<SystemTime>,
        prefix: &str,
    ) -> Result<(Outcome, Source), ApiError> {
        let cache = &self.state.cache;
        let key = cache.key(bundle.version(), digest, latest_expiry.map(unix));
        let metrics = &self.state.metrics;
        let local = cache.get_local(&key);
        metrics.cache_lookup(CacheTier::Local, local.is_some());
        if let Some(cached) = local {
            spans::record_source(Source::Local);
            return Ok((Outcome::clone(&cached), Source::Local));
        }
        if cache.asks_shared() {
            let shared = self.spans.in_child_async(
                "baton.cache.lookup",
                KeyValue::new("baton.cache.tier", CacheTier::Redis.label()),
                cache.get_shared(&key, bundle.version(), latest_expiry),
            );
            if let Some(shared) = shared.await {
                metrics.cache_lookup(CacheTier::Redis, shared.is_some());
                if let Some(shared) = shared {
                    spans::record_source(Source::Redis);
                    return Ok((Outcome::clone(&shared), Source::Redis));
                }
            }
        }
        spans::record_source(Source::Evaluated);
        let started = Instant::now();
        let decided = self.spans.in_child("baton.evaluate", || {
            decide(bundle, request, &self.state.settings)
        });
        let outcome = decided.map_err(|mut e| {
            for v in &mut e.violations {
                v.field.insert_str(0, prefix);
            }
            e
        })?;
        cache.evaluated_in(started.elapsed());
        cache.put(&key, Arc::new(outcome.clone()), latest_expiry);
        Ok((outcome, Source::Evaluated))
    }
}

/// Why an approval did not open.
enum Held {
    Gate(Gate, ApprovalRef),
    Store(ApprovalError),
}

impl From<ApprovalError> for Held {
    fn from(e: ApprovalError) -> Self {
        Self::Store(e)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        let cx = self.spans.start_rpc(Rpc::Authorize, request.metadata());
        let answered = async {
            let asker = Asker::of(&self.state, request.metadata(), request.remote_addr());
            self.answer(request.into_inner(), "", &asker).await
        }
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
        let cx = self
            .spans
            .start_rpc(Rpc::BatchAuthorize, request.metadata());
        let reply = async {
            let asker = Asker::of(&self.state, request.metadata(), request.remote_addr());
            self.batch(request.into_inner().requests, &asker).await
        }
        .with_context(cx.clone())
        .await;
        spans::finish(&cx, &reply);
        reply
    }

    async fn exchange(
        &self,
        request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let cx = self.spans.start_rpc(Rpc::Exchange, request.metadata());
        let reply = async {
            let asker = Asker::of(&self.state, request.metadata(), request.remote_addr());
            self.exchange_token(request.into_inner(), &asker).await
        }
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
            let answered = self
                .answer(msg, &format!("requests[{i}]."), asker)
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
        asker: &Asker,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let started = Instant::now();
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
        let hop = request_with(&mut request, Some(upstream), false, now)?;
        let (decision, verdict) = self.decide_hop(hop, "", now, "", (asker, started)).await?;
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
