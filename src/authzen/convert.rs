//! AuthZEN evaluations to questions, and answers back. Every check names the AuthZEN member it
//! failed on (`resource.type`, `context.baton.principal.id`), and so does every violation the
//! pipeline finds, renamed from Baton's own fields.
//!
//! | AuthZEN | Baton |
//! |---|---|
//! | `subject` `{type, id}` | the caller (and the principal of a first hop) |
//! | `action.name` | the one scope asked for |
//! | `resource` `{type, id}` | the callee: an agent, or a resource type the bundle declares |
//! | `resource.properties` | the callee's attributes for this evaluation |
//! | `context` (except `baton`) | the task attributes, `context.task` in policies |
//! | `context.baton.principal` | the principal the caller acts for |
//! | `context.baton.subject_token` | the previous hop's credential: a chained hop |
//! | `context.baton.transaction_id`, `approval_id`, `omit_verdict` | as in `Authorize` |

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::wire::{self, Evaluation};
use crate::bundle::PolicyBundle;
use crate::decision::request::{self, FieldViolation, InvalidRequest, Limits};
use crate::decision::{DecisionKind, Effect, attributes};
use crate::identity::Identity;
use crate::mapping::AuthzenMapping;
use crate::pipeline::{Answered, ErrorClass, PipelineError, Question};

/// Baton's own members of an evaluation's context, under `context.baton`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatonMembers {
    principal: Option<Reference>,
    subject_token: Option<String>,
    transaction_id: Option<String>,
    approval_id: Option<String>,
    callee_x5t_s256: Option<String>,
    /// `true`: the PEP only enforces, and no verdict is signed for it.
    #[serde(default)]
    omit_verdict: bool,
}

#[derive(Debug, Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

/// The AuthZEN member that must be present, and is not.
fn missing(field: &str) -> FieldViolation {
    FieldViolation::new(field, "is required")
}

