//! Human approval as plain data: a permit carrying the approval obligation holds its ALLOW
//! until an approver approves exactly that request, in exactly that transaction. Where
//! approvals are kept is the approval store's business (`crate::approval`); what one allows is
//! decided here.

use serde::{Deserialize, Serialize};

use super::approver::{Approver, Signoff};
use super::outcome::{
    ApprovalRef, ApprovalStatus, Denial, DenialCode, Effect, Outcome, RefusalReason, RefusedScope,
};
use crate::bundle::PolicyBundle;
use crate::identity::Identity;

pub use crate::bundle::MAX_APPROVERS;

/// The longest rationale an approver may give, in bytes: it travels in every verdict the
/// approval opens.
pub const MAX_RATIONALE_BYTES: usize = 1024;

/// How many distinct approvers `outcome`, an allow of `bundle` that needs a human, waits for:
/// the largest `@approvers` among its determining permits that carry `approval_obligation`,
/// one when none says.
pub fn approvals_required(
    bundle: &PolicyBundle,
    outcome: &Outcome,
    approval_obligation: &str,
) -> u8 {
    outcome
        .determining_policies
        .iter()
        .filter_map(|id| bundle.meta(&cedar_policy::PolicyId::new(id)))
        .filter(|meta| meta.obligations.contains(approval_obligation))
        .filter_map(|meta| meta.approvers)
        .max()
        .unwrap_or(1)
}

fn one() -> u8 {
    1
}

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
    /// The approver whose answer decided it (the last of [`Approval::signoffs`]), as
    /// [`Approver::name`] names them; `None` while pending.
    pub decided_by: Option<String>,
    /// When that approver decided.
    pub decided_at: Option<u64>,
    /// That approver's reason, required for both approving and rejecting.
    pub rationale: Option<String>,
    /// The decision that consumed the approval, once used.
    pub used_by_decision: Option<String>,
    /// How many distinct approvers must approve before it opens (`@approvers`, 1 to
    /// [`MAX_APPROVERS`]); one for records written before approvals could ask for more.
    #[serde(default = "one")]
    pub approvals_required: u8,
    /// Every approver's answer, in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signoffs: Vec<Signoff>,
}

