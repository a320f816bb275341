//! `ReplayBundle`'s messages and the domain's: the window asked for, and the report both ways
//! (the server sends it, `baton policy replay --server` reads it back).

use std::time::SystemTime;

use crate::decision::{FieldViolation, InvalidRequest};
use crate::pb;
use crate::replay::{ChangeKind, Example, Group, Phase, ReplayReport, Skipped, Window};

/// The window a request asks for, refused when `from` is not before `to`.
pub fn window(request: &pb::ReplayBundleRequest) -> Result<Window, InvalidRequest> {
    let from = request
        .from
        .map(|t| super::audit_convert::time("from", t))
        .transpose()?;
    let to = request
        .to
        .map(|t| super::audit_convert::time("to", t))
        .transpose()?;
    Window::new(from, to).map_err(|e| FieldViolation::new("from", e.to_string()).into())
}

/// `t` as a protobuf timestamp.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

impl From<ReplayReport> for pb::ReplayBundleResponse {
    fn from(r: ReplayReport) -> Self {
        Self {
            candidate_version: r.candidate_version,
            from: r.from.unwrap_or_default(),
            to: r.to.unwrap_or_default(),
            records: r.records,
            decisions: r.decisions,
            replayed: r.replayed,
            unchanged: r.unchanged,
            changed: r.changed,
            skipped_without_full_context: r.skipped.without_full_context,
            skipped_revoked: r.skipped.revoked,
            skipped_approval_gate: r.skipped.approval_gate,
            skipped_lifecycle: r.skipped.lifecycle,
            groups: r
                .groups
                .into_iter()
                .map(|g| pb::ReplayGroup {
                    change: g.change.as_str().to_owned(),
                    old_policies: g.old_policies,
                    new_policies: g.new_policies,
                    count: g.count,
                    details: g.details,
                    examples: g
                        .examples
                        .into_iter()
                        .map(|e| pb::ReplayExample {
                            transaction_id: e.transaction_id,
                            decision_id: e.decision_id,
                        })
                        .collect(),
                })
                .collect(),
            phases: r
                .phases
                .into_iter()
                .map(|p| pb::ReplayPhase {
                    name: p.name,
                    millis: p.millis,
                })
                .collect(),
        }
    }
}

/// A change kind this build does not know (a newer server's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server reported a change `{0}` this client does not know; upgrade it")]
pub struct UnknownChange(pub String);

impl TryFrom<pb::ReplayBundleResponse> for ReplayReport {
    type Error = UnknownChange;

    fn try_from(r: pb::ReplayBundleResponse) -> Result<Self, UnknownChange> {
        let open = |s: String| (!s.is_empty()).then_some(s);
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                Ok(Group {
                    change: ChangeKind::parse(&g.change).ok_or(UnknownChange(g.change))?,
                    old_policies: g.old_policies,
                    new_policies: g.new_policies,
                    count: g.count,
                    details: g.details,
                    examples: g
                        .examples
                        .into_iter()
                        .map(|e| Example {
                            transaction_id: e.transaction_id,
                            decision_id: e.decision_id,
                        })
                        .collect(),
                })
            })
            .collect::<Result<_, UnknownChange>>()?;
        Ok(Self {
            candidate_version: r.candidate_version,
            from: open(r.from),
            to: open(r.to),
            records: r.records,
            decisions: r.decisions,
            replayed: r.replayed,
            unchanged: r.unchanged,
            changed: r.changed,
            skipped: Skipped {
                without_full_context: r.skipped_without_full_context,
                revoked: r.skipped_revoked,
                approval_gate: r.skipped_approval_gate,
                lifecycle: r.skipped_lifecycle,
            },
            groups,
            phases: r
                .phases
                .into_iter()
                .map(|p| Phase {
                    name: p.name,
                    millis: p.millis,
                })
                .collect(),
        })
    }
}
