//! The gRPC edge: the only code that touches tonic and prost types.

mod admin_auth;
mod admin_service;
pub mod convert;
mod decision_service;
mod governance_service;
mod status;

pub use admin_auth::{AdminAuth, AdminTokenError, AdminTokens, Author};
pub use admin_service::AdminApi;
pub use decision_service::DecisionApi;
pub use governance_service::GovernanceApi;
pub use status::{AdminError, ApiError};
