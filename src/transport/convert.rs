//! Wire messages to domain types and back. Every check names the wire field it failed on.

use std::collections::HashSet;
use std::time::UNIX_EPOCH;

use prost::Message;
use prost_types::{Struct, Timestamp, value::Kind};
use serde_json::{Map, Number, Value};

use crate::decision::request::{self, FieldViolation, InvalidRequest, Limits};
use crate::decision::{
    ApprovalStatus, Decision, DecisionKind, DenialCode, LifecycleWarning, RefusalReason,
};
use crate::identity::Identity;
use crate::pb;
use crate::pipeline::Question;

/// Converts one `AuthorizeRequest` into a question. Every check names the wire field it
/// failed on (`caller.id`, `scopes[2]`); a batch door locates them in their item. Without a
/// `subject_token` the principal is required; with one, the token names it.
pub fn question(msg: pb::AuthorizeRequest, limits: &Limits) -> Result<Question, InvalidRequest> {
    let mut violations = Vec::new();
    let size = msg.encoded_len();
    if size > limits.max_request_bytes {
        return Err(FieldViolation::new(
            "request",
            format!(
                "is {size} bytes, over the limit of {}",
                limits.max_request_bytes
            ),
        )
        .into());
    }
    let from_token = !msg.subject_token.is_empty();
    type Check = fn(&str, &str, &str, &Limits) -> Result<Identity, Vec<FieldViolation>>;
    let mut identity = |field: &str, r: Option<pb::EntityRef>, check: Check| -> Option<Identity> {
        let Some(r) = r else {
            violations.push(FieldViolation::new(field, "is required"));
            return None;
        };
        check(field, &r.r#type, &r.id, limits)
            .map_err(|v| violations.extend(v))
            .ok()
    };
    let caller = identity("caller", msg.caller, request::identity);
    let callee = identity("callee", msg.callee, request::callee);
    let principal = match (msg.principal, from_token) {
        (None, true) => None,
        (given, _) => Some(identity("principal", given, request::identity)),
    };

    if msg.delegation_chain.len() > limits.max_chain_entries {
        violations.push(FieldViolation::new(
            "delegation_chain",
            format!(
                "has {} entries, over the limit of {}",
                msg.delegation_chain.len(),
                limits.max_chain_entries
            ),
        ));
    }
    let mut delegation_chain = Vec::with_capacity(msg.delegation_chain.len());
    for (i, hop) in msg
        .delegation_chain
        .into_iter()
        .enumerate()
        .take(limits.max_chain_entries)
    {
        let field = format!("delegation_chain[{i}]");
        match request::identity(&field, &hop.r#type, &hop.id, limits) {
            Ok(hop) => delegation_chain.push(hop),
            Err(v) => violations.extend(v),
        }
    }

    let scopes = scope_list("scopes", msg.scopes, limits, &mut violations);
    if scopes.is_empty() && !violations.iter().any(|v| v.field.starts_with("scopes")) {
        violations.push(FieldViolation::new(
            "scopes",
            "must name at least one scope",
        ));
    }
    let ceiling = msg.ceiling.map(|c| {
        scope_list("ceiling.scopes", c.scopes, limits, &mut violations)
            .into_iter()
            .collect::<HashSet<_>>()
    });
    let context = task_context(msg.context, limits, &mut violations);
    let transaction_id = optional_token(
        "transaction_id",
        msg.transaction_id,
        limits,
        &mut violations,
    );
    let approval_id = optional_token("approval_id", msg.approval_id, limits, &mut violations);
    let callee_x5t_s256 = thumbprint("callee_x5t_s256", msg.callee_x5t_s256, &mut violations);

    match (caller, callee, principal) {
        (Some(caller), Some(callee), principal)
            if violations.is_empty() && principal.as_ref().is_none_or(Option::is_some) =>
        {
            Ok(Question {
                caller: Some(caller),
                callee,
                principal: principal.flatten(),
                scopes,
                context,
                delegation_chain,
                ceiling,
                transaction_id,
                subject_token: from_token.then_some(msg.subject_token),
                approval_id,
                callee_attributes: None,
                callee_x5t_s256,
                omit_verdict: msg.omit_verdict,
            })
        }
        _ => Err(InvalidRequest { violations }),
    }
}

/// RFC 8693 §3 token type identifiers.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693 §3: an OAuth access token, such as one a minter issued from a verdict.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Baton's own token type for its signed verdicts, in the style of RFC 8693 §3; what
/// `Exchange` issues.
pub const TOKEN_TYPE_VERDICT: &str = "urn:baton:params:oauth:token-type:verdict";

/// Converts an RFC 8693-shaped `ExchangeRequest` into a question the subject token's holder
/// asks for itself: the callee is the `resource` (or `audience`), the scopes the
/// space-separated `scope`.
pub fn exchange_question(
    msg: pb::ExchangeRequest,
    limits: &Limits,
) -> Result<Question, InvalidRequest> {
    let mut violations = Vec::new();
    if msg.subject_token.is_empty() {
        violations.push(FieldViolation::new("subject_token", "is required"));
    }
    if ![
        "",
        TOKEN_TYPE_JWT,
        TOKEN_TYPE_ACCESS_TOKEN,
        TOKEN_TYPE_VERDICT,
    ]
    .contains(&msg.subject_token_type.as_str())
    {
        violations.push(FieldViolation::new(
            "subject_token_type",
            "must be a JWT, access-token or Baton verdict token type (RFC 8693 §3)",
        ));
    }
    let (field, target) = if msg.resource.is_empty() {
        ("audience", msg.audience)
    } else {
        ("resource", msg.resource)
    };
    let callee = match target.split_once(':') {
        Some((kind, id)) => request::callee(field, kind, id, limits)
            .map_err(|v| violations.extend(v))
            .ok(),
        None => {
            violations.push(FieldViolation::new(
                field,
                "must name the agent as `Agent:id`",
            ));
            None
        }
    };
    let scopes = scope_list(
        "scope",
        msg.scope.split_whitespace().map(str::to_owned).collect(),
        limits,
        &mut violations,
    );
    if scopes.is_empty() && !violations.iter().any(|v| v.field.starts_with("scope")) {
        violations.push(FieldViolation::new("scope", "must name at least one scope"));
    }
    let context = task_context(msg.context, limits, &mut violations);
    match callee {
        Some(callee) if violations.is_empty() => Ok(Question {
            caller: None,
            callee,
            principal: None,
            scopes,
            context,
            delegation_chain: Vec::new(),
            ceiling: None,
            transaction_id: None,
            subject_token: Some(msg.subject_token),
            approval_id: None,
            callee_attributes: None,
            callee_x5t_s256: None,
            omit_verdict: false,
        }),
        _ => Err(InvalidRequest { violations }),
    }
}

/// The task context, or an empty one after a violation.
fn task_context(
    context: Option<Struct>,
    limits: &Limits,
    violations: &mut Vec<FieldViolation>,
) -> Map<String, Value> {
    match context {
        None => Map::new(),
        Some(s) => self::context("context", s, limits).unwrap_or_else(|v| {
            violations.push(v);
            Map::new()
        }),
    }
}

/// An optional opaque identifier, empty meaning absent.
fn optional_token(
    field: &str,
    value: String,
    limits: &Limits,
    violations: &mut Vec<FieldViolation>,
) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    match request::token(field, &value, limits) {
        Ok(()) => Some(value),
        Err(v) => {
            violations.push(v);
            None
        }
    }
}

