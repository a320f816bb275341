//! The `baton.v1.AuditService` handler: convert, query the trail, reply.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::audit_convert::{audit_query, page_token};
use super::status::ApiError;
use crate::pb::{self, audit_service_server::AuditService};
use crate::state::State;

/// Answers audit queries from the shared [`State`]'s trail.
#[derive(Clone)]
pub struct AuditApi {
    state: Arc<State>,
}

impl AuditApi {
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let query = audit_query(request.into_inner()).map_err(ApiError::from)?;
        let page = self
            .state
            .audit
            .query(query)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::QueryAuditResponse {
            records: page
                .records
                .into_iter()
                .map(pb::AuditRecord::from)
                .collect(),
            next_page_token: page_token(page.next_offset),
        }))
    }
}
