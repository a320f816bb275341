//! The gRPC edge: the only code that touches tonic and prost types.

mod audit_convert;
mod audit_service;
pub mod convert;
mod decision_service;
mod status;
mod trace;

pub use audit_service::AuditApi;
pub use decision_service::DecisionApi;
pub use status::ApiError;
