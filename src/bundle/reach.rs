//! Who may call an agent and whom it may call, as a bundle's permits say: for every agent of
//! the directory, the permits whose scope names it (or a group or type it belongs to) as the
//! resource (its callers) or as the principal (its callees). Read from policy scopes alone, so
//! a permit's `when` conditions may narrow what is listed; it answers "which permits could let
//! this agent act", which is what a reviewer starts from.

use cedar_policy::{
    ActionConstraint, Effect, Entities, EntityUid, Policy, PrincipalConstraint, ResourceConstraint,
};
use serde_json::Value;

use super::PolicyBundle;
use super::index::Subject;
use crate::identity::IdentityKind;

/// One agent of a bundle's directory and the permits that reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReach {
    /// The agent's id.
    pub id: String,
    /// Its directory attributes (`owner`, `expires`, …) as compact JSON, sorted by name.
    pub attributes: Vec<(String, String)>,
    /// The groups it belongs to, directly or not.
    pub groups: Vec<String>,
    /// The permits that let someone call it.
    pub callers: Vec<Reach>,
    /// The permits that let it call someone.
    pub callees: Vec<Reach>,
}

/// One permit, seen from one agent: who is on the other side, and for which actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The permit's id.
    pub policy: String,
    /// The other side as the permit's scope names it: `Agent::"refund-agent"`,
    /// `in Group::"support"`, `any Agent`, or `anyone`.
    pub other: String,
    /// The actions, as the scope names them, or `any action`.
    pub actions: String,
    /// Whether the permit has `when`/`unless` conditions that may narrow it.
    pub conditional: bool,
}

fn scope_text(
    any: bool,
    eq: Option<&EntityUid>,
    within: Option<&EntityUid>,
    is: Option<String>,
) -> String {
    match (any, eq, within, is) {
        (true, ..) => "anyone".to_owned(),
        (_, Some(u), ..) => u.to_string(),
        (_, None, Some(u), Some(t)) => format!("{t} in {u}"),
        (_, None, Some(u), None) => format!("in {u}"),
        (_, None, None, Some(t)) => format!("any {t}"),
        (_, None, None, None) => "anyone".to_owned(),
    }
}

fn principal_text(c: &PrincipalConstraint) -> String {
    match c {
        PrincipalConstraint::Any => scope_text(true, None, None, None),
        PrincipalConstraint::Eq(u) => scope_text(false, Some(u), None, None),
        PrincipalConstraint::In(u) => scope_text(false, None, Some(u), None),
        PrincipalConstraint::Is(t) => scope_text(false, None, None, Some(t.to_string())),
        PrincipalConstraint::IsIn(t, u) => scope_text(false, None, Some(u), Some(t.to_string())),
    }
}

fn resource_text(c: &ResourceConstraint) -> String {
    match c {
        ResourceConstraint::Any => scope_text(true, None, None, None),
        ResourceConstraint::Eq(u) => scope_text(false, Some(u), None, None),
        ResourceConstraint::In(u) => scope_text(false, None, Some(u), None),
        ResourceConstraint::Is(t) => scope_text(false, None, None, Some(t.to_string())),
        ResourceConstraint::IsIn(t, u) => scope_text(false, None, Some(u), Some(t.to_string())),
    }
}

