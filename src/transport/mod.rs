//! The gRPC edge: the only code that touches tonic and prost types.

pub mod convert;
mod decision_service;
mod spans;
mod status;

pub use decision_service::DecisionApi;
pub use status::ApiError;
