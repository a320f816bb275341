//! The one table from Baton's errors to gRPC status codes. A policy DENY is not an error.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::admission::Rejection;
use crate::approval::ApprovalError;
use crate::audit::AuditError;
use crate::decision::InvalidRequest;
use crate::delegation::DelegationError;
use crate::pb;
use crate::pipeline::{ErrorClass, PipelineError};
use crate::policy_store::StoreError;
use crate::policy_store::replica::ReplicaError;
use crate::revocation::RevocationError;
use crate::token::JwsError;

/// The most field violations an admin error lists.
const MAX_VIOLATIONS: usize = 20;
/// The most bytes of message and violations an admin error carries.
const MAX_DETAIL_BYTES: usize = 8 * 1024;

/// The `domain` of `google.rpc.ErrorInfo` details.
const ERROR_DOMAIN: &str = "baton";

/// Everything a decision or governance RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: `INVALID_ARGUMENT` with every field violation.
    #[error(transparent)]
    InvalidArgument(#[from] InvalidRequest),
    /// The hop's credentials do not entitle it to a decision; the code depends on why.
    #[error(transparent)]
    Delegation(#[from] DelegationError),
    /// Signing should not fail; if it does, no verdict (and so no allow) leaves Baton.
    #[error("cannot sign the verdict")]
    Signing(#[source] JwsError),
    /// An approval is unknown, already decided, expired, contended, or its store unreachable.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// A revocation could not be recorded or lifted.
    #[error(transparent)]
    Revocation(#[from] RevocationError),
    /// The audit trail is off or cannot be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl From<crate::governance::GovernanceError> for ApiError {
    fn from(e: crate::governance::GovernanceError) -> Self {
        use crate::governance::GovernanceError as G;
        match e {
            G::Invalid(e) => Self::InvalidArgument(e),
            G::Approval(e) => Self::Approval(e),
            G::Revocation(e) => Self::Revocation(e),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::InvalidArgument(e) => Self::InvalidArgument(e),
            PipelineError::Delegation(e) => Self::Delegation(e),
            PipelineError::Signing(e) => Self::Signing(e),
            PipelineError::Approval(e) => Self::Approval(e),
        }
    }
}

impl ApiError {
    /// The status code and its gRPC name, for batch items that carry it as text.
    fn code(&self) -> (Code, &'static str) {
        let class = match self {
            Self::InvalidArgument(_) => ErrorClass::InvalidArgument,
            Self::Delegation(e) => ErrorClass::of_delegation(e),
            Self::Signing(_) => ErrorClass::Internal,
            Self::Approval(e) => ErrorClass::of_approval(e),
            Self::Revocation(RevocationError::Unavailable) => ErrorClass::Unavailable,
            Self::Audit(AuditError::Off) => ErrorClass::FailedPrecondition,
            Self::Audit(AuditError::Unavailable(_)) => ErrorClass::Unavailable,
            Self::Revocation(RevocationError::File { .. } | RevocationError::Corrupt { .. })
            | Self::Audit(AuditError::NoRedis | AuditError::Open { .. }) => ErrorClass::Internal,
        };
        (code_of(class), class.as_str())
    }

    fn violations(&self) -> Vec<tonic_types::FieldViolation> {
        match self {
            Self::InvalidArgument(e) => e
                .violations
                .iter()
                .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                .collect(),
            Self::Delegation(e @ DelegationError::ChainBesideToken { field }) => {
                vec![tonic_types::FieldViolation::new(*field, e.to_string())]
            }
            Self::Approval(e @ ApprovalError::Rationale(_)) => {
                vec![tonic_types::FieldViolation::new("rationale", e.to_string())]
            }
            Self::Delegation(e @ DelegationError::TransactionMismatch { .. }) => {
                vec![tonic_types::FieldViolation::new(
                    "transaction_id",
                    e.to_string(),
                )]
            }
            _ => Vec::new(),
        }
    }

    /// The machine-readable reason, for `google.rpc.ErrorInfo`.
    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Delegation(e) => Some(e.code()),
            Self::Approval(e) => e.reason(),
            _ => None,
        }
    }
}

/// The gRPC status code of a class of error.
pub fn code_of(class: ErrorClass) -> Code {
    match class {
        ErrorClass::InvalidArgument => Code::InvalidArgument,
        ErrorClass::Unauthenticated => Code::Unauthenticated,
        ErrorClass::PermissionDenied => Code::PermissionDenied,
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::FailedPrecondition => Code::FailedPrecondition,
        ErrorClass::Aborted => Code::Aborted,
        ErrorClass::Unavailable => Code::Unavailable,
        ErrorClass::Internal => Code::Internal,
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        if let ApiError::Signing(cause) = &e {
            tracing::error!(error = %cause, "verdict signing failed");
        }
        if let ApiError::Audit(AuditError::Unavailable(cause)) = &e {
            tracing::warn!(error = %cause, "cannot read the audit trail");
        }
        let mut details = ErrorDetails::new();
        let violations = e.violations();
        if !violations.is_empty() {
            details.set_bad_request(violations);
        }
        if let Some(reason) = e.reason() {
            details.set_error_info(reason, ERROR_DOMAIN, HashMap::<String, String>::new());
        }
        let (code, _) = e.code();
        let message = if code == Code::Internal {
            // The cause stays in the log: it may name local paths.
            tracing::error!(error = %crate::telemetry::chain(&e), "internal error");
            "internal error; see the server log".to_owned()
        } else {
            e.to_string()
        };
        Status::with_error_details(code, message, details)
    }
}

impl From<ApiError> for pb::ItemError {
    fn from(e: ApiError) -> Self {
        let message = match e.reason() {
            Some(reason) => format!("{reason}: {e}"),
            None => e.to_string(),
        };
        pb::ItemError {
            code: e.code().1.to_owned(),
            message,
            field_violations: e
                .violations()
                .into_iter()
                .map(|v| pb::FieldViolation {
                    field: v.field,
                    description: v.description,
                })
                .collect(),
        }
    }
}

/// Everything an admin RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The call presented no admin token, or not a configured one.
    #[error("an admin call needs `authorization: Bearer <admin token>` with a configured token")]
    Unauthenticated,
    /// The bundle did not pass admission.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The bundle store could not do what was asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReplicaError> for AdminError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Rejected(r) => Self::Rejected(r),
            ReplicaError::Store(s) => Self::Store(s),
            // Only a start refuses so; should an admin call meet it, the store is unreadable.
            ReplicaError::Unrecoverable(why) => Self::Store(StoreError::Corrupt(why)),
        }
    }
}

