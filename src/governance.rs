//! Governance as domain operations: revoke, lift, approve, reject, and what waits for an
//! approver. Every door that lets an operator act (the gRPC `Governance` service, the web
//! console) calls these with the authenticated author, so the checks, the store change and the
//! audit record are the same whichever door was used.

use std::sync::Arc;

use crate::approval::{ApprovalDesk, ApprovalError, ApprovalPage, ApprovalQuery, Approvals};
use crate::audit::{Audit, AuditRecord, RevocationRecord};
use crate::bundle::PolicyBundle;
use crate::clock::{Clock, from_unix};
use crate::decision::{Approval, Approver, FieldViolation, InvalidRequest};
use crate::revocation::{Revocation, RevocationError, Revocations, Target};

/// Why a governance action was refused or could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// A field is missing or malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The approval is unknown, not pending, expired, or its store unreachable.
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// The revocation could not be recorded or lifted.
    #[error(transparent)]
    Revocation(#[from] RevocationError),
}

fn invalid(field: &str, why: &str) -> GovernanceError {
    InvalidRequest::from(FieldViolation::new(field, why)).into()
}

/// `value` must say something: the audit trail keeps it.
fn required(field: &str, value: &str) -> Result<(), GovernanceError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "is required: the audit trail keeps it"));
    }
    Ok(())
}

/// The audit trail's form of a revocation or its lifting.
fn revocation_record(r: &Revocation, by: &str, reason: &str) -> RevocationRecord {
    let (kind, target) = match &r.target {
        Target::Agent(id) => ("agent", id.clone()),
        Target::Principal(who) => ("principal", format!("{}:{}", who.kind, who.id)),
        Target::Transaction(id) => ("transaction", id.clone()),
        Target::Verdict(id) => ("verdict", id.clone()),
    };
    RevocationRecord {
        target_kind: kind.to_owned(),
        target,
        by: by.to_owned(),
        reason: reason.to_owned(),
        expires_at: r.expires_at.and_then(from_unix),
    }
}

/// The revocations every door checks and the approvals the approval gate waits for, changed
/// by named authors and recorded in the audit trail.
#[derive(Clone)]
pub struct Governance {
    revocations: Arc<Revocations>,
    approvals: Arc<Approvals>,
    desk: ApprovalDesk,
    /// The active bundle, whose directory approvers must belong to.
    directory: Arc<dyn Fn() -> Arc<PolicyBundle> + Send + Sync>,
    audit: Arc<Audit>,
    clock: Arc<dyn Clock>,
}

impl Governance {
    /// Governance over these revocations and approvals, recording to `audit` at `clock`'s
    /// time; approvers are checked against the bundle `directory` returns when they answer.
    pub fn new(
        revocations: Arc<Revocations>,
        approvals: Arc<Approvals>,
        directory: Arc<dyn Fn() -> Arc<PolicyBundle> + Send + Sync>,
        audit: Arc<Audit>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            desk: ApprovalDesk::new(
                Arc::clone(&approvals),
                Arc::clone(&audit),
                Arc::clone(&clock),
            ),
            revocations,
            approvals,
            directory,
            audit,
            clock,
        }
    }

    /// The pipeline's own stores, audit trail, active bundle and clock.
    pub fn of(pipeline: &Arc<crate::pipeline::Pipeline>) -> Self {
        let active = Arc::clone(pipeline);
        Self::new(
            Arc::clone(pipeline.revocations()),
            Arc::clone(pipeline.approvals()),
            Arc::new(move || active.bundle()),
            Arc::clone(pipeline.audit()),
            Arc::clone(pipeline.clock()),
        )
    }

    /// The clock governance reads, for doors that show times relative to it.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Revokes `target` for `reason` (required) until `expires_at` (Unix seconds, in the
    /// future) or until lifted; in force on the very next question. Recorded with `by`.
    pub async fn revoke(
        &self,
        by: &str,
        target: Target,
        reason: &str,
        expires_at: Option<u64>,
    ) -> Result<Revocation, GovernanceError> {
        required("reason", reason)?;
        let now = self.clock.unix();
        if expires_at.is_some_and(|at| at <= now) {
            return Err(invalid("expires_at", "must be in the future"));
        }
        let revocation = Revocation {
            target,
            reason: reason.to_owned(),
            revoked_by: by.to_owned(),
            revoked_at: now,
            expires_at,
        };
        self.revocations.revoke(revocation.clone()).await?;
        let record = revocation_record(&revocation, by, reason);
        self.audit
            .record(AuditRecord::revoked(record, self.clock.now()))
            .await;
        tracing::info!(target = %revocation.target, by, "revoked");
        Ok(revocation)
    }

    /// Lifts the revocation of `target`, for `reason` (required); the lifted revocation, or
    /// `None` when none was in force. Recorded with `by` when one was lifted.
    pub async fn lift(
        &self,
        by: &str,
        target: &Target,
        reason: &str,
    ) -> Result<Option<Revocation>, GovernanceError> {
        required("reason", reason)?;
        let lifted = self.revocations.lift(target).await?;
        if let Some(lifted) = &lifted {
            let record = revocation_record(lifted, by, reason);
            self.audit
                .record(AuditRecord::revocation_lifted(record, self.clock.now()))
                .await;
        }
        tracing::info!(%target, by, lifted = lifted.is_some(), "revocation lifted");
        Ok(lifted)
    }

    /// The revocations in force now, oldest first.
    pub fn revocations_in_force(&self) -> Vec<Revocation> {
        let now = self.clock.unix();
        let snapshot = self.revocations.snapshot();
        let mut revocations: Vec<Revocation> = snapshot.in_force(now).cloned().collect();
        revocations.sort_by_key(|r| (r.revoked_at, r.target.key()));
        revocations
    }

    /// Takes `approver`'s answer on the pending approval `approval_id`: approve (`true`) or
    /// reject, for `rationale` (required); the approval as it now stands (see
    /// [`ApprovalDesk::decide`]: distinct approvers of the directory, never the request's own
    /// principal or chain). Recorded with the approver in the audit trail.
    pub async fn decide_approval(
        &self,
        approver: &Approver,
        approval_id: &str,
        approve: bool,
        rationale: &str,
    ) -> Result<Approval, GovernanceError> {
        required("approval_id", approval_id)?;
        required("rationale", rationale)?;
        let directory = (self.directory)();
        Ok(self
            .desk
            .decide(&directory, approval_id, approver, approve, rationale)
            .await?)
    }

    /// The approval `approval_id`.
    pub async fn approval(&self, approval_id: &str) -> Result<Approval, GovernanceError> {
        required("approval_id", approval_id)?;
        Ok(self.approvals.get(approval_id).await?)
    }

    /// The approvals `query` selects, in the order an approver reads them.
    pub async fn approvals(&self, query: &ApprovalQuery) -> Result<ApprovalPage, GovernanceError> {
        Ok(self.approvals.list(query, self.clock.unix()).await?)
    }
}