/// The question one evaluation (defaults already applied) asks. The active `bundle` says which
/// resource types exist.
pub(super) fn question(
    evaluation: Evaluation,
    mapping: &AuthzenMapping,
    bundle: &PolicyBundle,
    limits: &Limits,
) -> Result<Question, InvalidRequest> {
    let mut violations = Vec::new();
    let Evaluation {
        subject,
        action,
        resource,
        context,
    } = evaluation;

    let caller = match subject {
        None => {
            violations.push(missing("subject"));
            None
        }
        Some(s) => acting(mapping, "subject", &s.kind, &s.id, limits, &mut violations),
    };

    let scope = match action {
        None => {
            violations.push(missing("action"));
            None
        }
        Some(a) => match request::scope("action.name", &a.name, limits) {
            Ok(()) => Some(a.name),
            Err(v) => {
                violations.push(v);
                None
            }
        },
    };

    let mut callee_attributes = None;
    let callee = match resource {
        None => {
            violations.push(missing("resource"));
            None
        }
        Some(r) => {
            if let Some(properties) = r.properties {
                match attributes::check("resource.properties", &properties, limits) {
                    Ok(()) => callee_attributes = Some(properties),
                    Err(v) => violations.push(v),
                }
            }
            let declared = bundle.contract().entity_types();
            match mapping.resource_kind(&r.kind, declared) {
                Some(kind) => request::callee("resource", kind.as_str(), &r.id, limits)
                    .map_err(|v| violations.extend(v))
                    .ok(),
                None => {
                    violations.push(FieldViolation::new(
                        "resource.type",
                        format!(
                            "is `{}`, which names no entity type of the active bundle (nor of the gateway mapping's `authzen.resource_types`)",
                            clip(&r.kind)
                        ),
                    ));
                    None
                }
            }
        }
    };

    let (task, baton) = match context {
        None => (Map::new(), BatonMembers::default()),
        Some(Value::Object(mut map)) => {
            let baton = match map.remove("baton") {
                None => BatonMembers::default(),
                Some(value) => serde_json::from_value(value).unwrap_or_else(|e| {
                    violations.push(FieldViolation::new("context.baton", clip(&e.to_string())));
                    BatonMembers::default()
                }),
            };
            if let Err(v) = attributes::check("context", &map, limits) {
                violations.push(v);
            }
            (map, baton)
        }
        Some(_) => {
            violations.push(FieldViolation::new("context", "must be a JSON object"));
            (Map::new(), BatonMembers::default())
        }
    };
    let principal = baton.principal.and_then(|p| {
        acting(
            mapping,
            "context.baton.principal",
            &p.kind,
            &p.id,
            limits,
            &mut violations,
        )
    });
    let mut text = |field: &str, value: Option<String>| {
        value.filter(|v| match request::token(field, v, limits) {
            Ok(()) => true,
            Err(e) => {
                violations.push(e);
                false
            }
        })
    };
    let transaction_id = text("context.baton.transaction_id", baton.transaction_id);
    let approval_id = text("context.baton.approval_id", baton.approval_id);
    let subject_token = baton.subject_token;
    let callee_x5t_s256 = crate::transport::convert::thumbprint(
        "context.baton.callee_x5t_s256",
        baton.callee_x5t_s256.unwrap_or_default(),
        &mut violations,
    );
    if subject_token.as_ref().is_some_and(String::is_empty) {
        violations.push(FieldViolation::new(
            "context.baton.subject_token",
            "must not be empty: leave it out for a first hop",
        ));
    }

    let (Some(caller), Some(scope), Some(callee)) = (caller, scope, callee) else {
        return Err(InvalidRequest { violations });
    };
    if !violations.is_empty() {
        return Err(InvalidRequest { violations });
    }
    // A first hop acts for the subject itself unless the context names its principal; a
    // chained hop takes the principal from its token.
    let principal = match (principal, &subject_token) {
        (Some(p), _) => Some(p),
        (None, Some(_)) => None,
        (None, None) => Some(caller.clone()),
    };
    let mut question = Question::new(caller.clone(), callee, caller, vec![scope]);
    question.principal = principal;
    question.context = task;
    question.subject_token = subject_token;
    question.transaction_id = transaction_id;
    question.approval_id = approval_id;
    question.callee_attributes = callee_attributes;
    question.callee_x5t_s256 = callee_x5t_s256;
    question.omit_verdict = baton.omit_verdict;
    Ok(question)
}

/// The acting identity an AuthZEN `{type, id}` at `field` names, or its violations.
fn acting(
    mapping: &AuthzenMapping,
    field: &str,
    kind: &str,
    id: &str,
    limits: &Limits,
    violations: &mut Vec<FieldViolation>,
) -> Option<Identity> {
    let Some(kind) = mapping.subject_kind(kind) else {
        violations.push(FieldViolation::new(
            format!("{field}.type"),
            format!(
                "is `{}`, which names no acting kind: `user`, `service`, `agent`, or a type the gateway mapping's `authzen.subject_types` names",
                clip(kind)
            ),
        ));
        return None;
    };
    request::identity(field, kind.as_str(), id, limits)
        .map_err(|v| violations.extend(v))
        .ok()
}

/// The answer to an evaluation the pipeline answered. Only an ALLOW is `decision: true`; an
/// approval still pending is `false`, with the approval to wait for.
pub(super) fn decision(answered: Answered) -> wire::Decision {
    let Answered { decision, verdict } = answered;
    let allowed =
        decision.kind() == DecisionKind::Allow && decision.outcome.effect == Effect::Allow;
    let mut context = Map::new();
    context.insert("decision_id".into(), decision.decision_id.into());
    context.insert("transaction_id".into(), decision.transaction_id.into());
    if allowed {
        if let Some(verdict) = verdict {
            context.insert("verdict".into(), verdict.into());
        }
        context.insert("ttl_secs".into(), decision.ttl_secs.into());
        if !decision.outcome.obligations.is_empty() {
            context.insert("obligations".into(), decision.outcome.obligations.into());
        }
    } else {
        let outcome = &decision.outcome;
        let why = outcome
            .denial
            .as_ref()
            .map(|d| d.detail.clone())
            .or_else(|| outcome.refused.first().map(|r| r.detail.clone()));
        if let Some(why) = why {
            context.insert("reason_admin".into(), json!({ "en": why }));
        }
        if let Some(denial) = &outcome.denial {
            context.insert(
                "denial".into(),
                json!({ "code": denial.code, "detail": denial.detail }),
            );
        }
        if !outcome.refused.is_empty() {
            let refused: Vec<Value> = outcome
                .refused
                .iter()
                .map(|r| json!({ "action": r.scope, "reason": r.reason, "detail": r.detail }))
                .collect();
            context.insert("refused".into(), refused.into());
        }
        if let Some(approval) = &decision.approval {
            context.insert("approval_id".into(), approval.id.clone().into());
            context.insert(
                "approval_status".into(),
                serde_json::to_value(approval.status).unwrap_or_default(),
            );
        }
    }
    wire::Decision {
        decision: allowed,
        context,
    }
}

