//! What the core decides, and the decision a caller receives.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::approver::Signoff;
use crate::identity::Identity;

/// Where a human's approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an approver.
    Pending,
    /// An approver approved it; the next matching request may use it.
    Approved,
    /// An approver rejected it; a request naming it is denied.
    Rejected,
    /// A request consumed it; it never opens again.
    Used,
}

/// What an answer says of the approval it asked for or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRef {
    /// The approval's id, which a later request names to use it.
    pub id: String,
    /// Where the approval stood when this answer was given.
    pub status: ApprovalStatus,
    /// When the approval lapses, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The approver whose answer decided it; `None` while pending.
    pub decided_by: Option<String>,
    /// How many distinct approvers it needs.
    pub approvals_required: u8,
    /// How many more must approve before it opens; zero once decided.
    pub approvals_needed: u8,
    /// Every approver's answer so far: on an allow that used the approval, those who
    /// approved it.
    pub signoffs: Vec<Signoff>,
}

/// What the policies say of a hop: the core's two-valued answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Effect {
    /// The hop may go ahead with the granted scopes.
    Allow,
    /// The hop may not go ahead; nothing is granted.
    Deny,
}

/// What a caller is told: the effect, or that the policies allow the hop only once a human
/// approves it. An outcome of its own wherever answers are counted, recorded or tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DecisionKind {
    /// The hop may go ahead; the answer carries a verdict.
    Allow,
    /// The hop may not go ahead.
    Deny,
    /// The policies allow the hop once a human approves it; no verdict yet.
    ApprovalRequired,
}

impl DecisionKind {
    /// The wire spelling: `ALLOW`, `DENY`, `APPROVAL_REQUIRED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::Deny => "DENY",
            Self::ApprovalRequired => "APPROVAL_REQUIRED",
        }
    }
}

/// Why a requested scope was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalReason {
    /// The scope is not an action of the active bundle (`invoke` is not a scope).
    UnknownScope,
    /// The scope was not granted at the previous hop.
    AboveCeiling,
    /// No policy permits the caller this scope at the callee.
    NotPermittedForCaller,
    /// No policy permits the principal this scope at the callee.
    NotPermittedForPrincipal,
    /// A forbid matched; [`RefusedScope::policy_ids`] names it.
    ForbiddenByPolicy,
    /// A policy failed to evaluate, so the scope is refused (fail closed).
    EvaluationError,
    /// The hop as a whole was denied, so the scope was not evaluated.
    HopDenied,
    /// A member of the chain, the transaction or the presented verdict is revoked.
    Revoked,
}

/// A requested scope that was not granted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedScope {
    /// The scope as requested.
    pub scope: String,
    /// The first rule it failed.
    pub reason: RefusalReason,
    /// What refused it: the forbids behind [`RefusalReason::ForbiddenByPolicy`], or the
    /// policies that failed to evaluate behind [`RefusalReason::EvaluationError`]; never a
    /// permit.
    pub policy_ids: Vec<String>,
    /// A readable sentence saying why, for people rather than programs.
    pub detail: String,
}

/// Why a whole hop was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenialCode {
    /// No policy lets the caller `invoke` the callee, or a forbid matched.
    ConnectionNotAllowed,
    /// The chain has more hops than [`DecisionSettings::max_depth`].
    ///
    /// [`DecisionSettings::max_depth`]: crate::decision::DecisionSettings::max_depth
    ChainTooDeep,
    /// An identity appears twice in the chain and cycles are not allowed.
    ChainCycle,
    /// The hop was allowed but none of the requested scopes was granted.
    NoScopeGranted,
    /// A member of the chain, the transaction or the presented verdict is revoked.
    Revoked,
    /// The approval the request names was rejected by an approver.
    ApprovalRejected,
    /// The approval the request names lapsed before it was used.
    ApprovalExpired,
    /// The approval the request names was already used.
    ApprovalUsed,
    /// The approval the request names does not exist, or was given for another request or
    /// transaction.
    ApprovalMismatch,
    /// The approval the request names could not be read (the shared store is down or slow and
    /// this replica did not open it), or the one it needs could not be recorded (the store
    /// directory cannot be written). Fails closed; asking again once the store answers works.
    ApprovalUnavailable,
    /// An agent of the chain is past its `expires`, has no `owner`, or its owner is no longer
    /// in the directory, and `--agent-lifecycle enforce` is set.
    AgentOrphaned,
}

/// Why a hop was denied as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The rule the hop failed.
    pub code: DenialCode,
    /// A readable sentence naming what failed.
    pub detail: String,
}

/// The decision proper: a pure function of the bundle, the request and the settings. It holds
/// nothing that varies per call, so identical questions get identical outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the hop may go ahead.
    pub effect: Effect,
    /// In request order.
    pub granted: Vec<String>,
    /// Every requested scope not granted, in request order.
    pub refused: Vec<RefusedScope>,
    /// Zero on deny.
    pub ttl_secs: u64,
    /// Principal → … → caller → callee.
    pub chain: Vec<Identity>,
    /// Sorted, without duplicates.
    pub obligations: Vec<String>,
    /// Sorted, without duplicates: the permits behind an allow, the forbids behind a deny.
    pub determining_policies: Vec<String>,
    /// The content hash of the bundle that decided.
    pub bundle_version: String,
    /// Why the hop was denied: `Some` exactly when the effect is deny.
    pub denial: Option<Denial>,
}

