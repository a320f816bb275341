//! Human approval as plain data: a permit carrying the approval obligation holds its ALLOW
//! until an approver approves exactly that request, in exactly that transaction. Where
//! approvals are kept is the approval store's business (`crate::approval`); what one allows is
//! decided here.

use serde::{Deserialize, Serialize};

use super::outcome::{
    ApprovalRef, ApprovalStatus, Denial, DenialCode, Effect, Outcome, RefusalReason, RefusedScope,
};
use crate::identity::Identity;

/// One approval and the request it was asked for. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// A UUIDv7, which the request that uses the approval names.
    pub id: String,
    /// Where the approval stands.
    pub status: ApprovalStatus,
    /// Hex of the request digest: the approval answers this request and no other.
    pub request_hash: String,
    /// The chain of the request, principal first and callee last, for the approver to read.
    pub chain: Vec<Identity>,
    /// What the ALLOW would grant.
    pub scopes: Vec<String>,
    /// The obligations of that ALLOW, the approval obligation among them.
    pub obligations: Vec<String>,
    /// The transaction the approval was asked in, and the only one it can be used in.
    pub transaction_id: String,
    /// The decision that asked for the approval.
    pub decision_id: String,
    /// When the approval was asked for.
    pub requested_at: u64,
    /// After this it can be neither decided nor used: one deadline for the approver and for
    /// the use.
    pub expires_at: u64,
    /// The approver who approved or rejected it, by admin token name.
    pub decided_by: Option<String>,
    /// When the approver decided.
    pub decided_at: Option<u64>,
    /// The approver's reason, required for both approving and rejecting.
    pub rationale: Option<String>,
    /// The decision that consumed the approval, once used.
    pub used_by_decision: Option<String>,
}

impl From<&Approval> for ApprovalRef {
    fn from(a: &Approval) -> Self {
        Self {
            id: a.id.clone(),
            status: a.status,
            expires_at: a.expires_at,
            decided_by: a.decided_by.clone(),
        }
    }
}

/// What an approval does for a request that needs one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Approved for this very request: it may be consumed.
    Open,
    /// Not decided yet: the answer stays APPROVAL_REQUIRED.
    Pending,
    /// The request is denied, for this reason.
    Closed(DenialCode, String),
}

/// Why an approver's decision cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefused {
    /// The approval was already approved, rejected or used.
    #[error("the approval is {0:?}, not pending")]
    NotPending(ApprovalStatus),
    /// The approval lapsed before the approver decided.
    #[error("the approval expired")]
    Expired,
}

impl Approval {
    /// What this approval does for a request whose digest is `request_hash`, asked in
    /// `transaction_id`, at `now`. The transaction is part of the binding: an approval given
    /// for one task is never spent by an identical request of another.
    pub fn gate(&self, request_hash: &str, transaction_id: &str, now: u64) -> Gate {
        if self.request_hash != request_hash {
            return Gate::Closed(
                DenialCode::ApprovalMismatch,
                format!("approval {} was given for a different request", self.id),
            );
        }
        if self.transaction_id != transaction_id {
            return Gate::Closed(
                DenialCode::ApprovalMismatch,
                format!(
                    "approval {} was given in transaction {}, not in this one",
                    self.id, self.transaction_id
                ),
            );
        }
        match self.status {
            ApprovalStatus::Used => Gate::Closed(
                DenialCode::ApprovalUsed,
                format!("approval {} was already used", self.id),
            ),
            ApprovalStatus::Rejected => Gate::Closed(
                DenialCode::ApprovalRejected,
                format!(
                    "approval {} was rejected by {}",
                    self.id,
                    self.decided_by.as_deref().unwrap_or("an approver")
                ),
            ),
            _ if now >= self.expires_at => Gate::Closed(
                DenialCode::ApprovalExpired,
                format!("approval {} expired", self.id),
            ),
            ApprovalStatus::Pending => Gate::Pending,
            ApprovalStatus::Approved => Gate::Open,
        }
    }

    /// Records an approver's decision on a pending, unexpired approval.
    pub fn decide(
        &mut self,
        approve: bool,
        by: &str,
        rationale: &str,
        now: u64,
    ) -> Result<(), ApprovalRefused> {
        if self.status != ApprovalStatus::Pending {
            return Err(ApprovalRefused::NotPending(self.status));
        }
        if now >= self.expires_at {
            return Err(ApprovalRefused::Expired);
        }
        self.status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        self.decided_by = Some(by.to_owned());
        self.decided_at = Some(now);
        self.rationale = Some(rationale.to_owned());
        Ok(())
    }
}

/// The deny an unusable approval turns an allow into: nothing granted, the reason named.
pub fn closed(mut outcome: Outcome, code: DenialCode, detail: String) -> Outcome {
    let granted = std::mem::take(&mut outcome.granted);
    outcome
        .refused
        .extend(granted.into_iter().map(|scope| RefusedScope {
            scope,
            reason: RefusalReason::HopDenied,
            policy_ids: Vec::new(),
            detail: detail.clone(),
        }));
    outcome.effect = Effect::Deny;
    outcome.ttl_secs = 0;
    outcome.obligations.clear();
    outcome.determining_policies.clear();
    outcome.denial = Some(Denial { code, detail });
    outcome
}

/// A pending approval `a-1` of request `h` in transaction `t`, asked at 100, for tests.
#[cfg(test)]
pub(crate) fn pending(expires_at: u64) -> Approval {
    Approval {
        id: "a-1".into(),
        status: ApprovalStatus::Pending,
        request_hash: "h".into(),
        chain: Vec::new(),
        scopes: vec!["refunds.issue".into()],
        obligations: vec!["human_approval".into()],
        transaction_id: "t".into(),
        decision_id: "d".into(),
        requested_at: 100,
        expires_at,
        decided_by: None,
        decided_at: None,
        rationale: None,
        used_by_decision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(gate: Gate) -> Option<DenialCode> {
        match gate {
            Gate::Closed(code, _) => Some(code),
            _ => None,
        }
    }

    #[test]
    fn only_an_approved_unexpired_approval_for_the_same_request_and_transaction_opens() {
        let mut a = pending(200);
        assert_eq!(a.gate("h", "t", 150), Gate::Pending);
        a.decide(true, "carol", "fine", 150).unwrap();
        assert_eq!(a.gate("h", "t", 150), Gate::Open);
        assert_eq!(
            code(a.gate("other", "t", 150)),
            Some(DenialCode::ApprovalMismatch)
        );
        assert_eq!(
            code(a.gate("h", "another task", 150)),
            Some(DenialCode::ApprovalMismatch)
        );
        assert_eq!(
            code(a.gate("h", "t", 200)),
            Some(DenialCode::ApprovalExpired)
        );
        a.status = ApprovalStatus::Used;
        assert_eq!(code(a.gate("h", "t", 150)), Some(DenialCode::ApprovalUsed));
    }

    #[test]
    fn a_decision_is_taken_once_and_only_before_expiry() {
        let mut a = pending(200);
        assert_eq!(
            a.decide(true, "carol", "ok", 200),
            Err(ApprovalRefused::Expired)
        );
        a.decide(false, "carol", "too much", 150).unwrap();
        assert_eq!(a.decided_by.as_deref(), Some("carol"));
        assert_eq!(
            code(a.gate("h", "t", 150)),
            Some(DenialCode::ApprovalRejected)
        );
        assert_eq!(
            a.decide(true, "dave", "ok", 160),
            Err(ApprovalRefused::NotPending(ApprovalStatus::Rejected))
        );
    }
}