impl AdminError {
    fn code(&self) -> Code {
        match self {
            Self::Unauthenticated => Code::Unauthenticated,
            Self::Rejected(_) => Code::InvalidArgument,
            Self::Store(StoreError::UnknownRevision(_)) => Code::NotFound,
            Self::Store(StoreError::NothingToRollBack) => Code::FailedPrecondition,
            Self::Store(StoreError::Conflict { .. }) => Code::Aborted,
            Self::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            Self::Store(StoreError::Corrupt(_)) => Code::Internal,
        }
    }

    /// The machine-readable reason, for `google.rpc.ErrorInfo`.
    fn reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "ADMIN_TOKEN_REQUIRED",
            Self::Rejected(Rejection::Invalid(_)) => "BUNDLE_INVALID",
            Self::Rejected(Rejection::TestsFailed { .. }) => "BUNDLE_TESTS_FAILED",
            Self::Rejected(Rejection::TooLarge { .. } | Rejection::TooManyPolicies { .. }) => {
                "BUNDLE_TOO_LARGE"
            }
            Self::Store(StoreError::UnknownRevision(_)) => "UNKNOWN_REVISION",
            Self::Store(StoreError::NothingToRollBack) => "NOTHING_TO_ROLL_BACK",
            Self::Store(StoreError::Conflict { .. }) => "ACTIVE_BUNDLE_CHANGED",
            Self::Store(StoreError::Unavailable(_)) => "STORE_UNAVAILABLE",
            Self::Store(StoreError::Corrupt(_)) => "STORE_CORRUPT",
        }
    }

    /// A rejected bundle's problems, each located: `file:line:column` or the failing case.
    fn violations(&self) -> Vec<tonic_types::FieldViolation> {
        match self {
            Self::Rejected(Rejection::Invalid(e)) => e
                .errors
                .iter()
                .map(|d| {
                    tonic_types::FieldViolation::new(
                        format!("{}:{}:{}", d.file, d.line, d.column),
                        &d.message,
                    )
                })
                .collect(),
            Self::Rejected(Rejection::TestsFailed { failures, .. }) => failures
                .iter()
                .map(|f| {
                    tonic_types::FieldViolation::new(
                        format!("{}:{}", f.file, f.line),
                        format!("case `{}` failed: {}", f.name, f.problems.join("; ")),
                    )
                })
                .collect(),
            Self::Rejected(e) => vec![tonic_types::FieldViolation::new("files", e.to_string())],
            _ => Vec::new(),
        }
    }
}

