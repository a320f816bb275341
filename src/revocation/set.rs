//! Revocations in force, and the check every request passes before any cache: pure data.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::decision::{
    DecisionRequest, Denial, DenialCode, Effect, Outcome, RefusalReason, RefusedScope,
};
use crate::identity::{Identity, IdentityKind};

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    /// The kill switch: the agent can neither call, be called, nor appear in a chain.
    Agent(String),
    /// Nothing is authorized on this identity's behalf.
    Principal(Identity),
    /// Every hop of a task, and every token minted for it.
    Transaction(String),
    /// One verdict (its decision id, the `jti`), and whatever is presented or minted from it.
    Verdict(String),
}

impl Target {
    /// The field name the shared store keeps it under.
    pub fn key(&self) -> String {
        match self {
            Self::Agent(id) => format!("agent:{id}"),
            Self::Principal(who) => format!("principal:{}:{}", who.kind, who.id),
            Self::Transaction(id) => format!("txn:{id}"),
            Self::Verdict(id) => format!("verdict:{id}"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Agent(id) => write!(f, "agent {id}"),
            Self::Principal(who) => write!(f, "principal {who}"),
            Self::Transaction(id) => write!(f, "transaction {id}"),
            Self::Verdict(id) => write!(f, "verdict {id}"),
        }
    }
}

/// One revocation: what it applies to, who made it, why, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What may no longer act.
    pub target: Target,
    /// Why, as the revoker wrote it.
    pub reason: String,
    /// Who revoked, by admin token name.
    pub revoked_by: String,
    /// Seconds since the Unix epoch.
    pub revoked_at: u64,
    /// When it lapses, in seconds since the Unix epoch; `None` keeps it in force until it is
    /// lifted.
    pub expires_at: Option<u64>,
}

impl Revocation {
    /// Whether it still applies at `now`, seconds since the Unix epoch.
    pub fn in_force(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

/// An immutable snapshot, swapped whole when revocations change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationSet {
    by_target: HashMap<Target, Revocation>,
    /// Agent ids, so the per-identity check needs no allocation.
    agents: HashMap<String, Target>,
}

impl RevocationSet {
    /// The set of `revocations`; of two with the same target, the later is kept.
    pub fn new(revocations: impl IntoIterator<Item = Revocation>) -> Self {
        let mut set = Self::default();
        for r in revocations {
            if let Target::Agent(id) = &r.target {
                set.agents.insert(id.clone(), r.target.clone());
            }
            set.by_target.insert(r.target.clone(), r);
        }
        set
    }

    /// Whether the set holds no revocation, lapsed or not.
    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// Every revocation held, lapsed or not.
    pub fn all(&self) -> impl Iterator<Item = &Revocation> {
        self.by_target.values()
    }

    /// In force at `now`, in no particular order.
    pub fn in_force(&self, now: u64) -> impl Iterator<Item = &Revocation> {
        self.by_target.values().filter(move |r| r.in_force(now))
    }

    /// The revocation of `target`, if one is in force at `now`.
    pub fn get(&self, target: &Target, now: u64) -> Option<&Revocation> {
        self.by_target.get(target).filter(|r| r.in_force(now))
    }

    /// The first revocation in force that touches this hop: its principal, any agent of its
    /// chain, its transaction, the token it presents, or any verdict that token derives from.
    pub fn check(
        &self,
        request: &DecisionRequest,
        presented: &Presented<'_>,
        now: u64,
    ) -> Option<&Revocation> {
        let members = std::iter::once(&request.principal)
            .chain(&request.delegation_chain)
            .chain([&request.caller, &request.callee]);
        self.touching(
            &request.principal,
            members,
            request.transaction_id.as_deref(),
            presented.ids(),
            now,
        )
    }

    /// The first revocation in force of any of these: an agent among `members`, the
    /// `principal`, the `transaction`, or one of the token and verdict ids `tokens`.
    pub fn touching<'a>(
        &self,
        principal: &Identity,
        members: impl IntoIterator<Item = &'a Identity>,
        transaction: Option<&str>,
        tokens: impl IntoIterator<Item = &'a str>,
        now: u64,
    ) -> Option<&Revocation> {
        if self.is_empty() {
            return None;
        }
        let hit = |target: Target| self.get(&target, now);
        for who in members {
            if who.kind == IdentityKind::Agent
                && let Some(r) = self.agents.get(&who.id).and_then(|t| self.get(t, now))
            {
                return Some(r);
            }
        }
        if let Some(r) = hit(Target::Principal(principal.clone())) {
            return Some(r);
        }
        if let Some(r) = transaction.and_then(|txn| hit(Target::Transaction(txn.to_owned()))) {
            return Some(r);
        }
        tokens
            .into_iter()
            .find_map(|id| hit(Target::Verdict(id.to_owned())))
    }
}

/// What a hop presents besides its chain: the `jti` of its subject token, and every verdict
/// that token derives from. Revoking any of them revokes the hop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The `jti` of the subject token, if the hop presents one.
    pub token_id: Option<&'a str>,
    /// The verdicts the token derives from, earliest first.
    pub verdicts: &'a [String],
}

impl<'a> Presented<'a> {
    fn ids(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.token_id
            .into_iter()
            .chain(self.verdicts.iter().map(String::as_str))
    }
}

/// The deny a revoked hop gets: every scope refused as revoked, the revocation named. Never
/// cached: it is decided before any cache, on every request.
pub fn revoked_outcome(
    request: &DecisionRequest,
    chain: Vec<Identity>,
    revocation: &Revocation,
    bundle_version: &str,
) -> Outcome {
    let detail = format!("{} is revoked: {}", revocation.target, revocation.reason);
    Outcome {
        effect: Effect::Deny,
        granted: Vec::new(),
        refused: request
            .scopes
            .iter()
            .map(|scope| RefusedScope {
                scope: scope.clone(),
                reason: RefusalReason::Revoked,
                policy_ids: Vec::new(),
                detail: detail.clone(),
            })
            .collect(),
        ttl_secs: 0,
        chain,
        obligations: Vec::new(),
        determining_policies: Vec::new(),
        bundle_version: bundle_version.to_owned(),
        denial: Some(Denial {
            code: DenialCode::Revoked,
            detail,
        }),
    }
}