/// An outcome stamped for one answer: its own id, transaction and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// A fresh UUIDv7 for this answer alone; a verdict's `jti`.
    pub decision_id: String,
    /// The task this hop belongs to: created at the first hop, carried unchanged after it.
    pub transaction_id: String,
    /// When the answer was stamped.
    pub issued_at: SystemTime,
    /// The end of the grant on allow: `issued_at` plus the policy TTL, never later than the
    /// upstream credential's own latest expiry.
    pub expires_at: Option<SystemTime>,
    /// Whole seconds from `issued_at` to `expires_at`; zero on deny.
    pub ttl_secs: u64,
    /// What the policies decided, shared by every answer to the same question.
    pub outcome: Outcome,
    /// The approval this answer asks for (pending) or consumed (used).
    pub approval: Option<ApprovalRef>,
    /// The orphaned agents of the chain under `--agent-lifecycle warn`; empty otherwise.
    pub lifecycle_warnings: Vec<LifecycleWarning>,
}

impl Outcome {
    /// Whether this allow waits for a human: it carries `approval_obligation`, which only an
    /// approval can meet. Every door and the bundle's own test cases ask this same question.
    pub fn needs_approval(&self, approval_obligation: &str) -> bool {
        self.effect == Effect::Allow && self.obligations.iter().any(|o| o == approval_obligation)
    }
}

impl Decision {
    /// Gives `outcome` a fresh decision id and its absolute expiry, in the transaction named by
    /// the request or, at a first hop, in a new one. `latest_expiry` is the upstream bound: the
    /// grant never outlives the grant it was delegated from.
    pub fn stamp(
        outcome: Outcome,
        transaction_id: Option<String>,
        now: SystemTime,
        latest_expiry: Option<SystemTime>,
    ) -> Self {
        let expires_at = (outcome.effect == Effect::Allow).then(|| {
            // The TTL is capped by the settings, so this cannot overflow in practice; were it
            // to, the grant would end now rather than never.
            let own = now
                .checked_add(Duration::from_secs(outcome.ttl_secs))
                .unwrap_or(now);
            latest_expiry.map_or(own, |bound| own.min(bound))
        });
        let ttl_secs = expires_at
            .and_then(|end| end.duration_since(now).ok())
            .map_or(0, |d| d.as_secs());
        Self {
            decision_id: uuid::Uuid::now_v7().to_string(),
            transaction_id: transaction_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            issued_at: now,
            expires_at,
            ttl_secs,
            outcome,
            approval: None,
            lifecycle_warnings: Vec::new(),
        }
    }

    /// Pending human approval: policies allow, but not yet. Never mintable.
    pub fn awaits_approval(&self) -> bool {
        self.outcome.effect == Effect::Allow
            && self
                .approval
                .as_ref()
                .is_some_and(|a| a.status == ApprovalStatus::Pending)
    }

    /// What the caller is told.
    pub fn kind(&self) -> DecisionKind {
        match self.outcome.effect {
            Effect::Allow if self.awaits_approval() => DecisionKind::ApprovalRequired,
            Effect::Allow => DecisionKind::Allow,
            Effect::Deny => DecisionKind::Deny,
        }
    }

    /// Replaces the outcome with a deny: no grant, no expiry.
    pub fn deny_with(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        self.expires_at = None;
        self.ttl_secs = 0;
    }
}

/// Why an agent is orphaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanReason {
    /// Its `expires` has passed (or is not a datetime).
    Expired,
    /// It has no `owner` (or one that is not a `User` or `Group`), or the directory lacks it.
    NoOwner,
    /// Its owner is not in the directory.
    OwnerNotInDirectory,
}

impl OrphanReason {
    /// The wire spelling: `expired`, `no_owner`, `owner_not_in_directory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NoOwner => "no_owner",
            Self::OwnerNotInDirectory => "owner_not_in_directory",
        }
    }
}

/// An orphaned agent of a chain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleWarning {
    /// The agent's id.
    pub agent: String,
    /// Why it is orphaned.
    pub reason: OrphanReason,
    /// A readable sentence naming the agent and why.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(ttl_secs: u64) -> Outcome {
        Outcome {
            effect: Effect::Allow,
            granted: vec!["read".into()],
            refused: Vec::new(),
            ttl_secs,
            chain: Vec::new(),
            obligations: Vec::new(),
            determining_policies: Vec::new(),
            bundle_version: "v".into(),
            denial: None,
        }
    }

    #[test]
    fn the_upstream_bound_caps_the_grant() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let free = Decision::stamp(allow(900), None, now, None);
        assert_eq!(free.ttl_secs, 900);
        assert_eq!(free.expires_at, Some(now + Duration::from_secs(900)));
        let bound = now + Duration::from_secs(120);
        let capped = Decision::stamp(allow(900), Some("t".into()), now, Some(bound));
        assert_eq!(capped.expires_at, Some(bound));
        assert_eq!(capped.ttl_secs, 120);
        assert_eq!(capped.transaction_id, "t");
        let later = Decision::stamp(allow(60), None, now, Some(bound));
        assert_eq!(later.ttl_secs, 60);
    }

    #[test]
    fn every_stamp_has_its_own_id() {
        let now = SystemTime::now();
        let a = Decision::stamp(allow(1), None, now, None);
        let b = Decision::stamp(allow(1), None, now, None);
        assert_ne!(a.decision_id, b.decision_id);
        assert_ne!(a.transaction_id, b.transaction_id);
    }
}
