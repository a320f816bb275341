//! The gRPC edge: the only code that touches tonic and prost types.

mod admin_auth;
mod admin_service;
mod audit_convert;
mod audit_service;
pub mod convert;
mod decision_service;
mod ext_authz;
mod governance_service;
mod health;
pub mod replay_convert;
mod spans;
mod status;
mod trace;
mod undecodable;

pub use admin_auth::{AdminAuth, AdminTokenError, AdminTokens, Author};
pub use admin_service::AdminApi;
pub use audit_service::AuditApi;
pub use decision_service::DecisionApi;
pub use ext_authz::{ExtAuthzApi, upstream_headers};
pub use governance_service::GovernanceApi;
pub use health::DrainingHealth;
pub use status::{AdminError, ApiError};
pub use undecodable::UndecodableLayer;
