//! `QueryAudit` messages to audit queries, and audit records to messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

use super::convert::{denial_code, entity_ref, refused_scope, timestamp};
use crate::audit::query::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::audit::{AuditEvent, AuditQuery, AuditRecord, Selector, SignoffMention};
use crate::decision::{FieldViolation, InvalidRequest};
use crate::identity::{Identity, IdentityKind};
use crate::pb;

/// The query a request asks, naming the field at fault when it asks nothing sensible.
pub fn audit_query(msg: pb::QueryAuditRequest) -> Result<AuditQuery, InvalidRequest> {
    let mut selectors = Vec::new();
    if !msg.decision_id.is_empty() {
        selectors.push(("decision_id", Selector::DecisionId(msg.decision_id)));
    }
    if !msg.transaction_id.is_empty() {
        selectors.push(("transaction_id", Selector::Transaction(msg.transaction_id)));
    }
    if let Some(p) = msg.principal {
        if p.r#type.is_empty() || p.id.is_empty() {
            return Err(violation("principal", "must name a type and an id"));
        }
        selectors.push((
            "principal",
            Selector::Principal(format!("{}:{}", p.r#type, p.id)),
        ));
    }
    if !msg.agent.is_empty() {
        selectors.push(("agent", Selector::Agent(msg.agent)));
    }
    if selectors.len() > 1 {
        let names: Vec<&str> = selectors.iter().map(|(name, _)| *name).collect();
        return Err(violation(
            names[1],
            &format!("cannot be combined with `{}`: name one of them", names[0]),
        ));
    }
    let selector = selectors.pop().map_or(Selector::All, |(_, s)| s);
    let from = msg.start_time.map(|t| time("start_time", t)).transpose()?;
    let until = msg.end_time.map(|t| time("end_time", t)).transpose()?;
    if let (Some(from), Some(until)) = (from, until)
        && until < from
    {
        return Err(violation("end_time", "is before `start_time`"));
    }
    let page_size = match usize::try_from(msg.page_size) {
        Ok(0) => DEFAULT_PAGE_SIZE,
        Ok(n) if n <= MAX_PAGE_SIZE => n,
        _ => {
            return Err(violation(
                "page_size",
                &format!("must be at most {MAX_PAGE_SIZE}"),
            ));
        }
    };
    let offset = if msg.page_token.is_empty() {
        0
    } else {
        msg.page_token
            .parse()
            .map_err(|_| violation("page_token", "is not a token this service issued"))?
    };
    let kind = match msg.kind.as_str() {
        "" => None,
        kind @ ("decision"
        | "revoked"
        | "revocation_lifted"
        | "approval_granted"
        | "approval_rejected"
        | "shadow_disagreement") => Some(kind.to_owned()),
        _ => {
            return Err(violation(
                "kind",
                "is not a record kind: expected `decision`, `revoked`, `revocation_lifted`, `approval_granted`, `approval_rejected` or `shadow_disagreement`",
            ));
        }
    };
    Ok(AuditQuery {
        selector,
        from,
        until,
        page_size,
        offset,
        kind,
    })
}

fn violation(field: &str, why: &str) -> InvalidRequest {
    InvalidRequest::from(FieldViolation::new(field, why))
}

pub(super) fn time(field: &str, t: Timestamp) -> Result<SystemTime, InvalidRequest> {
    let secs = u64::try_from(t.seconds).map_err(|_| violation(field, "is before 1970"))?;
    let nanos = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| violation(field, "has nanos out of range"))?;
    UNIX_EPOCH
        .checked_add(Duration::new(secs, nanos))
        .ok_or_else(|| violation(field, "is out of range"))
}

/// The wire form of an approver's answer. An approver named otherwise than its admin is
/// named by its directory identity, `User:id`.
fn signoff(s: SignoffMention) -> pb::ApprovalSignoff {
    let identity = (s.approver != s.admin)
        .then(|| s.approver.split_once(':'))
        .flatten()
        .and_then(|(kind, id)| Some(Identity::new(IdentityKind::parse(kind)?, id)));
    pb::ApprovalSignoff {
        identity: identity.as_ref().map(entity_ref),
        approver: s.approver,
        admin: s.admin,
        approved: s.approved,
        at: Some(timestamp(s.at)),
        rationale: s.rationale,
    }
}

/// The page token that resumes after `offset` matching records.
pub fn page_token(next_offset: Option<usize>) -> String {
    next_offset.map(|n| n.to_string()).unwrap_or_default()
}

