//! Everything the pipeline can refuse a question with. A policy DENY is not an error.

use crate::approval::ApprovalError;
use crate::decision::InvalidRequest;
use crate::delegation::DelegationError;
use crate::token::JwsError;

/// Why a question got no decision. Every variant fails closed: no verdict leaves Baton.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request is malformed, breaks a size limit or a role rule, or its task context
    /// does not type-check.
    #[error(transparent)]
    InvalidArgument(#[from] InvalidRequest),
    /// The hop's credentials do not entitle it to a decision: no trusted gateway, or a
    /// subject token that does not verify or does not fit the request.
    #[error(transparent)]
    Delegation(#[from] DelegationError),
    /// Signing should not fail; if it does, no verdict (and so no allow) leaves Baton.
    #[error("cannot sign the verdict")]
    Signing(#[source] JwsError),
    /// The approval store could not be read or changed.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

impl PipelineError {
    /// Locates every field this error names inside a larger message: `requests[3].` before
    /// each, for an item of a batch. A whole-request field (`request`) becomes the item.
    pub fn located(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        if let Self::InvalidArgument(e) = &mut self {
            for v in &mut e.violations {
                v.field = if v.field == "request" {
                    prefix.trim_end_matches('.').to_owned()
                } else {
                    format!("{prefix}{}", v.field)
                };
            }
        }
        self
    }
}
