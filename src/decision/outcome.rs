//! What the core decides, and the decision a caller receives.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::identity::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Effect {
    Allow,
    Deny,
}

/// Why a requested scope was not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefusalReason {
    UnknownScope,
    AboveCeiling,
    NotPermittedForCaller,
    NotPermittedForPrincipal,
    ForbiddenByPolicy,
    EvaluationError,
    HopDenied,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedScope {
    pub scope: String,
    pub reason: RefusalReason,
    /// The forbids behind [`RefusalReason::ForbiddenByPolicy`].
    pub policy_ids: Vec<String>,
    pub detail: String,
}

/// Why a whole hop was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DenialCode {
    ConnectionNotAllowed,
    ChainTooDeep,
    ChainCycle,
    NoScopeGranted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub code: DenialCode,
    pub detail: String,
}

/// The decision proper: a pure function of the bundle, the request and the settings. It holds
/// nothing that varies per call, so identical questions get identical outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub effect: Effect,
    /// In request order.
    pub granted: Vec<String>,
    pub refused: Vec<RefusedScope>,
    /// Zero on deny.
    pub ttl_secs: u64,
    /// Principal → … → caller → callee.
    pub chain: Vec<Identity>,
    /// Sorted, without duplicates.
    pub obligations: Vec<String>,
    /// Sorted, without duplicates: the permits behind an allow, the forbids behind a deny.
    pub determining_policies: Vec<String>,
    pub bundle_version: String,
    pub denial: Option<Denial>,
}

/// An outcome stamped for one answer: its own id, transaction and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub decision_id: String,
    pub transaction_id: String,
    #[serde(with = "humantime_serde_compat")]
    pub issued_at: SystemTime,
    #[serde(with = "humantime_serde_compat::option")]
    pub expires_at: Option<SystemTime>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Decision {
    /// Gives `outcome` a fresh decision id and its absolute expiry, in the transaction named by
    /// the request or, at a first hop, in a new one.
    pub fn stamp(outcome: Outcome, transaction_id: Option<String>, now: SystemTime) -> Self {
        let expires_at =
            (outcome.effect == Effect::Allow).then(|| now + Duration::from_secs(outcome.ttl_secs));
        Self {
            decision_id: uuid::Uuid::now_v7().to_string(),
            transaction_id: transaction_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            issued_at: now,
            expires_at,
            outcome,
        }
    }
}

/// RFC 3339 timestamps in JSON output.
mod humantime_serde_compat {
    use std::time::SystemTime;

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*t))
    }

    pub mod option {
        use std::time::SystemTime;

        use serde::Serializer;

        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.collect_str(&humantime::format_rfc3339_seconds(*t)),
                None => s.serialize_none(),
            }
        }
    }
}
