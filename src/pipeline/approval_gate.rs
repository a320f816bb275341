//! Step 4: an allow that needs a human. The first ask opens a pending approval bound to this
//! request in this transaction; a later ask with its id consumes it, once, only for exactly
//! that request in that transaction. A first hop asked again with the approval continues the
//! approval's transaction, so the answer lands where the approval was given.

use std::time::SystemTime;

use super::admission::Admitted;
use super::{Pipeline, PipelineError};
use crate::approval::ApprovalError;
use crate::clock::unix;
use crate::decision::approval::closed;
use crate::decision::{Approval, ApprovalRef, ApprovalStatus, Decision, DenialCode, Gate, Outcome};

/// Why an approval did not open.
enum Held {
    Gate(Gate, ApprovalRef),
    Store(ApprovalError),
}

impl From<ApprovalError> for Held {
    fn from(e: ApprovalError) -> Self {
        Self::Store(e)
    }
}

/// Denies `decision`, whose approval the store could not be asked about. Authorize never
/// fails because of Redis: without the approval's state the answer fails closed.
fn unavailable(decision: &mut Decision, approval_id: &str) {
    let detail = format!("approval {approval_id} cannot be read now; ask again");
    let outcome = decision.outcome.clone();
    decision.deny_with(closed(outcome, DenialCode::ApprovalUnavailable, detail));
}

impl Pipeline {
    /// Stamps `outcome`, an allow that needs a human, and holds it at the gate.
    /// `approvals_required` is how many distinct approvers a new approval waits for.
    pub(super) async fn gate(
        &self,
        outcome: Outcome,
        approvals_required: u8,
        admitted: &Admitted,
        digest: &[u8; 32],
        now: SystemTime,
    ) -> Result<Decision, PipelineError> {
        let hash = const_hex::encode(digest);
        let stamp = |outcome, transaction| {
            Decision::stamp(outcome, transaction, now, admitted.latest_expiry)
        };
        let Some(approval_id) = admitted.approval_id.as_deref() else {
            let mut decision = stamp(outcome, admitted.request.transaction_id.clone());
            match self
                .open(&mut decision, hash, approvals_required, unix(now))
                .await
            {
                Ok(()) => {}
                // Nowhere to keep it (the store directory cannot be written): no approval
                // anyone could give, so the answer fails closed rather than erring.
                Err(PipelineError::Approval(ApprovalError::Unavailable)) => {
                    let detail = "the approval cannot be recorded now; ask again".to_owned();
                    let outcome = decision.outcome.clone();
                    decision.deny_with(closed(outcome, DenialCode::ApprovalUnavailable, detail));
                }
                Err(e) => return Err(e),
            }
            return Ok(decision);
        };
        let existing = match self.approvals.get(approval_id).await {
            Ok(existing) => existing,
            Err(ApprovalError::NotFound) => {
                let mut decision = stamp(outcome, admitted.request.transaction_id.clone());
                let detail = format!("there is no approval {approval_id}");
                let outcome = decision.outcome.clone();
                decision.deny_with(closed(outcome, DenialCode::ApprovalMismatch, detail));
                return Ok(decision);
            }
            Err(ApprovalError::Unavailable) => {
                let mut decision = stamp(outcome, admitted.request.transaction_id.clone());
                unavailable(&mut decision, approval_id);
                return Ok(decision);
            }
            Err(e) => return Err(e.into()),
        };
        // A first hop names no transaction: it continues the approval's, if the approval is
        // for this very request. Anything else stays where it was asked.
        let transaction =
            admitted.request.transaction_id.clone().or_else(|| {
                (existing.request_hash == hash).then(|| existing.transaction_id.clone())
            });
        let mut decision = stamp(outcome, transaction);
        self.consume(&mut decision, approval_id, &hash, unix(now))
            .await?;
        Ok(decision)
    }

    /// The first ask: a pending approval for exactly this request in this transaction.
    async fn open(
        &self,
        decision: &mut Decision,
        request_hash: String,
        approvals_required: u8,
        now: u64,
    ) -> Result<(), PipelineError> {
        let approval = Approval {
            id: uuid::Uuid::now_v7().to_string(),
            status: ApprovalStatus::Pending,
            request_hash,
            chain: decision.outcome.chain.clone(),
            scopes: decision.outcome.granted.clone(),
            obligations: decision.outcome.obligations.clone(),
            transaction_id: decision.transaction_id.clone(),
            decision_id: decision.decision_id.clone(),
            requested_at: now,
            expires_at: now.saturating_add(self.approvals.ttl.as_secs()),
            decided_by: None,
            decided_at: None,
            rationale: None,
            used_by_decision: None,
            approvals_required,
            signoffs: Vec::new(),
        };
        self.approvals.create(&approval, now).await?;
        decision.approval = Some(ApprovalRef::from(&approval));
        Ok(())
    }

    /// A later ask with an approval id: consumes it if it opens, else says why not.
    async fn consume(
        &self,
        decision: &mut Decision,
        approval_id: &str,
        request_hash: &str,
        now: u64,
    ) -> Result<(), PipelineError> {
        let decision_id = decision.decision_id.clone();
        let transaction = decision.transaction_id.clone();
        let used = self
            .approvals
            .update(approval_id, |a| {
                match a.gate(request_hash, &transaction, now) {
                    Gate::Open => {
                        a.status = ApprovalStatus::Used;
                        a.used_by_decision = Some(decision_id.clone());
                        Ok(())
                    }
                    gate => Err(Held::Gate(gate, ApprovalRef::from(&*a))),
                }
            })
            .await;
        match used {
            Ok(approval) => {
                // The approval meets the obligation: the minter has nothing left to enforce.
                let obligation = &self.settings.approval_obligation;
                decision.outcome.obligations.retain(|o| o != obligation);
                decision.approval = Some(ApprovalRef::from(&approval));
            }
            Err(Held::Gate(Gate::Pending, pending)) => decision.approval = Some(pending),
            Err(Held::Gate(Gate::Closed(code, detail), _)) => {
                decision.deny_with(closed(decision.outcome.clone(), code, detail));
            }
            Err(Held::Gate(Gate::Open, _)) => {}
            Err(Held::Store(ApprovalError::NotFound)) => {
                let detail = format!("there is no approval {approval_id}");
                let outcome = decision.outcome.clone();
                decision.deny_with(closed(outcome, DenialCode::ApprovalMismatch, detail));
            }
            Err(Held::Store(ApprovalError::Unavailable)) => unavailable(decision, approval_id),
            Err(Held::Store(e)) => return Err(e.into()),
        }
        Ok(())
    }
}