/// Checks and deduplicates scope names, keeping the first occurrence's position.
fn scope_list(
    field: &str,
    scopes: Vec<String>,
    limits: &Limits,
    violations: &mut Vec<FieldViolation>,
) -> Vec<String> {
    if scopes.len() > limits.max_scopes {
        violations.push(FieldViolation::new(
            field,
            format!(
                "has {} entries, over the limit of {}",
                scopes.len(),
                limits.max_scopes
            ),
        ));
        return Vec::new();
    }
    let mut seen = HashSet::with_capacity(scopes.len());
    let mut out = Vec::with_capacity(scopes.len());
    for (i, scope) in scopes.into_iter().enumerate() {
        match request::scope(&format!("{field}[{i}]"), &scope, limits) {
            Ok(()) => {
                if seen.insert(scope.clone()) {
                    out.push(scope);
                }
            }
            Err(v) => violations.push(v),
        }
    }
    out
}

/// Converts the task context to JSON. Cedar has no null and no floating point, so both are
/// refused here rather than silently altered.
fn context(field: &str, s: Struct, limits: &Limits) -> Result<Map<String, Value>, FieldViolation> {
    let size = s.encoded_len();
    if size > limits.max_context_bytes {
        return Err(FieldViolation::new(
            field,
            format!(
                "is {size} bytes, over the limit of {}",
                limits.max_context_bytes
            ),
        ));
    }
    record(field, s, 1, limits)
}

fn record(
    field: &str,
    s: Struct,
    depth: usize,
    limits: &Limits,
) -> Result<Map<String, Value>, FieldViolation> {
    if depth > limits.max_context_depth {
        return Err(FieldViolation::new(
            field,
            format!("nests deeper than {} levels", limits.max_context_depth),
        ));
    }
    let mut map = Map::with_capacity(s.fields.len());
    for (key, value) in s.fields {
        let path = format!("{field}.{key}");
        let v = json_value(&path, value.kind, depth, limits)?;
        map.insert(key, v);
    }
    Ok(map)
}

