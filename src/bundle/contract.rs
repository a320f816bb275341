//! The policy contract: the names every bundle's schema must declare, checked once at load.

// foldhash: looked up on every question; see `index.rs`.
use foldhash::{HashMap, HashMapExt as _};
use std::str::FromStr;

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, Request, Schema, SchemaFragment};
use serde_json::{Map, Value};

use super::context::{self, ContextInput, TaskValueError};
use super::task_type::TaskType;
use crate::identity::{Identity, IdentityKind};

/// The connection action: `permit(principal == Agent::"a", action == Action::"invoke",
/// resource == Agent::"b")` lets `a` call `b` at all. It is not a scope.
pub const INVOKE_ACTION: &str = "invoke";

/// The principal and resource types an action applies to, from its `appliesTo`.
#[derive(Debug, Default)]
struct AppliesTo {
    principals: Vec<EntityTypeName>,
    resources: Vec<EntityTypeName>,
}

/// What Baton needs from a bundle's schema, resolved once at load.
#[derive(Debug)]
pub struct Contract {
    kinds: [EntityTypeName; 3],
    /// Every entity type the schema declares, by its full name: what a resource callee may be.
    types: HashMap<String, EntityTypeName>,
    invoke: EntityUid,
    scopes: HashMap<String, EntityUid>,
    applies: HashMap<EntityUid, AppliesTo>,
    /// A request of `invoke` with types it applies to, for type-checking task contexts.
    probe: (EntityUid, EntityUid),
    /// What `context.task` must hold, to name the attribute a request gets wrong; `None` when
    /// the context of `invoke` has no record `task`, and Cedar's check stands alone.
    task: Option<TaskType>,
}

