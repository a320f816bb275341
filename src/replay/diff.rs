//! What changed between a recorded decision and the candidate bundle's outcome for the same
//! question. A flip of the effect is reported alone: the scopes, TTL and obligations an allow
//! gains or loses with it are its consequences, not changes of their own.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::audit::DecisionRecord;
use crate::decision::{DecisionKind, Effect, InvalidRequest, Outcome};

/// A kind of change a replay reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// Allowed then (or waiting for approval), denied now.
    AllowToDeny,
    /// Denied then, allowed now.
    DenyToAllow,
    /// Still allowed, but scopes granted then are refused now.
    ScopesRefused,
    /// Still allowed, and scopes refused then are granted now.
    ScopesGranted,
    /// Still allowed, for a different TTL.
    TtlChanged,
    /// Still allowed, with other obligations (the approval obligation aside).
    ObligationsChanged,
    /// Still allowed, but now only once a human approves.
    ApprovalNewlyRequired,
    /// Still allowed, and no longer waits for a human.
    ApprovalNoLongerRequired,
    /// The candidate refuses the question as invalid (for example, it no longer declares an
    /// entity type or a context attribute the request uses): the caller would get an error.
    NowInvalid,
}

impl ChangeKind {
    /// The wire and JSON spelling, such as `ALLOW_TO_DENY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowToDeny => "ALLOW_TO_DENY",
            Self::DenyToAllow => "DENY_TO_ALLOW",
            Self::ScopesRefused => "SCOPES_REFUSED",
            Self::ScopesGranted => "SCOPES_GRANTED",
            Self::TtlChanged => "TTL_CHANGED",
            Self::ObligationsChanged => "OBLIGATIONS_CHANGED",
            Self::ApprovalNewlyRequired => "APPROVAL_NEWLY_REQUIRED",
            Self::ApprovalNoLongerRequired => "APPROVAL_NO_LONGER_REQUIRED",
            Self::NowInvalid => "NOW_INVALID",
        }
    }

    /// The kind spelled `s`, as [`ChangeKind::as_str`] spells it.
    pub fn parse(s: &str) -> Option<Self> {
        ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the change turns an answer around: allow to deny, deny to allow, or an answer
    /// into an error.
    pub fn is_flip(self) -> bool {
        matches!(
            self,
            Self::AllowToDeny | Self::DenyToAllow | Self::NowInvalid
        )
    }
}

const ALL: [ChangeKind; 9] = [
    ChangeKind::AllowToDeny,
    ChangeKind::DenyToAllow,
    ChangeKind::ScopesRefused,
    ChangeKind::ScopesGranted,
    ChangeKind::TtlChanged,
    ChangeKind::ObligationsChanged,
    ChangeKind::ApprovalNewlyRequired,
    ChangeKind::ApprovalNoLongerRequired,
    ChangeKind::NowInvalid,
];

/// One change, with what it touched in words: scopes, `300s → 60s`, `+audit -log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Which kind.
    pub kind: ChangeKind,
    /// What it touched, for people.
    pub detail: String,
}