/// `decision: false` for a question that got no decision, saying why, with Baton's field
/// names turned into AuthZEN's.
pub(super) fn refused(error: &PipelineError) -> wire::Decision {
    let mut context = Map::new();
    context.insert("error".into(), error_body(error));
    context.insert(
        "reason_admin".into(),
        json!({ "en": clip_long(&message(error)) }),
    );
    wire::Decision {
        decision: false,
        context,
    }
}

/// `{code, reason?, message, fields?}` for an error.
pub(super) fn error_body(error: &PipelineError) -> Value {
    let class = error.class();
    let mut body = Map::new();
    body.insert("code".into(), class.as_str().into());
    if let Some(reason) = error.reason() {
        body.insert("reason".into(), reason.into());
    }
    body.insert("message".into(), clip_long(&message(error)).into());
    if let PipelineError::InvalidArgument(invalid) = error {
        let fields: Vec<Value> = invalid
            .violations
            .iter()
            .map(|v| json!({ "field": authzen_field(&v.field), "description": v.description }))
            .collect();
        body.insert("fields".into(), fields.into());
    }
    Value::Object(body)
}

fn message(error: &PipelineError) -> String {
    match error {
        PipelineError::InvalidArgument(invalid) => invalid
            .violations
            .iter()
            .map(|v| format!("`{}` {}", authzen_field(&v.field), v.description))
            .collect::<Vec<_>>()
            .join("; "),
        // The cause stays in the log: it may name local paths.
        _ if error.class() == ErrorClass::Internal => {
            tracing::error!(error = %crate::telemetry::chain(error), "internal error");
            "internal error; see the server log".to_owned()
        }
        _ => error.to_string(),
    }
}

/// Baton's name for a request field, as the AuthZEN member it came from. Names already in
/// AuthZEN terms pass unchanged.
pub(super) fn authzen_field(field: &str) -> String {
    let split = field.find(['.', '[']).unwrap_or(field.len());
    let (head, rest) = field.split_at(split);
    let renamed = match head {
        "caller" => "subject",
        "callee" => "resource",
        "scopes" => return "action.name".to_owned(),
        "principal" => "context.baton.principal",
        "subject_token" | "transaction_id" | "approval_id" => {
            return format!("context.baton.{field}");
        }
        _ => return field.to_owned(),
    };
    format!("{renamed}{rest}")
}

/// User input quoted in an error stays short.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn clip_long(s: &str) -> String {
    let mut out: String = s.chars().take(1024).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baton_fields_read_as_authzen_members() {
        assert_eq!(authzen_field("caller.type"), "subject.type");
        assert_eq!(
            authzen_field("callee.properties.ownerID"),
            "resource.properties.ownerID"
        );
        assert_eq!(authzen_field("scopes[0]"), "action.name");
        assert_eq!(authzen_field("principal.id"), "context.baton.principal.id");
        assert_eq!(
            authzen_field("transaction_id"),
            "context.baton.transaction_id"
        );
        assert_eq!(authzen_field("context.amount"), "context.amount");
        assert_eq!(authzen_field("resource.type"), "resource.type");
    }
}