fn actions_text(c: &ActionConstraint) -> String {
    match c {
        ActionConstraint::Any => "any action".to_owned(),
        ActionConstraint::Eq(a) => a.id().unescaped().to_owned(),
        ActionConstraint::In(list) => list
            .iter()
            .map(|a| a.id().unescaped().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn principal_matches(c: &PrincipalConstraint, uid: &EntityUid, groups: &[EntityUid]) -> bool {
    let within = |u: &EntityUid| u == uid || groups.contains(u);
    match c {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::Eq(u) => u == uid,
        PrincipalConstraint::In(u) => within(u),
        PrincipalConstraint::Is(t) => t == uid.type_name(),
        PrincipalConstraint::IsIn(t, u) => t == uid.type_name() && within(u),
    }
}

fn resource_matches(c: &ResourceConstraint, uid: &EntityUid, groups: &[EntityUid]) -> bool {
    let within = |u: &EntityUid| u == uid || groups.contains(u);
    match c {
        ResourceConstraint::Any => true,
        ResourceConstraint::Eq(u) => u == uid,
        ResourceConstraint::In(u) => within(u),
        ResourceConstraint::Is(t) => t == uid.type_name(),
        ResourceConstraint::IsIn(t, u) => t == uid.type_name() && within(u),
    }
}

/// Whether `policy` has conditions beyond its scope.
fn conditional(policy: &Policy) -> bool {
    policy
        .to_json()
        .ok()
        .and_then(|j| {
            j.get("conditions")
                .and_then(Value::as_array)
                .map(|c| !c.is_empty())
        })
        .unwrap_or(true)
}

fn attributes(entities: &Entities, uid: &EntityUid) -> Vec<(String, String)> {
    let Some(Value::Object(attrs)) = entities
        .get(uid)
        .and_then(|e| e.to_json_value().ok())
        .and_then(|mut j| j.get_mut("attrs").map(Value::take))
    else {
        return Vec::new();
    };
    attrs
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (name, text)
        })
        .collect()
}

/// Every agent of `bundle`'s directory, by id, with the permits that reach it.
pub fn agents(bundle: &PolicyBundle) -> Vec<AgentReach> {
    let Some(agent_type) = bundle.contract().entity_type(&IdentityKind::Agent) else {
        return Vec::new();
    };
    let entities = bundle.entities();
    let permits: Vec<&Policy> = bundle
        .policies()
        .iter()
        .filter(|p| p.effect() == Effect::Permit)
        .collect();
    let mut agents: Vec<AgentReach> = entities
        .iter()
        .map(|e| e.uid())
        .filter(|uid| uid.type_name() == agent_type)
        .map(|uid| {
            let subject = Subject::new(&uid, entities);
            let mut groups: Vec<EntityUid> = subject.ancestors().cloned().collect();
            groups.sort_by_key(ToString::to_string);
            let reach = |policy: &Policy, other: String| Reach {
                policy: policy.id().to_string(),
                other,
                actions: actions_text(&policy.action_constraint()),
                conditional: conditional(policy),
            };
            let callers = permits
                .iter()
                .filter(|p| resource_matches(&p.resource_constraint(), &uid, &groups))
                .map(|p| reach(p, principal_text(&p.principal_constraint())))
                .collect();
            let callees = permits
                .iter()
                .filter(|p| principal_matches(&p.principal_constraint(), &uid, &groups))
                .map(|p| reach(p, resource_text(&p.resource_constraint())))
                .collect();
            AgentReach {
                id: uid.id().unescaped().to_owned(),
                attributes: attributes(entities, &uid),
                groups: groups.iter().map(ToString::to_string).collect(),
                callers,
                callees,
            }
        })
        .collect();
    agents.sort_by(|a, b| a.id.cmp(&b.id));
    agents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refund_agent_is_reached_by_the_support_assistant_and_support_staff() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let bundle = PolicyBundle::load(&dir).unwrap();
        let agents = agents(&bundle);
        let refund = agents.iter().find(|a| a.id == "refund-agent").unwrap();
        let callers: Vec<(&str, &str)> = refund
            .callers
            .iter()
            .map(|r| (r.policy.as_str(), r.other.as_str()))
            .collect();
        assert!(callers.contains(&(
            "support-assistant-invokes-refunds",
            r#"Agent::"support-assistant""#
        )));
        assert!(callers.contains(&("support-staff-handle-refunds", r#"in Group::"support""#)));
        let assistant = agents.iter().find(|a| a.id == "support-assistant").unwrap();
        assert!(
            assistant
                .callees
                .iter()
                .any(|r| r.other == r#"Agent::"refund-agent""# && r.actions == "refunds.issue")
        );
    }
}
