//! The one table from Baton's errors to gRPC status codes. A policy DENY is not an error.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::decision::InvalidRequest;
use crate::pb;

/// Everything a decision RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidRequest),
}

impl ApiError {
    /// The status code and its gRPC name, for batch items that carry it as text.
    fn code(&self) -> (Code, &'static str) {
        match self {
            Self::InvalidArgument(_) => (Code::InvalidArgument, "INVALID_ARGUMENT"),
        }
    }

    fn violations(&self) -> Vec<tonic_types::FieldViolation> {
        match self {
            Self::InvalidArgument(e) => e
                .violations
                .iter()
                .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                .collect(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        Status::with_error_details(
            e.code().0,
            e.to_string(),
            ErrorDetails::with_bad_request(e.violations()),
        )
    }
}

impl From<ApiError> for pb::ItemError {
    fn from(e: ApiError) -> Self {
        pb::ItemError {
            code: e.code().1.to_owned(),
            message: e.to_string(),
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
}
