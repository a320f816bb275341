//! The `baton.v1.DecisionService` door: each RPC converts its message into questions, asks
//! the pipeline, and converts the answers back. No step of a decision is assembled here.

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::FutureExt as _;
use tonic::{Request, Response, Status};

use super::convert::{self, TOKEN_TYPE_VERDICT};
use super::spans::{self, Rpc, Spans};
use super::status::ApiError;
use crate::decision::{FieldViolation, InvalidRequest};
use crate::pb::decision_service_server::DecisionService;
use crate::pb::{self, batch_authorize_result::Result as ItemResult};
use crate::pipeline::{Answered, Asker, Pipeline, PipelineError};

/// Answers decision RPCs through the [`Pipeline`].
#[derive(Clone)]
pub struct DecisionApi {
    pipeline: Arc<Pipeline>,
    jwks: Arc<str>,
    spans: Arc<Spans>,
}

/// Who asks, from what the transport knows of the call: its bearer token, its address and,
/// over mutual TLS, its certificate.
pub(super) fn asker<T>(request: &tonic::Request<T>) -> Asker {
    let metadata = request.metadata();
    let (peer, certificate) = match request.extensions().get::<crate::tls::PeerInfo>() {
        Some(info) => (Some(info.addr), info.certificate.clone()),
        None => (request.remote_addr(), None),
    };
    let bearer = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    Asker {
        bearer,
        peer,
        certificate,
        // The span's trace when tracing is on; else whatever `traceparent` names.
        trace_id: crate::telemetry::current_trace_id().or_else(|| super::trace::trace_id(metadata)),
    }
}

/// The token of an `authorization` value; the scheme name is case-insensitive (RFC 6750 §2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn response(answered: Answered) -> pb::AuthorizeResponse {
    let mut response = pb::AuthorizeResponse::from(answered.decision);
    response.verdict = answered.verdict.unwrap_or_default();
    response
}

impl DecisionApi {
    /// The decision service over `pipeline`; the JWKS it serves is fixed from the keys
    /// published now.
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        let jwks = pipeline
            .delegation()
            .keyring
            .published()
            .to_jwks()
            .to_string();
        Self {
            pipeline,
            jwks: jwks.into(),
            spans: Arc::new(Spans::new()),
        }
    }

    /// One `AuthorizeRequest`, converted and asked; `prefix` locates its fields in a batch.
    async fn ask(
        &self,
        msg: pb::AuthorizeRequest,
        asker: &Asker,
        prefix: &str,
    ) -> Result<Answered, PipelineError> {
        let received = Instant::now();
        let question = convert::question(msg, self.pipeline.limits())
            .map_err(|e| self.pipeline.refused(e, received).located(prefix))?;
        self.pipeline
            .decide(question, asker)
            .await
            .map_err(|e| e.located(prefix))
    }

    async fn batch(
        &self,
        requests: Vec<pb::AuthorizeRequest>,
        asker: &Asker,
    ) -> Result<pb::BatchAuthorizeResponse, ApiError> {
        let max = self.pipeline.limits().max_batch_items;
        if requests.len() > max {
            let e = FieldViolation::new(
                "requests",
                format!("has {} items, over the limit of {max}", requests.len()),
            );
            return Err(InvalidRequest::from(e).into());
        }
        let mut results = Vec::with_capacity(requests.len());
        for (i, msg) in requests.into_iter().enumerate() {
            let item = self.spans.start_batch_item(i);
            let answered = self
                .ask(msg, asker, &format!("requests[{i}]."))
                .with_context(item.clone())
                .await;
            spans::finish_item(&item, answered.is_ok());
            let result = match answered {
                Ok(answered) => ItemResult::Response(response(answered)),
                Err(e) => ItemResult::Error(ApiError::from(e).into()),
            };
            results.push(pb::BatchAuthorizeResult {
                result: Some(result),
            });
        }
        Ok(pb::BatchAuthorizeResponse { results })
    }

    /// RFC 8693 token exchange: the holder of a verified subject token asks for a verdict to
    /// call `resource` (or `audience`).
    async fn exchange_token(
        &self,
        msg: pb::ExchangeRequest,
        asker: &Asker,
    ) -> Result<pb::ExchangeResponse, PipelineError> {
        let received = Instant::now();
        let question = convert::exchange_question(msg, self.pipeline.limits())
            .map_err(|e| self.pipeline.refused(e, received))?;
        let answered = self.pipeline.decide(question, asker).await?;
        let granted = answered.decision.outcome.granted.join(" ");
        let expires_in = answered.decision.ttl_secs;
        let issued = answered.verdict.clone().unwrap_or_default();
        Ok(pb::ExchangeResponse {
            issued_token_type: if issued.is_empty() {
                String::new()
            } else {
                TOKEN_TYPE_VERDICT.to_owned()
            },
            issued_token: issued,
            token_type: "N_A".to_owned(),
            expires_in,
            scope: granted,
            decision: Some(response(answered)),
        })
    }
}

#[tonic::async_trait]
impl DecisionService for DecisionApi {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let cx = self.spans.start_rpc(Rpc::Authorize, request.metadata());
        let reply = async {
            let asker = asker(&request);
            self.ask(request.into_inner(), &asker, "").await
        }
        .with_context(cx.clone())
        .await
        .map(|answered| Response::new(response(answered)))
        .map_err(|e| Status::from(ApiError::from(e)));
        spans::finish(&cx, &reply);
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
            let asker = asker(&request);
            self.batch(request.into_inner().requests, &asker).await
        }
        .with_context(cx.clone())
        .await
        .map(Response::new)
        .map_err(Status::from);
        spans::finish(&cx, &reply);
        reply
    }

    async fn exchange(
        &self,
        request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        let cx = self.spans.start_rpc(Rpc::Exchange, request.metadata());
        let reply = async {
            let asker = asker(&request);
            self.exchange_token(request.into_inner(), &asker).await
        }
        .with_context(cx.clone())
        .await
        .map(Response::new)
        .map_err(|e| Status::from(ApiError::from(e)));
        spans::finish(&cx, &reply);
        reply
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks: self.jwks.to_string(),
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