impl Change {
    fn new(kind: ChangeKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// The changes from `old` (whose policies granted `old_ttl_secs` before any upstream bound) to
/// `new`, the candidate's answer to the same question; empty when the caller would be told the
/// same. `approval_obligation` is the obligation only a human's approval meets.
pub fn diff(
    old: &DecisionRecord,
    old_ttl_secs: u64,
    new: &Result<Outcome, InvalidRequest>,
    approval_obligation: &str,
) -> Vec<Change> {
    let new = match new {
        Ok(outcome) => outcome,
        Err(invalid) => return vec![Change::new(ChangeKind::NowInvalid, invalid.to_string())],
    };
    let was_allowed = old.effect != DecisionKind::Deny;
    match (was_allowed, new.effect) {
        (false, Effect::Deny) => Vec::new(),
        (true, Effect::Deny) => {
            let why = new.denial.as_ref().map_or_else(String::new, |d| {
                serde_json::to_value(d.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            });
            vec![Change::new(ChangeKind::AllowToDeny, why)]
        }
        (false, Effect::Allow) => vec![Change::new(ChangeKind::DenyToAllow, new.granted.join(" "))],
        (true, Effect::Allow) => allow_changes(old, old_ttl_secs, new, approval_obligation),
    }
}

/// What changed in an allow that is still an allow.
fn allow_changes(
    old: &DecisionRecord,
    old_ttl_secs: u64,
    new: &Outcome,
    approval_obligation: &str,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let newly_refused: Vec<String> = old
        .granted
        .iter()
        .filter(|s| !new.granted.contains(s))
        .map(|s| {
            let reason = new
                .refused
                .iter()
                .find(|r| &r.scope == s)
                .and_then(|r| serde_json::to_value(r.reason).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            format!("{s} ({reason})")
        })
        .collect();
    if !newly_refused.is_empty() {
        changes.push(Change::new(
            ChangeKind::ScopesRefused,
            newly_refused.join(" "),
        ));
    }
    let newly_granted: Vec<&str> = new
        .granted
        .iter()
        .filter(|s| !old.granted.contains(s))
        .map(String::as_str)
        .collect();
    if !newly_granted.is_empty() {
        changes.push(Change::new(
            ChangeKind::ScopesGranted,
            newly_granted.join(" "),
        ));
    }
    if old_ttl_secs != new.ttl_secs {
        changes.push(Change::new(
            ChangeKind::TtlChanged,
            format!("{old_ttl_secs}s → {}s", new.ttl_secs),
        ));
    }
    let needed = old.obligations.iter().any(|o| o == approval_obligation);
    match (needed, new.needs_approval(approval_obligation)) {
        (false, true) => changes.push(Change::new(
            ChangeKind::ApprovalNewlyRequired,
            approval_obligation,
        )),
        (true, false) => changes.push(Change::new(
            ChangeKind::ApprovalNoLongerRequired,
            approval_obligation,
        )),
        _ => {}
    }
    let others = |list: &[String]| -> BTreeSet<String> {
        list.iter()
            .filter(|o| *o != approval_obligation)
            .cloned()
            .collect()
    };
    let (before, after) = (others(&old.obligations), others(&new.obligations));
    if before != after {
        let added = after.difference(&before).map(|o| format!("+{o}"));
        let removed = before.difference(&after).map(|o| format!("-{o}"));
        let detail: Vec<String> = added.chain(removed).collect();
        changes.push(Change::new(
            ChangeKind::ObligationsChanged,
            detail.join(" "),
        ));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Denial, DenialCode, FieldViolation, RefusalReason, RefusedScope};
    use crate::identity::{Identity, IdentityKind};

    const HUMAN: &str = "human_approval";

    fn record(effect: DecisionKind, granted: &[&str], obligations: &[&str]) -> DecisionRecord {
        let agent = |id: &str| Identity::new(IdentityKind::Agent, id);
        DecisionRecord {
            transaction_id: "t".into(),
            principal: Identity::new(IdentityKind::User, "alice"),
            caller: agent("a"),
            callee: agent("b"),
            chain: Vec::new(),
            chain_line: String::new(),
            effect,
            requested: vec!["read".into(), "write".into()],
            granted: granted.iter().map(|s| (*s).to_owned()).collect(),
            refused: Vec::new(),
            denial: None,
            determining_policies: vec!["p".into()],
            bundle_version: "v1".into(),
            obligations: obligations.iter().map(|s| (*s).to_owned()).collect(),
            ttl_secs: 300,
            pdp_caller: None,
            trace_id: None,
            latency_us: 1,
            source: "evaluated".into(),
            approval: None,
            context: None,
            lifecycle_warnings: Vec::new(),
        }
    }

    fn allow(granted: &[&str], ttl_secs: u64, obligations: &[&str]) -> Outcome {
        Outcome {
            effect: Effect::Allow,
            granted: granted.iter().map(|s| (*s).to_owned()).collect(),
            refused: ["read", "write"]
                .iter()
                .filter(|s| !granted.contains(s))
                .map(|s| RefusedScope {
                    scope: (*s).to_owned(),
                    reason: RefusalReason::NotPermittedForCaller,
                    policy_ids: Vec::new(),
                    detail: String::new(),
                })
                .collect(),
            ttl_secs,
            chain: Vec::new(),
            obligations: obligations.iter().map(|s| (*s).to_owned()).collect(),
            determining_policies: vec!["p".into()],
            bundle_version: "v2".into(),
            denial: None,
        }
    }

    fn deny() -> Outcome {
        Outcome {
            effect: Effect::Deny,
            granted: Vec::new(),
            refused: Vec::new(),
            ttl_secs: 0,
            chain: Vec::new(),
            obligations: Vec::new(),
            determining_policies: vec!["f".into()],
            bundle_version: "v2".into(),
            denial: Some(Denial {
                code: DenialCode::ConnectionNotAllowed,
                detail: String::new(),
            }),
        }
    }

    fn kinds(changes: &[Change]) -> Vec<ChangeKind> {
        changes.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn the_same_answer_is_no_change() {
        let old = record(DecisionKind::Allow, &["read"], &["log"]);
        assert!(diff(&old, 300, &Ok(allow(&["read"], 300, &["log"])), HUMAN).is_empty());
        let denied = record(DecisionKind::Deny, &[], &[]);
        assert!(diff(&denied, 0, &Ok(deny()), HUMAN).is_empty());
    }

    #[test]
    fn a_flip_is_reported_alone_with_why() {
        let old = record(DecisionKind::Allow, &["read"], &["log"]);
        let changes = diff(&old, 300, &Ok(deny()), HUMAN);
        assert_eq!(kinds(&changes), vec![ChangeKind::AllowToDeny]);
        assert_eq!(changes[0].detail, "CONNECTION_NOT_ALLOWED");
        let waiting = record(DecisionKind::ApprovalRequired, &["read"], &[HUMAN]);
        assert_eq!(
            kinds(&diff(&waiting, 300, &Ok(deny()), HUMAN)),
            vec![ChangeKind::AllowToDeny]
        );
        let denied = record(DecisionKind::Deny, &[], &[]);
        let changes = diff(&denied, 0, &Ok(allow(&["read"], 60, &[])), HUMAN);
        assert_eq!(kinds(&changes), vec![ChangeKind::DenyToAllow]);
        assert_eq!(changes[0].detail, "read");
    }

    #[test]
    fn an_allow_that_stays_reports_each_part_that_moved() {
        let old = record(DecisionKind::Allow, &["read", "write"], &["log"]);
        let new = allow(&["read"], 60, &["audit"]);
        let changes = diff(&old, 300, &Ok(new), HUMAN);
        assert_eq!(
            kinds(&changes),
            vec![
                ChangeKind::ScopesRefused,
                ChangeKind::TtlChanged,
                ChangeKind::ObligationsChanged
            ]
        );
        assert_eq!(changes[0].detail, "write (NOT_PERMITTED_FOR_CALLER)");
        assert_eq!(changes[1].detail, "300s → 60s");
        assert_eq!(changes[2].detail, "+audit -log");
        let narrow = record(DecisionKind::Allow, &["read"], &[]);
        assert_eq!(
            kinds(&diff(
                &narrow,
                300,
                &Ok(allow(&["read", "write"], 300, &[])),
                HUMAN
            )),
            vec![ChangeKind::ScopesGranted]
        );
    }

    #[test]
    fn the_approval_obligation_is_its_own_change() {
        let old = record(DecisionKind::Allow, &["read"], &[]);
        let changes = diff(&old, 300, &Ok(allow(&["read"], 300, &[HUMAN])), HUMAN);
        assert_eq!(kinds(&changes), vec![ChangeKind::ApprovalNewlyRequired]);
        let waiting = record(DecisionKind::ApprovalRequired, &["read"], &[HUMAN]);
        let changes = diff(&waiting, 300, &Ok(allow(&["read"], 300, &[])), HUMAN);
        assert_eq!(kinds(&changes), vec![ChangeKind::ApprovalNoLongerRequired]);
    }

    #[test]
    fn a_question_the_candidate_refuses_is_now_invalid() {
        let old = record(DecisionKind::Deny, &[], &[]);
        let invalid: InvalidRequest = FieldViolation::new("callee.type", "is undeclared").into();
        let changes = diff(&old, 0, &Err(invalid), HUMAN);
        assert_eq!(kinds(&changes), vec![ChangeKind::NowInvalid]);
        assert!(changes[0].detail.contains("callee.type"));
    }

    #[test]
    fn kinds_spell_and_parse_both_ways() {
        for kind in ALL {
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
        assert_eq!(ChangeKind::parse("SOMETHING"), None);
    }
}