impl Contract {
    /// Checks that `schema` declares what the contract names; every problem is reported.
    /// `fragment` is the same schema unresolved, which still has the task type's declarations.
    pub fn check(schema: &Schema, fragment: SchemaFragment) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let declared: Vec<&EntityTypeName> = schema.entity_types().collect();
        let types: HashMap<String, EntityTypeName> = declared
            .iter()
            .map(|t| (t.to_string(), (*t).clone()))
            .collect();
        let mut kinds = Vec::with_capacity(IdentityKind::ALL.len());
        for kind in IdentityKind::ALL {
            match EntityTypeName::from_str(kind.as_str()) {
                Ok(name) if declared.contains(&&name) => kinds.push(name),
                _ => problems.push(format!(
                    "the schema must declare entity type `{kind}`: chains are made of users, services and agents"
                )),
            }
        }
        let (Ok(kinds), Ok(invoke)) = (
            <[EntityTypeName; 3]>::try_from(kinds),
            action_uid(INVOKE_ACTION),
        ) else {
            return Err(problems);
        };
        let mut scopes = HashMap::new();
        let mut applies = HashMap::new();
        for action in schema.actions() {
            let to = AppliesTo {
                principals: schema
                    .principals_for_action(action)
                    .map(|i| i.cloned().collect())
                    .unwrap_or_default(),
                resources: schema
                    .resources_for_action(action)
                    .map(|i| i.cloned().collect())
                    .unwrap_or_default(),
            };
            applies.insert(action.clone(), to);
            if *action != invoke {
                scopes.insert(action.id().unescaped().to_owned(), action.clone());
            }
        }
        let invoke_applies = applies.get(&invoke);
        let Some(probe) = invoke_applies.and_then(|to| {
            let p = to.principals.first()?;
            let r = to.resources.first()?;
            Some((
                EntityUid::from_type_name_and_id(p.clone(), EntityId::new("probe")),
                EntityUid::from_type_name_and_id(r.clone(), EntityId::new("probe")),
            ))
        }) else {
            problems.push(format!(
                "the schema must declare action `{INVOKE_ACTION}` with principal and resource types: it is the connection allowlist"
            ));
            return Err(problems);
        };
        let task = match fragment.to_json_value() {
            Ok(json) => TaskType::resolve(&json, INVOKE_ACTION).unwrap_or_else(|e| {
                problems.push(e.to_string());
                None
            }),
            Err(e) => {
                problems.push(format!("cannot read the schema's declarations: {e}"));
                None
            }
        };
        let contract = Self {
            kinds,
            types,
            invoke,
            scopes,
            applies,
            probe,
            task,
        };
        if problems.is_empty() {
            problems.extend(contract.check_contexts(schema));
        }
        if problems.is_empty() {
            Ok(contract)
        } else {
            Err(problems)
        }
    }

    /// Every action must accept the context Baton builds, or its policies could never match.
    fn check_contexts(&self, schema: &Schema) -> Vec<String> {
        let user = Identity::new(IdentityKind::User, "sample");
        let agent = Identity::new(IdentityKind::Agent, "sample");
        let chain = [user.clone(), agent.clone()];
        let task = Map::new();
        let input = ContextInput {
            on_behalf_of: &user,
            caller: &agent,
            delegated: true,
            depth: 1,
            chain: &chain,
            task: &task,
        };
        let sample = match context::build(&input, |i| self.uid(i)) {
            Ok(sample) => sample,
            Err(e) => return vec![e.to_string()],
        };
        let mut problems = Vec::new();
        for (action, to) in &self.applies {
            let (Some(p), Some(r)) = (to.principals.first(), to.resources.first()) else {
                continue; // An action group without `appliesTo` is never requested itself.
            };
            let principal = EntityUid::from_type_name_and_id(p.clone(), EntityId::new("sample"));
            let resource = EntityUid::from_type_name_and_id(r.clone(), EntityId::new("sample"));
            if let Err(e) = Request::new(
                principal,
                action.clone(),
                resource,
                sample.clone(),
                Some(schema),
            ) {
                problems.push(format!(
                    "the context of `{action}` must accept what Baton passes (see the policy contract in the README): {e}"
                ));
            }
        }
        problems.sort();
        problems
    }

    /// The Cedar type of `kind`; `None` for a resource type the schema does not declare.
    pub fn entity_type(&self, kind: &IdentityKind) -> Option<&EntityTypeName> {
        match kind {
            IdentityKind::User => Some(&self.kinds[0]),
            IdentityKind::Service => Some(&self.kinds[1]),
            IdentityKind::Agent => Some(&self.kinds[2]),
            IdentityKind::Resource(t) => self.types.get(t.as_str()),
        }
    }

    /// Every entity type the schema declares, by its full name (`Agent`, `Tool`).
    pub fn entity_types(&self) -> impl Iterator<Item = &str> + Clone {
        self.types.keys().map(String::as_str)
    }

    /// The Cedar entity uid of `identity`, such as `Agent::"data-analyst"`; `None` for a
    /// resource of a type the schema does not declare.
    pub fn uid(&self, identity: &Identity) -> Option<EntityUid> {
        Some(EntityUid::from_type_name_and_id(
            self.entity_type(&identity.kind)?.clone(),
            EntityId::new(&identity.id),
        ))
    }

    /// The connection action, [`INVOKE_ACTION`].
    pub fn invoke(&self) -> &EntityUid {
        &self.invoke
    }

    /// Every scope with the action it names, in no particular order.
    pub fn scopes(&self) -> impl Iterator<Item = (&str, &EntityUid)> {
        self.scopes
            .iter()
            .map(|(name, action)| (name.as_str(), action))
    }

    /// The action a scope names, if the bundle has one.
    pub fn scope(&self, name: &str) -> Option<&EntityUid> {
        self.scopes.get(name)
    }

    /// Whether the schema lets `action` apply to these principal and resource types.
    pub fn applies(&self, action: &EntityUid, principal: &EntityUid, resource: &EntityUid) -> bool {
        self.applies.get(action).is_some_and(|to| {
            to.principals.contains(principal.type_name())
                && to.resources.contains(resource.type_name())
        })
    }

    /// The context of every evaluation of one hop.
    pub fn context(&self, input: &ContextInput<'_>) -> Result<Context, TaskValueError> {
        context::build(input, |i| self.uid(i))
    }

    /// Type-checks a request's task, from which `context` was built, against the schema's context
    /// type for `invoke`. Only the task part can be wrong: the rest is built by Baton and checked
    /// against every action at load. Reports each attribute the task type refuses by its path;
    /// Cedar's own check follows, so nothing Cedar would refuse is let through.
    pub fn check_context(
        &self,
        schema: &Schema,
        task: &Map<String, Value>,
        context: &Context,
    ) -> Result<(), Vec<TaskValueError>> {
        if let Some(task_type) = &self.task {
            task_type.check(task)?;
        }
        let (principal, resource) = self.probe.clone();
        match Request::new(
            principal,
            self.invoke.clone(),
            resource,
            context.clone(),
            Some(schema),
        ) {
            Ok(_) => Ok(()),
            // Cedar's message quotes the context, values included, and cuts it short.
            Err(_) => Err(vec![TaskValueError {
                path: "context".to_owned(),
                problem: format!(
                    "does not type-check against the context type of `{INVOKE_ACTION}` in the schema"
                ),
            }]),
        }
    }
}

fn action_uid(id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str("Action").map_err(|e| e.to_string())?,
        EntityId::new(id),
    ))
}
