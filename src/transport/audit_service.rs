//! The `baton.v1.AuditService` handler: convert, query the trail, reply. The trail says who
//! acted on whose behalf, so it is mounted behind the admin interceptor, and every query is
//! logged with its author.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::admin_auth::author;
use super::audit_convert::{audit_query, page_token};
use super::status::ApiError;
use crate::audit::{Audit, AuditQuery, Selector};
use crate::pb::{self, audit_service_server::AuditService};

/// Answers audit queries from the trail every decision is recorded in.
#[derive(Clone)]
pub struct AuditApi {
    audit: Arc<Audit>,
}

impl AuditApi {
    /// Queries answered from `audit`'s trail.
    pub fn new(audit: Arc<Audit>) -> Self {
        Self { audit }
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let author = author(&request)?;
        let query = audit_query(request.into_inner()).map_err(ApiError::from)?;
        log(&author, &query);
        let page = self.audit.query(query).await.map_err(ApiError::from)?;
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

/// Reading the trail is itself worth a trace: who looked at which transaction, principal or
/// agent. Logged before the read, so a read that fails is on record too.
fn log(author: &str, query: &AuditQuery) {
    let (by, selected) = match &query.selector {
        Selector::All => ("all", ""),
        Selector::DecisionId(id) => ("decision_id", id.as_str()),
        Selector::Transaction(id) => ("transaction_id", id.as_str()),
        Selector::Principal(who) => ("principal", who.as_str()),
        Selector::Agent(id) => ("agent", id.as_str()),
    };
    let rfc3339 = |t: std::time::SystemTime| humantime::format_rfc3339_millis(t).to_string();
    tracing::info!(
        author,
        by,
        selected,
        start_time = query.from.map(rfc3339),
        end_time = query.until.map(rfc3339),
        offset = query.offset,
        page_size = query.page_size,
        "audit query"
    );
}
