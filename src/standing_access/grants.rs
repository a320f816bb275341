//! The standing grants of a bundle: every (caller agent → callee, scope) its policies allow,
//! found by Cedar evaluation over the directory.
//!
//! A grant is standing access whatever the task: each permit is taken with its `when` and
//! `unless` conditions assumed met, and only forbids without conditions apply. A permit that
//! holds only for some contexts (`when { context.delegated }`) is standing access all the same,
//! and a conditional forbid may not apply at all, so neither narrows the review.

use cedar_policy::{Authorizer, Context, Decision, Effect, EntityUid, Policy, PolicySet, Request};

use crate::bundle::PolicyBundle;
use crate::identity::{Identity, IdentityKind};

/// The evaluations a review spends on grants by default: enough for a few hundred agents.
pub const DEFAULT_MAX_EVALUATIONS: u64 = 2_000_000;

/// One standing grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// The agent that may call.
    pub caller: Identity,
    /// What it may call: an agent or a resource.
    pub callee: Identity,
    /// The scope it may be granted there.
    pub scope: String,
}

/// Why the grants were not enumerated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsError {
    /// Enumerating would cost more evaluations than allowed.
    #[error(
        "not enumerated: {callers} agents × {callees} callees × ({scopes} scopes + the connection) is up to {needed} Cedar evaluations, over the cap of {cap} (raise it with --max-evaluations)"
    )]
    TooMany {
        /// Agents of the directory.
        callers: u64,
        /// Callees of the directory.
        callees: u64,
        /// Scopes of the schema.
        scopes: u64,
        /// The worst case.
        needed: u64,
        /// The cap.
        cap: u64,
    },
    /// A policy could not be restated without its conditions.
    #[error("not enumerated: policy `{0}` cannot be read without its conditions")]
    Policy(String),
}

/// Every standing grant of `bundle`, sorted, spending at most `max_evaluations` evaluations.
pub fn standing_grants(
    bundle: &PolicyBundle,
    max_evaluations: u64,
) -> Result<Vec<Grant>, GrantsError> {
    let contract = bundle.contract();
    let invoke = contract.invoke();
    let entities = bundle.entities();
    let agent_type = contract.entity_type(&IdentityKind::Agent);
    let callers: Vec<EntityUid> = entities
        .iter()
        .map(cedar_policy::Entity::uid)
        .filter(|uid| Some(uid.type_name()) == agent_type)
        .collect();
    // Whatever `invoke` can reach: agents and resources such as tools.
    let callees: Vec<EntityUid> = entities
        .iter()
        .map(cedar_policy::Entity::uid)
        .filter(|uid| agent_type.is_some_and(|agent| contract.applies(invoke, &sample(agent), uid)))
        .collect();
    let mut scopes: Vec<(&str, &EntityUid)> = contract.scopes().collect();
    scopes.sort_unstable();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let needed = count(callers.len())
        .saturating_mul(count(callees.len()))
        .saturating_mul(count(scopes.len()).saturating_add(1));
    if needed > max_evaluations {
        return Err(GrantsError::TooMany {
            callers: count(callers.len()),
            callees: count(callees.len()),
            scopes: count(scopes.len()),
            needed,
            cap: max_evaluations,
        });
    }
    let set = unconditional(bundle)?;
    let authorizer = Authorizer::new();
    let allows = |principal: &EntityUid, action: &EntityUid, resource: &EntityUid| {
        if !contract.applies(action, principal, resource) {
            return false;
        }
        Request::new(
            principal.clone(),
            action.clone(),
            resource.clone(),
            Context::empty(),
            None,
        )
        .is_ok_and(|request| {
            authorizer
                .is_authorized(&request, &set, entities)
                .decision()
                == Decision::Allow
        })
    };
    let mut grants = Vec::new();
    for caller in &callers {
        for callee in callees.iter().filter(|c| *c != caller) {
            if !allows(caller, invoke, callee) {
                continue;
            }
            for (scope, action) in &scopes {
                if allows(caller, action, callee) {
                    grants.push(Grant {
                        caller: identity(caller),
                        callee: identity(callee),
                        scope: (*scope).to_owned(),
                    });
                }
            }
        }
    }
    grants.sort_unstable();
    Ok(grants)
}

/// An entity of type `agent`, for asking what `invoke` applies to.
fn sample(agent: &cedar_policy::EntityTypeName) -> EntityUid {
    EntityUid::from_type_name_and_id(agent.clone(), cedar_policy::EntityId::new("sample"))
}

/// The entity `uid` as Baton names identities.
fn identity(uid: &EntityUid) -> Identity {
    let type_name = uid.type_name().to_string();
    let kind = IdentityKind::parse_any(&type_name).unwrap_or(IdentityKind::Agent);
    Identity::new(kind, uid.id().unescaped())
}

/// The bundle's permits without their conditions, and its forbids that have none.
fn unconditional(bundle: &PolicyBundle) -> Result<PolicySet, GrantsError> {
    let failed = |p: &Policy| GrantsError::Policy(p.id().to_string());
    let mut kept = Vec::new();
    for policy in bundle.policies() {
        let mut json = policy.to_json().map_err(|_| failed(policy))?;
        let conditional = json
            .get("conditions")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|c| !c.is_empty());
        match policy.effect() {
            Effect::Forbid if conditional => continue,
            Effect::Forbid => kept.push(policy.clone()),
            Effect::Permit => {
                if let Some(conditions) = json.get_mut("conditions") {
                    *conditions = serde_json::Value::Array(Vec::new());
                }
                let stripped = Policy::from_json(Some(policy.id().clone()), json)
                    .map_err(|_| failed(policy))?;
                kept.push(stripped);
            }
        }
    }
    PolicySet::from_policies(kept).map_err(|e| GrantsError::Policy(e.to_string()))
}
