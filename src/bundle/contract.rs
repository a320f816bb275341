//! The policy contract: the names every bundle's schema must declare, and the context Baton
//! passes to every evaluation so policies can speak of the chain.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, Schema};
use serde_json::{Map, Value, json};

use crate::identity::{Identity, IdentityKind};

/// The connection action: `permit(principal == Agent::"a", action == Action::"invoke",
/// resource == Agent::"b")` lets `a` call `b` at all. It is not a scope.
pub const INVOKE_ACTION: &str = "invoke";

/// What Baton needs from a bundle's schema, resolved once at load.
#[derive(Debug)]
pub struct Contract {
    kinds: [EntityTypeName; 3],
    invoke: EntityUid,
    scopes: HashMap<String, EntityUid>,
}

/// What Baton tells policies about the hop being decided, as `context`.
pub struct ContextInput<'a> {
    /// The identity at the root of the chain.
    pub on_behalf_of: &'a Identity,
    pub caller: &'a Identity,
    /// Whether the caller acts for someone other than itself.
    pub delegated: bool,
    /// Hops from the principal to the callee.
    pub depth: usize,
    /// Every identity of the chain, principal first, callee last.
    pub chain: &'a [Identity],
    /// The request's own context, as `context.task`.
    pub task: &'a Map<String, Value>,
}

impl Contract {
    /// Checks that `schema` declares what the contract names; every problem is reported.
    pub fn check(schema: &Schema) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let declared: Vec<&EntityTypeName> = schema.entity_types().collect();
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
        let mut has_invoke = false;
        for action in schema.actions() {
            if *action == invoke {
                has_invoke = true;
            } else {
                scopes.insert(action.id().unescaped().to_owned(), action.clone());
            }
        }
        if !has_invoke {
            problems.push(format!(
                "the schema must declare action `{INVOKE_ACTION}`: it is the connection allowlist"
            ));
        }
        let contract = Self {
            kinds,
            invoke,
            scopes,
        };
        if problems.is_empty()
            && let Err(e) = contract.sample_context(schema)
        {
            problems.push(format!(
                "the context of action `{INVOKE_ACTION}` must accept what Baton passes (see the policy contract in the README): {e}"
            ));
        }
        if problems.is_empty() {
            Ok(contract)
        } else {
            Err(problems)
        }
    }

    fn sample_context(&self, schema: &Schema) -> Result<Context, String> {
        let user = Identity::new(IdentityKind::User, "sample");
        let agent = Identity::new(IdentityKind::Agent, "sample");
        let chain = [user.clone(), agent.clone()];
        let input = ContextInput {
            on_behalf_of: &user,
            caller: &agent,
            delegated: true,
            depth: 1,
            chain: &chain,
            task: &Map::new(),
        };
        self.context(schema, &input).map_err(|e| e.to_string())
    }

    /// The Cedar type of `kind`.
    pub fn entity_type(&self, kind: IdentityKind) -> &EntityTypeName {
        match kind {
            IdentityKind::User => &self.kinds[0],
            IdentityKind::Service => &self.kinds[1],
            IdentityKind::Agent => &self.kinds[2],
        }
    }

    pub fn uid(&self, identity: &Identity) -> EntityUid {
        EntityUid::from_type_name_and_id(
            self.entity_type(identity.kind).clone(),
            EntityId::new(&identity.id),
        )
    }

    pub fn invoke(&self) -> &EntityUid {
        &self.invoke
    }

    /// The action a scope names, if the bundle has one.
    pub fn scope(&self, name: &str) -> Option<&EntityUid> {
        self.scopes.get(name)
    }

    /// The context of every evaluation of one hop, typed by the schema's context for `invoke`.
    pub fn context(
        &self,
        schema: &Schema,
        input: &ContextInput<'_>,
    ) -> Result<Context, Box<cedar_policy::ContextJsonError>> {
        let identity = |i: &Identity| json!({ "kind": i.kind.as_str(), "id": i.id });
        let chain: Vec<Value> = input
            .chain
            .iter()
            .map(|i| Value::String(self.uid(i).to_string()))
            .collect();
        let agents: Vec<Value> = input
            .chain
            .iter()
            .filter(|i| i.kind == IdentityKind::Agent)
            .map(|i| json!({ "__entity": { "type": "Agent", "id": i.id } }))
            .collect();
        let value = json!({
            "on_behalf_of": identity(input.on_behalf_of),
            "caller": identity(input.caller),
            "delegated": input.delegated,
            "depth": input.depth,
            "chain": chain,
            "agents": agents,
            "task": input.task,
        });
        Context::from_json_value(value, Some((schema, &self.invoke))).map_err(Box::new)
    }
}

fn action_uid(id: &str) -> Result<EntityUid, String> {
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str("Action").map_err(|e| e.to_string())?,
        EntityId::new(id),
    ))
}
