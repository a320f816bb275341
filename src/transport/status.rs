//! The one table from Baton's errors to gRPC status codes. A policy DENY is not an error.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::audit::AuditError;
use crate::decision::InvalidRequest;
use crate::delegation::DelegationError;
use crate::pb;
use crate::token::JwsError;

/// The `domain` of `google.rpc.ErrorInfo` details.
const ERROR_DOMAIN: &str = "baton";

/// Everything a decision RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidRequest),
    #[error(transparent)]
    Delegation(#[from] DelegationError),
    /// Signing should not fail; if it does, no verdict (and so no allow) leaves Baton.
    #[error("cannot sign the verdict")]
    Signing(#[source] JwsError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl ApiError {
    /// The status code and its gRPC name, for batch items that carry it as text.
    fn code(&self) -> (Code, &'static str) {
        use DelegationError as D;
        match self {
            Self::InvalidArgument(_)
            | Self::Delegation(D::ChainBesideToken { .. } | D::TransactionMismatch { .. }) => {
                (Code::InvalidArgument, "INVALID_ARGUMENT")
            }
            Self::Delegation(D::TokenRejected(_) | D::GrantExpired { .. }) => {
                (Code::Unauthenticated, "UNAUTHENTICATED")
            }
            Self::Delegation(
                D::NotTheHolder { .. } | D::PrincipalMismatch { .. } | D::AssertedChainRefused(_),
            ) => (Code::PermissionDenied, "PERMISSION_DENIED"),
            Self::Signing(_) => (Code::Internal, "INTERNAL"),
            Self::Audit(AuditError::Off) => (Code::FailedPrecondition, "FAILED_PRECONDITION"),
            Self::Audit(AuditError::Unavailable(_)) => (Code::Unavailable, "UNAVAILABLE"),
            Self::Audit(AuditError::NoRedis | AuditError::Open { .. }) => {
                (Code::Internal, "INTERNAL")
            }
        }
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
            _ => None,
        }
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
        Status::with_error_details(e.code().0, e.to_string(), details)
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
