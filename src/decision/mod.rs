//! The decision core: pure and synchronous over an immutable [`PolicyBundle`]. No transport,
//! storage or clock types enter here; [`Decision::stamp`] adds the per-answer parts afterwards.
//!
//! [`PolicyBundle`]: crate::bundle::PolicyBundle

pub mod approval;
mod approver;
pub mod attributes;
mod chain;
mod decide;
pub mod lifecycle;
mod outcome;
pub mod request;
mod suite;

pub use approval::{Approval, ApprovalRefused, Gate};
pub use approver::{Approver, Signoff};
pub use chain::DelegationChain;
pub use decide::{DEFAULT_APPROVAL_OBLIGATION, DecisionSettings, decide};
pub use lifecycle::LifecycleMode;
pub use outcome::{
    ApprovalRef, ApprovalStatus, Decision, DecisionKind, Denial, DenialCode, Effect,
    LifecycleWarning, OrphanReason, Outcome, RefusalReason, RefusedScope,
};
pub use request::{DecisionRequest, FieldViolation, InvalidRequest, Limits};
pub use suite::{CaseFailure, CaseRun, Coverage, Decided, SuiteReport, run_case, run_cases};