fn json_value(
    field: &str,
    kind: Option<Kind>,
    depth: usize,
    limits: &Limits,
) -> Result<Value, FieldViolation> {
    match kind {
        None | Some(Kind::NullValue(_)) => Err(FieldViolation::new(
            field,
            "must not be null: leave the attribute out instead",
        )),
        Some(Kind::BoolValue(b)) => Ok(Value::Bool(b)),
        Some(Kind::StringValue(s)) => Ok(Value::String(s)),
        Some(Kind::NumberValue(n)) => {
            // Cedar numbers are 64-bit integers; 2^63 as f64 is the first value out of range.
            if n.fract() == 0.0 && n >= -(2f64.powi(63)) && n < 2f64.powi(63) {
                Ok(Value::Number(Number::from(n as i64)))
            } else {
                Err(FieldViolation::new(
                    field,
                    format!(
                        "is `{n}`: numbers must be whole and fit in 64 bits (pass decimals as strings)"
                    ),
                ))
            }
        }
        Some(Kind::StructValue(s)) => record(field, s, depth + 1, limits).map(Value::Object),
        Some(Kind::ListValue(list)) => {
            if depth + 1 > limits.max_context_depth {
                return Err(FieldViolation::new(
                    field,
                    format!("nests deeper than {} levels", limits.max_context_depth),
                ));
            }
            list.values
                .into_iter()
                .enumerate()
                .map(|(i, v)| json_value(&format!("{field}[{i}]"), v.kind, depth + 1, limits))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
    }
}

/// A JSON object as a protobuf `Struct`, for clients building `context`. Cedar accepts no
/// floating point, so whole numbers should be sent as such; the server refuses the rest.
pub fn struct_from_json(object: Map<String, Value>) -> Struct {
    Struct {
        fields: object.into_iter().map(|(k, v)| (k, pb_value(v))).collect(),
    }
}

fn pb_value(v: Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(pb_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(struct_from_json(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The wire form of an identity: `{"type": "Agent", "id": "data-analyst"}`.
pub fn entity_ref(identity: &Identity) -> pb::EntityRef {
    pb::EntityRef {
        r#type: identity.kind.as_str().to_owned(),
        id: identity.id.clone(),
    }
}

/// The wire form of what the caller is told.
pub fn decision_kind(kind: DecisionKind) -> pb::Decision {
    match kind {
        DecisionKind::Allow => pb::Decision::Allow,
        DecisionKind::Deny => pb::Decision::Deny,
        DecisionKind::ApprovalRequired => pb::Decision::ApprovalRequired,
    }
}

impl From<Decision> for pb::AuthorizeResponse {
    fn from(d: Decision) -> Self {
        let kind = d.kind();
        let o = d.outcome;
        pb::AuthorizeResponse {
            decision_id: d.decision_id,
            decision: decision_kind(kind) as i32,
            granted_scopes: o.granted,
            refused_scopes: o.refused.into_iter().map(refused_scope).collect(),
            ttl_seconds: d.ttl_secs,
            expires_at: d.expires_at.map(timestamp),
            chain: o.chain.iter().map(entity_ref).collect(),
            obligations: o.obligations,
            determining_policies: o.determining_policies,
            bundle_version: o.bundle_version,
            transaction_id: d.transaction_id,
            denial: o.denial.map(|denial| pb::Denial {
                code: denial_code(denial.code) as i32,
                detail: denial.detail,
            }),
            verdict: String::new(),
            approval: d.approval.map(|a| pb::ApprovalRef {
                approval_id: a.id,
                status: approval_status(a.status) as i32,
                expires_at: Some(unix_timestamp(a.expires_at)),
                decided_by: a.decided_by.unwrap_or_default(),
                approvals_required: u32::from(a.approvals_required),
                approvals_needed: u32::from(a.approvals_needed),
            }),
            lifecycle_warnings: d
                .lifecycle_warnings
                .into_iter()
                .map(lifecycle_warning)
                .collect(),
        }
    }
}

/// The wire form of an orphaned agent of the chain.
pub fn lifecycle_warning(w: LifecycleWarning) -> pb::LifecycleWarning {
    pb::LifecycleWarning {
        agent: w.agent,
        reason: w.reason.as_str().to_owned(),
        detail: w.detail,
    }
}

/// The wire form of where an approval stands.
pub fn approval_status(s: ApprovalStatus) -> pb::ApprovalStatus {
    match s {
        ApprovalStatus::Pending => pb::ApprovalStatus::Pending,
        ApprovalStatus::Approved => pb::ApprovalStatus::Approved,
        ApprovalStatus::Rejected => pb::ApprovalStatus::Rejected,
        ApprovalStatus::Used => pb::ApprovalStatus::Used,
    }
}

/// Seconds since the Unix epoch as a protobuf timestamp.
pub fn unix_timestamp(secs: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(secs).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

pub(super) fn refused_scope(r: crate::decision::RefusedScope) -> pb::RefusedScope {
    pb::RefusedScope {
        scope: r.scope,
        reason: refusal_reason(r.reason) as i32,
        policy_ids: r.policy_ids,
        detail: r.detail,
    }
}

fn refusal_reason(r: RefusalReason) -> pb::RefusalReason {
    match r {
        RefusalReason::UnknownScope => pb::RefusalReason::UnknownScope,
        RefusalReason::AboveCeiling => pb::RefusalReason::AboveCeiling,
        RefusalReason::NotPermittedForCaller => pb::RefusalReason::NotPermittedForCaller,
        RefusalReason::NotPermittedForPrincipal => pb::RefusalReason::NotPermittedForPrincipal,
        RefusalReason::ForbiddenByPolicy => pb::RefusalReason::ForbiddenByPolicy,
        RefusalReason::EvaluationError => pb::RefusalReason::EvaluationError,
        RefusalReason::HopDenied => pb::RefusalReason::HopDenied,
        RefusalReason::Revoked => pb::RefusalReason::Revoked,
    }
}

pub(super) fn denial_code(c: DenialCode) -> pb::DenialCode {
    match c {
        DenialCode::ConnectionNotAllowed => pb::DenialCode::ConnectionNotAllowed,
        DenialCode::ChainTooDeep => pb::DenialCode::ChainTooDeep,
        DenialCode::ChainCycle => pb::DenialCode::ChainCycle,
        DenialCode::NoScopeGranted => pb::DenialCode::NoScopeGranted,
        DenialCode::Revoked => pb::DenialCode::Revoked,
        DenialCode::ApprovalRejected => pb::DenialCode::ApprovalRejected,
        DenialCode::ApprovalExpired => pb::DenialCode::ApprovalExpired,
        DenialCode::ApprovalUsed => pb::DenialCode::ApprovalUsed,
        DenialCode::ApprovalMismatch => pb::DenialCode::ApprovalMismatch,
        DenialCode::ApprovalUnavailable => pb::DenialCode::ApprovalUnavailable,
        DenialCode::AgentOrphaned => pb::DenialCode::AgentOrphaned,
    }
}

pub(super) fn timestamp(t: std::time::SystemTime) -> Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// A certificate thumbprint at `field`: empty means none; otherwise 43 base64url characters.
pub(crate) fn thumbprint(
    field: &str,
    value: String,
    violations: &mut Vec<FieldViolation>,
) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if crate::token::verify::is_thumbprint(&value) {
        return Some(value);
    }
    violations.push(FieldViolation::new(
        field,
        "must be a SHA-256 certificate thumbprint, 43 base64url characters (RFC 8705 `x5t#S256`)",
    ));
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{ListValue, Value as PbValue};

    fn number(n: f64) -> PbValue {
        PbValue {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    fn ctx(pairs: Vec<(&str, PbValue)>) -> Struct {
        Struct {
            fields: pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    #[test]
    fn whole_numbers_become_cedar_longs() {
        let map = context(
            "context",
            ctx(vec![("amount", number(750.0))]),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(map["amount"], serde_json::json!(750));
    }

    #[test]
    fn fractions_nulls_and_huge_numbers_name_their_field() {
        for (value, field) in [
            (number(1.5), "context.amount"),
            (number(1e300), "context.amount"),
            (number(f64::NAN), "context.amount"),
            (
                PbValue {
                    kind: Some(Kind::NullValue(0)),
                },
                "context.amount",
            ),
            (PbValue { kind: None }, "context.amount"),
            (
                PbValue {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![number(0.5)],
                    })),
                },
                "context.amount[0]",
            ),
        ] {
            let err =
                context("context", ctx(vec![("amount", value)]), &Limits::default()).unwrap_err();
            assert_eq!(err.field, field);
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut s = ctx(vec![("leaf", number(1.0))]);
        for _ in 0..10 {
            s = ctx(vec![(
                "inner",
                PbValue {
                    kind: Some(Kind::StructValue(s)),
                },
            )]);
        }
        let err = context("context", s, &Limits::default()).unwrap_err();
        assert!(err.description.contains("deeper"), "{err:?}");
    }
}