impl From<&Approval> for ApprovalRef {
    fn from(a: &Approval) -> Self {
        Self {
            id: a.id.clone(),
            status: a.status,
            expires_at: a.expires_at,
            decided_by: a.decided_by.clone(),
            approvals_required: a.approvals_required,
            approvals_needed: a.approvals_needed(),
            signoffs: a.signoffs.clone(),
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefused {
    /// The approval was already approved, rejected or used.
    #[error("the approval is {0:?}, not pending")]
    NotPending(ApprovalStatus),
    /// The approval lapsed before the approver decided.
    #[error("the approval expired")]
    Expired,
    /// The approver is the request's principal or a member of its chain.
    #[error(
        "`{0}` is party to the request (its principal or in its chain) and cannot decide on it"
    )]
    SelfApproval(String),
    /// The approver already approved; another must.
    #[error("`{0}` already approved; a different approver must")]
    AlreadyApprovedBy(String),
    /// The approval needs several approvers, and this one has no directory identity to tell
    /// them apart by (`--approver`).
    #[error(
        "the approval needs {0} distinct approvers: only an admin with a directory identity (`--approver NAME=User:ID`) may decide it"
    )]
    IdentityRequired(u8),
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

    /// How many more distinct approvers must approve before it opens; zero once decided.
    pub fn approvals_needed(&self) -> u8 {
        if self.status != ApprovalStatus::Pending {
            return 0;
        }
        let given = self.signoffs.iter().filter(|s| s.approved).count();
        let given = u8::try_from(given).unwrap_or(u8::MAX);
        self.approvals_required.saturating_sub(given)
    }

    /// Records `approver`'s answer on a pending, unexpired approval. A rejection by anyone
    /// rejects it; an approval approves it once [`Approval::approvals_required`] distinct
    /// approvers gave one. No approver may be party to the request, and none counts twice.
    pub fn decide(
        &mut self,
        approve: bool,
        approver: &Approver,
        rationale: &str,
        now: u64,
    ) -> Result<(), ApprovalRefused> {
        if self.status != ApprovalStatus::Pending {
            return Err(ApprovalRefused::NotPending(self.status));
        }
        if now >= self.expires_at {
            return Err(ApprovalRefused::Expired);
        }
        if let Some(who) = &approver.identity
            && self.chain.contains(who)
        {
            return Err(ApprovalRefused::SelfApproval(approver.name()));
        }
        // A rejection needs no telling apart: any one rejects.
        if approve && self.approvals_required > 1 && approver.identity.is_none() {
            return Err(ApprovalRefused::IdentityRequired(self.approvals_required));
        }
        let name = approver.name();
        if approve
            && self
                .signoffs
                .iter()
                .any(|s| s.approved && s.approver.name() == name)
        {
            return Err(ApprovalRefused::AlreadyApprovedBy(name));
        }
        self.signoffs.push(Signoff {
            approver: approver.clone(),
            approved: approve,
            at: now,
            rationale: rationale.to_owned(),
        });
        let status = if !approve {
            ApprovalStatus::Rejected
        } else if self.approvals_needed() == 0 {
            ApprovalStatus::Approved
        } else {
            // Still waiting for another approver: nothing is decided yet.
            return Ok(());
        };
        self.status = status;
        self.decided_by = Some(name);
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
        approvals_required: 1,
        signoffs: Vec::new(),
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
        a.decide(true, &Approver::admin("carol"), "fine", 150)
            .unwrap();
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
            a.decide(true, &Approver::admin("carol"), "ok", 200),
            Err(ApprovalRefused::Expired)
        );
        a.decide(false, &Approver::admin("carol"), "too much", 150)
            .unwrap();
        assert_eq!(a.decided_by.as_deref(), Some("carol"));
        assert_eq!(
            code(a.gate("h", "t", 150)),
            Some(DenialCode::ApprovalRejected)
        );
        assert_eq!(
            a.decide(true, &Approver::admin("dave"), "ok", 160),
            Err(ApprovalRefused::NotPending(ApprovalStatus::Rejected))
        );
    }

    fn user(id: &str) -> Identity {
        Identity::new(crate::identity::IdentityKind::User, id)
    }

    fn approver(id: &str) -> Approver {
        Approver::user(format!("{id}-token"), user(id))
    }

    fn two_approvers() -> Approval {
        Approval {
            approvals_required: 2,
            chain: vec![
                user("bob"),
                Identity::new(crate::identity::IdentityKind::Agent, "support-assistant"),
            ],
            ..pending(200)
        }
    }

    #[test]
    fn two_distinct_approvers_open_an_approval_that_needs_two() {
        let mut a = two_approvers();
        a.decide(true, &approver("carol"), "first", 120).unwrap();
        assert_eq!(a.status, ApprovalStatus::Pending);
        assert_eq!(a.approvals_needed(), 1);
        assert_eq!(a.decided_by, None, "nothing is decided by one of two");
        assert_eq!(a.gate("h", "t", 130), Gate::Pending);
        // The same person under another admin name is still the same approver.
        let again = Approver::user("carol-laptop", user("carol"));
        assert_eq!(
            a.decide(true, &again, "twice", 125),
            Err(ApprovalRefused::AlreadyApprovedBy("User:carol".into()))
        );
        assert_eq!(a.signoffs.len(), 1, "a refused answer is not recorded");
        a.decide(true, &approver("alice"), "second", 140).unwrap();
        assert_eq!(a.status, ApprovalStatus::Approved);
        assert_eq!(a.approvals_needed(), 0);
        assert_eq!(a.decided_by.as_deref(), Some("User:alice"));
        assert_eq!(a.decided_at, Some(140));
        let names: Vec<String> = a.signoffs.iter().map(|s| s.approver.name()).collect();
        assert_eq!(names, ["User:carol", "User:alice"]);
        assert_eq!(a.gate("h", "t", 150), Gate::Open);
    }

    #[test]
    fn no_party_to_the_request_decides_on_it_and_anyone_else_may_reject() {
        let mut a = two_approvers();
        assert_eq!(
            a.decide(true, &approver("bob"), "mine", 120),
            Err(ApprovalRefused::SelfApproval("User:bob".into()))
        );
        assert_eq!(
            a.decide(false, &approver("bob"), "mine", 120),
            Err(ApprovalRefused::SelfApproval("User:bob".into()))
        );
        let agent = Approver::user(
            "robot",
            Identity::new(crate::identity::IdentityKind::Agent, "support-assistant"),
        );
        assert_eq!(
            a.decide(true, &agent, "mine", 120),
            Err(ApprovalRefused::SelfApproval(
                "Agent:support-assistant".into()
            ))
        );
        // Without a directory identity two approvers cannot be told apart.
        assert_eq!(
            a.decide(true, &Approver::admin("ops"), "ok", 120),
            Err(ApprovalRefused::IdentityRequired(2))
        );
        a.decide(true, &approver("carol"), "fine", 120).unwrap();
        a.decide(false, &Approver::admin("ops"), "no", 130).unwrap();
        assert_eq!(a.status, ApprovalStatus::Rejected);
        assert_eq!(a.decided_by.as_deref(), Some("ops"));
        assert_eq!(a.approvals_needed(), 0);
    }

    #[test]
    fn records_written_before_signoffs_read_as_needing_one_approver() {
        let old = serde_json::json!({
            "id": "a-1", "status": "approved", "request_hash": "h", "chain": [],
            "scopes": [], "obligations": [], "transaction_id": "t", "decision_id": "d",
            "requested_at": 100, "expires_at": 200, "decided_by": "carol", "decided_at": 150,
            "rationale": "ok", "used_by_decision": null
        });
        let read: Approval = serde_json::from_value(old).unwrap();
        assert_eq!(read.approvals_required, 1);
        assert!(read.signoffs.is_empty());
        assert_eq!(read.gate("h", "t", 160), Gate::Open);
    }

    #[test]
    fn the_largest_count_of_the_permits_carrying_the_approval_obligation_is_required() {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let bundle = PolicyBundle::load(&shipped).unwrap();
        let decided_by = |ids: &[&str]| Outcome {
            effect: Effect::Allow,
            granted: vec!["refunds.issue".into()],
            refused: Vec::new(),
            ttl_secs: 120,
            chain: Vec::new(),
            obligations: vec!["human_approval".into()],
            determining_policies: ids.iter().map(|id| (*id).to_owned()).collect(),
            bundle_version: bundle.version().to_owned(),
            denial: None,
        };
        let over_500 = decided_by(&["refunds-over-500-need-approval"]);
        assert_eq!(approvals_required(&bundle, &over_500, "human_approval"), 1);
        let over_5000 = decided_by(&[
            "refunds-over-500-need-approval",
            "refunds-over-5000-need-two-approvers",
        ]);
        assert_eq!(approvals_required(&bundle, &over_5000, "human_approval"), 2);
        // Under another approval obligation the shipped `@approvers` counts for nothing.
        assert_eq!(approvals_required(&bundle, &over_5000, "four_eyes"), 1);
    }
}
