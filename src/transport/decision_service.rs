//! The `baton.v1.DecisionService` handlers: convert, decide, reply.

use std::sync::Arc;
use std::time::SystemTime;

use tonic::{Request, Response, Status};

use super::convert;
use super::status::ApiError;
use crate::decision::{Decision, decide};
use crate::pb::decision_service_server::DecisionService;
use crate::pb::{self, batch_authorize_result::Result as ItemResult};
use crate::state::State;

/// Answers decision RPCs from the shared [`State`].
#[derive(Clone)]
pub struct DecisionApi {
    state: Arc<State>,
}

impl DecisionApi {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }

    /// One question to one stamped decision. `prefix` locates the question in a batch.
    fn answer(&self, msg: pb::AuthorizeRequest, prefix: &str) -> Result<Decision, ApiError> {
        let request = convert::decision_request(msg, prefix, &self.state.limits)?;
        let bundle = self.state.bundle();
        let outcome = decide(&bundle, &request, &self.state.settings).map_err(|mut e| {
            for v in &mut e.violations {
                v.field.insert_str(0, prefix);
            }
            e
        })?;
        tracing::debug!(
            caller = %request.caller,
            callee = %request.callee,
            principal = %request.principal,
            effect = ?outcome.effect,
            "decided"
        );
        Ok(Decision::stamp(
            outcome,
            request.transaction_id,
            SystemTime::now(),
        ))
    }
}

#[tonic::async_trait]
impl DecisionService for DecisionApi {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let decision = self.answer(request.into_inner(), "")?;
        Ok(Response::new(decision.into()))
    }

    async fn batch_authorize(
        &self,
        request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let requests = request.into_inner().requests;
        let max = self.state.limits.max_batch_items;
        if requests.len() > max {
            let e = crate::decision::FieldViolation::new(
                "requests",
                format!("has {} items, over the limit of {max}", requests.len()),
            );
            return Err(ApiError::from(crate::decision::InvalidRequest::from(e)).into());
        }
        let results = requests
            .into_iter()
            .enumerate()
            .map(|(i, msg)| {
                let result = match self.answer(msg, &format!("requests[{i}].")) {
                    Ok(decision) => ItemResult::Response(decision.into()),
                    Err(e) => ItemResult::Error(e.into()),
                };
                pb::BatchAuthorizeResult {
                    result: Some(result),
                }
            })
            .collect();
        Ok(Response::new(pb::BatchAuthorizeResponse { results }))
    }
}