impl From<AdminError> for Status {
    fn from(e: AdminError) -> Self {
        let message = match &e {
            // The cause stays in the log: it may name hosts or paths.
            AdminError::Store(cause @ (StoreError::Unavailable(_) | StoreError::Corrupt(_))) => {
                tracing::error!(error = %cause, "bundle store failure");
                "the bundle store failed; see the server log".to_owned()
            }
            other => crate::bundle::clip(&other.to_string()),
        };
        let mut details = ErrorDetails::new();
        // Each problem is cut short, and so is the list: the whole status travels in a header,
        // which gRPC clients cap (often at 8 or 16 KiB) and refuse past that.
        let all = e.violations();
        let total = all.len();
        let mut violations = Vec::new();
        let mut bytes = message.len();
        for v in all {
            let v = tonic_types::FieldViolation::new(
                crate::bundle::clip(&v.field),
                crate::bundle::clip(&v.description),
            );
            bytes += v.field.len() + v.description.len();
            if violations.len() == MAX_VIOLATIONS
                || (!violations.is_empty() && bytes > MAX_DETAIL_BYTES)
            {
                break;
            }
            violations.push(v);
        }
        if violations.len() < total {
            let more = total - violations.len();
            violations.push(tonic_types::FieldViolation::new(
                "files",
                format!("and {more} more not listed"),
            ));
        }
        if !violations.is_empty() {
            details.set_bad_request(violations);
        }
        details.set_error_info(e.reason(), ERROR_DOMAIN, HashMap::<String, String>::new());
        Status::with_error_details(e.code(), message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::FieldViolation;

    #[test]
    fn invalid_requests_are_invalid_argument_with_field_details() {
        let e = ApiError::from(InvalidRequest::from(FieldViolation::new(
            "caller.id",
            "must not be empty",
        )));
        let status = Status::from(e);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "caller.id");
    }

    #[test]
    fn rejected_bundles_list_located_problems() {
        use crate::bundle::{BundleDiagnostic, BundleError};
        let e = AdminError::Rejected(Rejection::Invalid(BundleError::single(
            BundleDiagnostic::at_offset("p.cedar", "x\ny", 2, "unexpected token"),
        )));
        let status = Status::from(e);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "p.cedar:2:1");
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "BUNDLE_INVALID"
        );
        let status = Status::from(AdminError::Store(StoreError::Unavailable(
            "redis://secret-host".into(),
        )));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("secret-host"));
    }

    #[test]
    fn batch_items_spell_codes_like_grpc() {
        let e = ApiError::from(InvalidRequest::from(FieldViolation::new("x", "y")));
        assert_eq!(pb::ItemError::from(e).code, "INVALID_ARGUMENT");
    }

    #[test]
    fn delegation_failures_carry_their_reason() {
        let e = ApiError::from(DelegationError::NotTheHolder {
            caller: "Agent a".into(),
            holder: "Agent b".into(),
        });
        let status = Status::from(e);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "CALLER_NOT_TOKEN_HOLDER"
        );
        let e = ApiError::from(DelegationError::ChainBesideToken { field: "ceiling" });
        let status = Status::from(e);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.get_details_bad_request().unwrap().field_violations[0].field,
            "ceiling"
        );
    }
}
