//! Where an approver's answer is taken. Every door that lets approvers decide (the governance
//! API, the console) calls [`ApprovalDesk::decide`]: it checks the approver against the
//! directory, records the answer on the approval in one compare-and-set (so two approvers
//! answering at once are both kept), and writes the answer's audit record.

use std::sync::Arc;

use super::{ApprovalError, Approvals};
use crate::audit::{ApprovalRecord, Audit, AuditRecord};
use crate::bundle::PolicyBundle;
use crate::clock::Clock;
use crate::decision::approval::MAX_RATIONALE_BYTES;
use crate::decision::{Approval, ApprovalStatus, Approver};

/// Takes approvers' answers on the approvals the approval gate opened.
#[derive(Clone)]
pub struct ApprovalDesk {
    approvals: Arc<Approvals>,
    audit: Arc<Audit>,
    clock: Arc<dyn Clock>,
}

impl ApprovalDesk {
    /// Answers recorded on `approvals` and audited to `audit`, at `clock`'s time.
    pub fn new(approvals: Arc<Approvals>, audit: Arc<Audit>, clock: Arc<dyn Clock>) -> Self {
        Self {
            approvals,
            audit,
            clock,
        }
    }

    /// Records `approver`'s answer on approval `id`: approve (`true`) or reject, for
    /// `rationale`. An approver with a directory identity must still be a `User` of
    /// `directory`, the active bundle. Returns the approval as it now stands: approved only
    /// once enough distinct approvers approved, rejected by any one rejection.
    pub async fn decide(
        &self,
        directory: &PolicyBundle,
        id: &str,
        approver: &Approver,
        approve: bool,
        rationale: &str,
    ) -> Result<Approval, ApprovalError> {
        if rationale.trim().is_empty() {
            return Err(ApprovalError::Rationale(
                "is required: the audit trail keeps it".to_owned(),
            ));
        }
        if rationale.len() > MAX_RATIONALE_BYTES {
            return Err(ApprovalError::Rationale(format!(
                "must be at most {MAX_RATIONALE_BYTES} bytes: verdicts carry it"
            )));
        }
        if let Some(who) = &approver.identity {
            let known = directory
                .contract()
                .uid(who)
                .is_some_and(|uid| directory.entities().get(&uid).is_some());
            if !known {
                return Err(ApprovalError::NotInDirectory(approver.name()));
            }
        }
        let now = self.clock.unix();
        let decided = self
            .approvals
            .update(id, |a| {
                a.decide(approve, approver, rationale, now)
                    .map_err(ApprovalError::from)
            })
            .await?;
        let record = ApprovalRecord {
            approval_id: decided.id.clone(),
            transaction_id: Some(decided.transaction_id.clone()),
            request_hash: decided.request_hash.clone(),
            approver: approver.name(),
            admin: approver.identity.is_some().then(|| approver.admin.clone()),
            rationale: rationale.to_owned(),
            approvals_required: decided.approvals_required,
            approvals_needed: decided.approvals_needed(),
        };
        let at = self.clock.now();
        self.audit
            .record(if approve {
                AuditRecord::approval_granted(record, at)
            } else {
                AuditRecord::approval_rejected(record, at)
            })
            .await;
        tracing::info!(
            approval = %decided.id,
            approver = %approver.name(),
            admin = %approver.admin,
            approved = approve,
            still_needed = decided.approvals_needed(),
            opened = decided.status == ApprovalStatus::Approved,
            transaction = %decided.transaction_id,
            "approval answered"
        );
        Ok(decided)
    }
}
