//! Human approval: a permit carrying the approval obligation yields APPROVAL_REQUIRED and a
//! pending approval instead of a verdict. An approver approves or rejects it; asking again
//! with its id then yields ALLOW, once, for exactly the request it was given for.

mod store;

use serde::{Deserialize, Serialize};

pub use self::store::{
    ApprovalError, Approvals, DEFAULT_APPROVAL_OBLIGATION, DEFAULT_APPROVAL_TTL,
};
use crate::decision::{Denial, DenialCode, Effect, Outcome, RefusalReason, RefusedScope};
use crate::identity::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Used,
}

/// One approval and the request it was asked for. Times are seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub status: ApprovalStatus,
    /// Hex of the request digest: the approval answers this request and no other.
    pub request_hash: String,
    pub chain: Vec<Identity>,
    /// What the ALLOW would grant.
    pub scopes: Vec<String>,
    pub obligations: Vec<String>,
    pub transaction_id: String,
    pub decision_id: String,
    pub requested_at: u64,
    pub expires_at: u64,
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
    pub rationale: Option<String>,
    pub used_by_decision: Option<String>,
}

/// What an answer says of the approval it asked for or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRef {
    pub id: String,
    pub status: ApprovalStatus,
    pub expires_at: u64,
    pub decided_by: Option<String>,
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

impl Approval {
    /// What this approval does for a request whose digest is `request_hash`, at `now`.
    pub fn gate(&self, request_hash: &str, now: u64) -> Gate {
        if self.request_hash != request_hash {
            return Gate::Closed(
                DenialCode::ApprovalMismatch,
                format!("approval {} was given for a different request", self.id),
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
    ) -> Result<(), ApprovalError> {
        if self.status != ApprovalStatus::Pending {
            return Err(ApprovalError::NotPending(self.status));
        }
        if now >= self.expires_at {
            return Err(ApprovalError::Expired);
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
    outcome.denial = Some(Denial { code, detail });
    outcome
}

#[cfg(test)]
mod tests;