impl From<AuditRecord> for pb::AuditRecord {
    fn from(record: AuditRecord) -> Self {
        use pb::audit_record::Event;
        let kind = record.event.kind().to_owned();
        let event = match record.event {
            AuditEvent::Decision(d) => Event::Decision(pb::DecisionAudit {
                transaction_id: d.transaction_id,
                principal: Some(entity_ref(&d.principal)),
                caller: Some(entity_ref(&d.caller)),
                callee: Some(entity_ref(&d.callee)),
                chain: d.chain.iter().map(entity_ref).collect(),
                chain_line: d.chain_line,
                decision: super::convert::decision_kind(d.effect) as i32,
                requested_scopes: d.requested,
                granted_scopes: d.granted,
                refused_scopes: d.refused.into_iter().map(refused_scope).collect(),
                denial: d.denial.map(|denial| pb::Denial {
                    code: denial_code(denial.code) as i32,
                    detail: denial.detail,
                }),
                determining_policies: d.determining_policies,
                bundle_version: d.bundle_version,
                obligations: d.obligations,
                ttl_seconds: d.ttl_secs,
                pdp_caller: d.pdp_caller.unwrap_or_default(),
                trace_id: d.trace_id.unwrap_or_default(),
                latency_micros: d.latency_us,
                source: d.source,
                approval: d.approval.map(|a| pb::DecisionApproval {
                    approval_id: a.approval_id,
                    status: super::convert::approval_status(a.status) as i32,
                    decided_by: a.decided_by.unwrap_or_default(),
                    approvers: a.approvers.into_iter().map(signoff).collect(),
                }),
                lifecycle_warnings: d
                    .lifecycle_warnings
                    .into_iter()
                    .map(super::convert::lifecycle_warning)
                    .collect(),
            }),
            AuditEvent::Revoked(r) | AuditEvent::RevocationLifted(r) => {
                Event::Revocation(pb::RevocationAudit {
                    target_kind: r.target_kind,
                    target: r.target,
                    revoked_by: r.by,
                    reason: r.reason,
                    expires_at: r.expires_at.map(timestamp),
                })
            }
            AuditEvent::ApprovalGranted(a) | AuditEvent::ApprovalRejected(a) => {
                Event::Approval(pb::ApprovalAudit {
                    approval_id: a.approval_id,
                    transaction_id: a.transaction_id.unwrap_or_default(),
                    request_hash: a.request_hash,
                    approver: a.approver,
                    rationale: a.rationale,
                    admin: a.admin.unwrap_or_default(),
                    approvals_required: u32::from(a.approvals_required),
                    approvals_needed: u32::from(a.approvals_needed),
                })
            }
            AuditEvent::ShadowDisagreement(s) => {
                Event::ShadowDisagreement(pb::ShadowDisagreementAudit {
                    changes: s.disagreement.changes(),
                    policies: s.disagreement.policies,
                    decision_id: s.decision_id,
                    transaction_id: s.transaction_id,
                    principal: Some(entity_ref(&s.principal)),
                    caller: Some(entity_ref(&s.caller)),
                    callee: Some(entity_ref(&s.callee)),
                    requested_scopes: s.requested,
                    live_version: s.live_version,
                    shadow_revision: s.shadow_revision,
                    shadow_version: s.shadow_version,
                })
            }
        };
        pb::AuditRecord {
            id: record.id,
            kind,
            time: Some(timestamp(record.time)),
            event: Some(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(e: InvalidRequest) -> Vec<String> {
        e.violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn one_selector_at_most_and_a_sane_page() {
        let both = pb::QueryAuditRequest {
            transaction_id: "t".into(),
            agent: "a".into(),
            ..Default::default()
        };
        assert_eq!(fields_of(audit_query(both).unwrap_err()), ["agent"]);
        let big = pb::QueryAuditRequest {
            page_size: 5000,
            ..Default::default()
        };
        assert_eq!(fields_of(audit_query(big).unwrap_err()), ["page_size"]);
        let token = pb::QueryAuditRequest {
            page_token: "x".into(),
            ..Default::default()
        };
        assert_eq!(fields_of(audit_query(token).unwrap_err()), ["page_token"]);
        let query = audit_query(pb::QueryAuditRequest {
            transaction_id: "t".into(),
            page_token: page_token(Some(20)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(query.selector, Selector::Transaction("t".into()));
        assert_eq!((query.offset, query.page_size), (20, DEFAULT_PAGE_SIZE));
    }

    #[test]
    fn a_range_must_not_end_before_it_starts() {
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        let backwards = pb::QueryAuditRequest {
            start_time: at(100),
            end_time: at(50),
            ..Default::default()
        };
        assert_eq!(fields_of(audit_query(backwards).unwrap_err()), ["end_time"]);
    }
}
