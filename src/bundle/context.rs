//! The context Baton passes to every evaluation of a hop, built directly as Cedar values: going
//! through JSON and schema-driven parsing costs several times a whole decision.

use std::str::FromStr;

use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use serde_json::{Map, Value};

use crate::identity::{Identity, IdentityKind};

/// What Baton tells policies about the hop being decided, as `context`.
pub struct ContextInput<'a> {
    /// The identity at the root of the chain.
    pub on_behalf_of: &'a Identity,
    /// The identity making this call.
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

/// A task attribute Cedar cannot represent or the schema's task type does not accept; the message
/// names the attribute path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` {problem}")]
pub struct TaskValueError {
    /// Where in the context the value sits, such as `context.amount`.
    pub path: String,
    /// What is wrong with it, as a phrase that follows the path.
    pub problem: String,
}

/// The context for `input`, naming chain members by the entity uid `uid` gives each identity.
/// A member `uid` cannot name (a resource type the schema does not declare) fails the build:
/// decisions refuse such a callee before they build a context.
pub(super) fn build(
    input: &ContextInput<'_>,
    uid: impl Fn(&Identity) -> Option<EntityUid>,
) -> Result<Context, TaskValueError> {
    let fail = |problem: String| TaskValueError {
        path: "context".into(),
        problem,
    };
    let uids = input
        .chain
        .iter()
        .map(|i| {
            uid(i).ok_or_else(|| fail(format!("`{}` is not an entity type of the bundle", i.kind)))
        })
        .collect::<Result<Vec<EntityUid>, _>>()?;
    let identity = |i: &Identity| {
        RestrictedExpression::new_record([
            (
                "kind".to_owned(),
                RestrictedExpression::new_string(i.kind.as_str().to_owned()),
            ),
            (
                "id".to_owned(),
                RestrictedExpression::new_string(i.id.clone()),
            ),
        ])
        .map_err(|e| fail(e.to_string()))
    };
    let chain = uids
        .iter()
        .map(|u| RestrictedExpression::new_string(super::id_text::entity_uid(u)));
    let agents = input
        .chain
        .iter()
        .zip(&uids)
        .filter(|(i, _)| i.kind == IdentityKind::Agent)
        .map(|(_, u)| RestrictedExpression::new_entity_uid(u.clone()));
    let depth = i64::try_from(input.depth).map_err(|e| fail(e.to_string()))?;
    let pairs = [
        ("on_behalf_of".to_owned(), identity(input.on_behalf_of)?),
        ("caller".to_owned(), identity(input.caller)?),
        (
            "delegated".to_owned(),
            RestrictedExpression::new_bool(input.delegated),
        ),
        ("depth".to_owned(), RestrictedExpression::new_long(depth)),
        ("chain".to_owned(), RestrictedExpression::new_set(chain)),
        ("agents".to_owned(), RestrictedExpression::new_set(agents)),
        ("task".to_owned(), record("context", input.task)?),
    ];
    Context::from_pairs(pairs).map_err(|e| fail(e.to_string()))
}

fn record(path: &str, map: &Map<String, Value>) -> Result<RestrictedExpression, TaskValueError> {
    let fields = map
        .iter()
        .map(|(k, v)| Ok((k.clone(), value(&format!("{path}.{k}"), v)?)))
        .collect::<Result<Vec<_>, TaskValueError>>()?;
    RestrictedExpression::new_record(fields).map_err(|e| TaskValueError {
        path: path.to_owned(),
        problem: e.to_string(),
    })
}

/// Plain JSON maps onto Cedar values; entity references and extension values use Cedar's JSON
/// escapes, `{"__entity": {"type": "Agent", "id": "x"}}` and `{"__extn": {"fn": "decimal",
/// "arg": "1.5"}}`.
pub(super) fn value(path: &str, v: &Value) -> Result<RestrictedExpression, TaskValueError> {
    let fail = |problem: &str| TaskValueError {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    match v {
        Value::Null => Err(fail("must not be null")),
        Value::Bool(b) => Ok(RestrictedExpression::new_bool(*b)),
        Value::String(s) => Ok(RestrictedExpression::new_string(s.clone())),
        Value::Number(n) => n
            .as_i64()
            .map(RestrictedExpression::new_long)
            .ok_or_else(|| fail("must be a whole number that fits in 64 bits")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| value(&format!("{path}[{i}]"), item))
            .collect::<Result<Vec<_>, _>>()
            .map(RestrictedExpression::new_set),
        Value::Object(map) => match Escape::of(map) {
            Some(Escape::Entity(entity)) => entity_ref(entity).ok_or_else(|| {
                fail("must be an entity reference `{\"__entity\": {\"type\": \"Agent\", \"id\": \"...\"}}`")
            }),
            Some(Escape::Extension(extension)) => extension_value(extension)
                .ok_or_else(|| fail("must be `{\"__extn\": {\"fn\": \"decimal\" | \"ip\" | \"datetime\" | \"duration\", \"arg\": \"...\"}}`")),
            None => record(path, map),
        },
    }
}

/// A JSON object that stands for a Cedar value other than a record: an object whose only key is
/// `__entity` or `__extn`.
pub(super) enum Escape<'a> {
    Entity(&'a Value),
    Extension(&'a Value),
}

impl<'a> Escape<'a> {
    pub(super) fn of(map: &'a Map<String, Value>) -> Option<Self> {
        match (map.len(), map.get("__entity"), map.get("__extn")) {
            (1, Some(entity), _) => Some(Self::Entity(entity)),
            (1, _, Some(extension)) => Some(Self::Extension(extension)),
            _ => None,
        }
    }
}

fn entity_ref(v: &Value) -> Option<RestrictedExpression> {
    let type_name = EntityTypeName::from_str(v.get("type")?.as_str()?).ok()?;
    let id = EntityId::new(v.get("id")?.as_str()?);
    Some(RestrictedExpression::new_entity_uid(
        EntityUid::from_type_name_and_id(type_name, id),
    ))
}

fn extension_value(v: &Value) -> Option<RestrictedExpression> {
    let arg = v.get("arg")?.as_str()?;
    Some(match v.get("fn")?.as_str()? {
        "decimal" => RestrictedExpression::new_decimal(arg),
        "ip" => RestrictedExpression::new_ip(arg),
        "datetime" => RestrictedExpression::new_datetime(arg),
        "duration" => RestrictedExpression::new_duration(arg),
        _ => return None,
    })
}
