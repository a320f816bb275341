//! Everything the pipeline can refuse a question with. A policy DENY is not an error.

use crate::approval::ApprovalError;
use crate::decision::ApprovalRefused;
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

/// What kind of refusal an error is, for doors that answer in their own codes: gRPC status
/// codes, HTTP statuses, an AuthZEN `decision: false`. One table, so every door agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is malformed or contradicts its own credential.
    InvalidArgument,
    /// The hop's credential does not verify, or its grant has ended.
    Unauthenticated,
    /// The hop's credential is not this caller's, or its chain may not be asserted.
    PermissionDenied,
    /// An approval the request names is unknown.
    NotFound,
    /// An approval the request names is decided, used or expired.
    FailedPrecondition,
    /// A store changed under the question too often; retrying may succeed.
    Aborted,
    /// A store could not answer.
    Unavailable,
    /// Baton itself failed; no verdict left it.
    Internal,
}

impl ErrorClass {
    /// The class's name, as gRPC spells the matching status code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// The class of a delegation error.
    pub fn of_delegation(e: &DelegationError) -> Self {
        use DelegationError as D;
        match e {
            D::ChainBesideToken { .. } | D::TransactionMismatch { .. } => Self::InvalidArgument,
            D::TokenRejected(_) | D::GrantExpired { .. } => Self::Unauthenticated,
            D::NotTheHolder { .. }
            | D::PrincipalMismatch { .. }
            | D::AssertedChainRefused(_)
            | D::CallerNotAuthenticated { .. }
            | D::TokenBindingMismatch
            | D::BoundTokenRequired => Self::PermissionDenied,
        }
    }

    /// The class of an approval error.
    pub fn of_approval(e: &ApprovalError) -> Self {
        match e {
            ApprovalError::NotFound => Self::NotFound,
            ApprovalError::NotPending(_)
            | ApprovalError::Expired
            | ApprovalError::Refused(
                ApprovalRefused::NotPending(_)
                | ApprovalRefused::Expired
                | ApprovalRefused::AlreadyApprovedBy(_),
            ) => Self::FailedPrecondition,
            ApprovalError::Refused(
                ApprovalRefused::SelfApproval(_) | ApprovalRefused::IdentityRequired(_),
            )
            | ApprovalError::NotInDirectory(_) => Self::PermissionDenied,
            ApprovalError::Rationale(_) => Self::InvalidArgument,
            ApprovalError::Contended => Self::Aborted,
            ApprovalError::Unavailable => Self::Unavailable,
        }
    }
}

impl PipelineError {
    /// What kind of refusal this is.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidArgument(_) => ErrorClass::InvalidArgument,
            Self::Delegation(e) => ErrorClass::of_delegation(e),
            Self::Signing(_) => ErrorClass::Internal,
            Self::Approval(e) => ErrorClass::of_approval(e),
        }
    }

    /// A stable machine-readable reason, where there is one beyond the class.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Delegation(e) => Some(e.code()),
            Self::Approval(e) => e.reason(),
            _ => None,
        }
    }
}
