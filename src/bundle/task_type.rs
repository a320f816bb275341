//! The schema's task type: what `context.task` of `invoke` must hold, resolved once when a bundle
//! compiles. A request's context is checked against it attribute by attribute, so a mismatch names
//! the attribute (`context.amount`, `context.items[2]`) where Cedar's own check names only the
//! whole context.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::EntityTypeName;
use serde_json::{Map, Value};

use super::context::{Escape, TaskValueError};

/// How deep resolution goes, counting records, sets and references to named types. The request
/// limits keep contexts far shallower; the limit keeps a hostile schema from overflowing the stack.
const MAX_TYPE_DEPTH: usize = 32;

/// Violations reported for one context: enough to fix a request, few enough to keep the status small.
const MAX_VIOLATIONS: usize = 10;

/// Longest name quoted in a message, in characters.
const MAX_QUOTED: usize = 64;

/// Declared attributes listed when a request names one the type lacks.
const MAX_LISTED: usize = 8;

/// The record type of `context.task`, as the schema declares it.
#[derive(Debug)]
pub struct TaskType {
    root: Arc<Record>,
}

/// A Cedar type, with named types resolved. Composite types are shared, so a named type used in
/// many places is resolved and stored once.
#[derive(Debug, Clone)]
enum Type {
    Long,
    String,
    Bool,
    Set(Arc<Type>),
    Record(Arc<Record>),
    /// A reference to an entity of this fully-qualified type.
    Entity(Arc<str>),
    Extension(Extension),
}

#[derive(Debug)]
struct Record {
    attributes: BTreeMap<String, Attribute>,
    /// Whether attributes the record does not declare are accepted (`additionalAttributes` in a
    /// JSON schema; never in the Cedar syntax).
    open: bool,
}

#[derive(Debug)]
struct Attribute {
    ty: Type,
    required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extension {
    Decimal,
    IpAddr,
    Datetime,
    Duration,
}

impl Extension {
    fn from_type_name(name: &str) -> Option<Self> {
        match name {
            "decimal" => Some(Self::Decimal),
            "ipaddr" => Some(Self::IpAddr),
            "datetime" => Some(Self::Datetime),
            "duration" => Some(Self::Duration),
            _ => None,
        }
    }

    /// The extension a task value's `{"__extn": {"fn": ...}}` constructs.
    fn from_constructor(name: &str) -> Option<Self> {
        match name {
            "ip" => Some(Self::IpAddr),
            other => Self::from_type_name(other),
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Self::Decimal => "decimal",
            Self::IpAddr => "ipaddr",
            Self::Datetime => "datetime",
            Self::Duration => "duration",
        }
    }
}

/// Why a schema's task type cannot be resolved; the bundle is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskTypeError {
    #[error(
        "the context type of `{action}` nests deeper than {MAX_TYPE_DEPTH} levels, counting records, sets and named types"
    )]
    TooDeep { action: String },
    #[error("type `{0}` refers to itself")]
    Cycle(String),
    #[error("type `{0}` is not declared")]
    Undeclared(String),
    #[error("the schema's JSON form has an unexpected type `{0}`")]
    Unexpected(String),
}

impl TaskType {
    /// The task type of `action` (in the empty namespace) from a schema in Cedar's JSON form, as
    /// `SchemaFragment::to_json_value` gives it. `None` when the action's context has no `task`
    /// attribute or it is not a record: Cedar's own check then stands alone.
    pub fn resolve(schema: &Value, action: &str) -> Result<Option<Self>, TaskTypeError> {
        let mut resolver = Resolver {
            schema,
            action,
            done: HashMap::new(),
            resolving: Vec::new(),
        };
        let Some(context) = schema.get("").and_then(|ns| {
            ns.get("actions")?
                .get(action)?
                .get("appliesTo")?
                .get("context")
        }) else {
            return Ok(None);
        };
        let Some((record, ns, depth)) = resolver.record_of(context)? else {
            return Ok(None);
        };
        let Some(task) = record.get("attributes").and_then(|a| a.get("task")) else {
            return Ok(None);
        };
        match resolver.resolve(task, ns, depth + 1)?.0 {
            Type::Record(root) => Ok(Some(Self { root })),
            _ => Ok(None),
        }
    }

    /// Every way `task` departs from the type, up to a few, in attribute order. Allocates nothing
    /// when the task conforms.
    pub fn check(&self, task: &Map<String, Value>) -> Result<(), Vec<TaskValueError>> {
        let mut found = Vec::new();
        check_record(&self.root, task, &Path::Root, &mut found);
        if found.is_empty() { Ok(()) } else { Err(found) }
    }
}

/// What a name refers to.
enum Target<'s> {
    Builtin(Type),
    Entity(Arc<str>),
    /// A common type: its fully-qualified name, its definition and the namespace it is in.
    Common(String, &'s Value, &'s str),
}

/// Which kinds of declaration a reference may name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reference {
    Common,
    Entity,
    CommonOrEntity,
}

struct Resolver<'s> {
    schema: &'s Value,
    action: &'s str,
    /// Resolved common types by fully-qualified name, with the depth their resolution took.
    done: HashMap<String, (Type, usize)>,
    /// Common types being resolved, outermost first.
    resolving: Vec<String>,
}

impl<'s> Resolver<'s> {
    fn too_deep(&self) -> TaskTypeError {
        TaskTypeError::TooDeep {
            action: self.action.to_owned(),
        }
    }

    /// Follows references from `ty` to the record they name, without resolving its attributes:
    /// the record, its namespace and the depth reached. `None` when `ty` is not a record.
    fn record_of(
        &mut self,
        mut ty: &'s Value,
    ) -> Result<Option<(&'s Value, &'s str, usize)>, TaskTypeError> {
        let mut ns = "";
        let mut seen: Vec<String> = Vec::new();
        for depth in 0..=MAX_TYPE_DEPTH {
            let named = ty.get("name").is_some();
            let (name, reference) = match tag(ty)? {
                "Record" => return Ok(Some((ty, ns, depth))),
                "String" | "Long" | "Boolean" | "Set" => return Ok(None),
                "Entity" | "Extension" if named => return Ok(None),
                "EntityOrCommon" if named => (name_of(ty)?, Reference::CommonOrEntity),
                other => (other, Reference::Common),
            };
            match self.lookup(name, ns, reference)? {
                Target::Common(qualified, definition, definition_ns) => {
                    if seen.contains(&qualified) {
                        return Err(TaskTypeError::Cycle(qualified));
                    }
                    seen.push(qualified);
                    ty = definition;
                    ns = definition_ns;
                }
                Target::Builtin(_) | Target::Entity(_) => return Ok(None),
            }
        }
        Err(self.too_deep())
    }

    /// The type `ty` denotes in namespace `ns`, and how deep its resolution went.
    fn resolve(
        &mut self,
        ty: &'s Value,
        ns: &'s str,
        depth: usize,
    ) -> Result<(Type, usize), TaskTypeError> {
        if depth > MAX_TYPE_DEPTH {
            return Err(self.too_deep());
        }
        Ok(match tag(ty)? {
            "String" => (Type::String, 0),
            "Long" => (Type::Long, 0),
            "Boolean" => (Type::Bool, 0),
            "Set" => {
                let element = ty
                    .get("element")
                    .ok_or_else(|| TaskTypeError::Unexpected("Set".into()))?;
                let (element, height) = self.resolve(element, ns, depth + 1)?;
                (Type::Set(Arc::new(element)), height + 1)
            }
            "Record" => {
                let declared = ty
                    .get("attributes")
                    .and_then(Value::as_object)
                    .ok_or_else(|| TaskTypeError::Unexpected("Record".into()))?;
                let mut attributes = BTreeMap::new();
                let mut height = 0;
                for (name, attribute) in declared {
                    let (ty, h) = self.resolve(attribute, ns, depth + 1)?;
                    height = height.max(h);
                    let required = attribute
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    attributes.insert(name.clone(), Attribute { ty, required });
                }
                let open = ty
                    .get("additionalAttributes")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (
                    Type::Record(Arc::new(Record { attributes, open })),
                    height + 1,
                )
            }
            "Entity" if ty.get("name").is_some() => {
                self.reference(name_of(ty)?, ns, Reference::Entity, depth)?
            }
            "EntityOrCommon" if ty.get("name").is_some() => {
                self.reference(name_of(ty)?, ns, Reference::CommonOrEntity, depth)?
            }
            "Extension" if ty.get("name").is_some() => {
                let name = name_of(ty)?;
                let extension = Extension::from_type_name(name)
                    .ok_or_else(|| TaskTypeError::Unexpected(name.to_owned()))?;
                (Type::Extension(extension), 0)
            }
            // Any other tag names a common type (`{"type": "Task"}`).
            name => self.reference(name, ns, Reference::Common, depth)?,
        })
    }

    fn reference(
        &mut self,
        name: &'s str,
        ns: &'s str,
        reference: Reference,
        depth: usize,
    ) -> Result<(Type, usize), TaskTypeError> {
        match self.lookup(name, ns, reference)? {
            Target::Builtin(ty) => Ok((ty, 0)),
            Target::Entity(name) => Ok((Type::Entity(name), 0)),
            Target::Common(qualified, definition, definition_ns) => {
                if let Some((ty, height)) = self.done.get(&qualified) {
                    // Shared, but as deep here as where it was first resolved.
                    if depth + height > MAX_TYPE_DEPTH {
                        return Err(self.too_deep());
                    }
                    return Ok((ty.clone(), *height));
                }
                if self.resolving.contains(&qualified) {
                    return Err(TaskTypeError::Cycle(qualified));
                }
                self.resolving.push(qualified.clone());
                let (ty, height) = self.resolve(definition, definition_ns, depth + 1)?;
                self.resolving.pop();
                self.done.insert(qualified, (ty.clone(), height + 1));
                Ok((ty, height + 1))
            }
        }
    }

    /// What `name`, written in namespace `ns`, refers to, by Cedar's rules (RFC 24): an
    /// unqualified name means the one in `ns` if declared there, else the one in the empty
    /// namespace; a common type wins over an entity type of the same name; the primitive and
    /// extension types are common types of the empty namespace unless the schema declares the
    /// name there itself, and are always reachable as `__cedar::Name`.
    fn lookup(
        &self,
        name: &'s str,
        ns: &'s str,
        reference: Reference,
    ) -> Result<Target<'s>, TaskTypeError> {
        let (qualifier, base) = match name.rsplit_once("::") {
            Some((qualifier, base)) => (qualifier, base),
            None => ("", name),
        };
        let candidates = if qualifier.is_empty() && !ns.is_empty() {
            [Some(ns), Some("")]
        } else {
            [Some(qualifier), None]
        };
        for candidate in candidates.into_iter().flatten() {
            let declarations = self.schema.get(candidate);
            let common = declarations
                .and_then(|d| d.get("commonTypes")?.get(base))
                .filter(|_| reference != Reference::Entity);
            let entity = declarations.is_some_and(|d| {
                d.get("entityTypes").and_then(|e| e.get(base)).is_some()
                    || (base == "Action" && d.get("actions").is_some())
            }) && reference != Reference::Common;
            if let Some(definition) = common {
                return Ok(Target::Common(
                    qualify(candidate, base),
                    definition,
                    candidate,
                ));
            }
            let shadowed = declarations.is_some_and(|d| {
                d.get("commonTypes").and_then(|c| c.get(base)).is_some()
                    || d.get("entityTypes").and_then(|e| e.get(base)).is_some()
            });
            if reference != Reference::Entity
                && (candidate == "__cedar" || (candidate.is_empty() && !shadowed))
                && let Some(ty) = builtin(base)
            {
                return Ok(Target::Builtin(ty));
            }
            if entity {
                return Ok(Target::Entity(qualify(candidate, base).into()));
            }
        }
        Err(TaskTypeError::Undeclared(name.to_owned()))
    }
}

fn builtin(name: &str) -> Option<Type> {
    match name {
        "Long" => Some(Type::Long),
        "String" => Some(Type::String),
        "Bool" => Some(Type::Bool),
        other => Extension::from_type_name(other).map(Type::Extension),
    }
}

fn qualify(ns: &str, base: &str) -> String {
    if ns.is_empty() {
        base.to_owned()
    } else {
        format!("{ns}::{base}")
    }
}

fn tag(ty: &Value) -> Result<&str, TaskTypeError> {
    ty.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| TaskTypeError::Unexpected(clip(&ty.to_string()).into_owned()))
}

fn name_of(ty: &Value) -> Result<&str, TaskTypeError> {
    ty.get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| TaskTypeError::Unexpected(clip(&ty.to_string()).into_owned()))
}

/// Where a value sits in the request, rendered only when it is reported.
enum Path<'a> {
    Root,
    Attribute(&'a Path<'a>, &'a str),
    Element(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The task is what the client sends as `context`.
            Self::Root => f.write_str("context"),
            Self::Attribute(parent, name) => write!(f, "{parent}.{name}"),
            Self::Element(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

fn check_record(
    record: &Record,
    map: &Map<String, Value>,
    path: &Path<'_>,
    found: &mut Vec<TaskValueError>,
) {
    for (name, value) in map {
        if found.len() >= MAX_VIOLATIONS {
            return;
        }
        let at = Path::Attribute(path, name);
        match record.attributes.get(name) {
            Some(attribute) => check(&attribute.ty, value, &at, found),
            None if record.open => {}
            None => {
                let whose = match path {
                    Path::Root => "the task type".to_owned(),
                    parent => format!("`{}` in the task type", clip(&parent.to_string())),
                };
                found.push(TaskValueError {
                    path: at.to_string(),
                    problem: format!(
                        "is not an attribute of {whose}: it declares {}",
                        Declared(record)
                    ),
                });
            }
        }
    }
    for (name, attribute) in &record.attributes {
        if found.len() >= MAX_VIOLATIONS {
            return;
        }
        if attribute.required && !map.contains_key(name) {
            found.push(TaskValueError {
                path: Path::Attribute(path, name).to_string(),
                problem: "is required by the task type".to_owned(),
            });
        }
    }
}

fn check(ty: &Type, value: &Value, path: &Path<'_>, found: &mut Vec<TaskValueError>) {
    let fits = match (ty, value) {
        (Type::Long, Value::Number(n)) => n.is_i64(),
        (Type::String, Value::String(_)) | (Type::Bool, Value::Bool(_)) => true,
        (Type::Set(element), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                if found.len() >= MAX_VIOLATIONS {
                    break;
                }
                check(element, item, &Path::Element(path, index), found);
            }
            true
        }
        (Type::Record(record), Value::Object(map)) => match Escape::of(map) {
            Some(_) => false,
            None => {
                check_record(record, map, path, found);
                true
            }
        },
        (Type::Entity(expected), Value::Object(map)) => match Escape::of(map) {
            Some(Escape::Entity(entity)) => entity_type(entity).is_some_and(|given| {
                // Cedar reads the type name as it reads names in policies; compare its reading
                // only when the text differs.
                given == &**expected
                    || EntityTypeName::from_str(given).is_ok_and(|n| n.to_string() == **expected)
            }),
            _ => false,
        },
        (Type::Extension(expected), Value::Object(map)) => match Escape::of(map) {
            Some(Escape::Extension(extension)) => {
                constructor(extension).and_then(Extension::from_constructor) == Some(*expected)
            }
            _ => false,
        },
        _ => false,
    };
    if !fits && found.len() < MAX_VIOLATIONS {
        found.push(TaskValueError {
            path: path.to_string(),
            problem: format!(
                "must be {} as the schema's task type declares, got {}",
                Expected(ty),
                Given(value)
            ),
        });
    }
}

fn entity_type(entity: &Value) -> Option<&str> {
    entity.get("type")?.as_str()
}

fn constructor(extension: &Value) -> Option<&str> {
    extension.get("fn")?.as_str()
}

/// `s` cut to [`MAX_QUOTED`] characters, marked when cut.
fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &s[..end]).into(),
        None => s.into(),
    }
}

/// A type as a message names it: "a `Long`".
struct Expected<'a>(&'a Type);

impl fmt::Display for Expected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Type::Record(_) => f.write_str("a record"),
            Type::Entity(name) => write!(f, "an entity reference of type `{}`", clip(name)),
            Type::Extension(e) => write!(f, "an extension value of type `{}`", e.type_name()),
            ty => write!(f, "a `{}`", Syntax(ty)),
        }
    }
}

/// A type as the Cedar schema syntax writes it, records abridged.
struct Syntax<'a>(&'a Type);

impl fmt::Display for Syntax<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Type::Long => f.write_str("Long"),
            Type::String => f.write_str("String"),
            Type::Bool => f.write_str("Bool"),
            Type::Set(element) => write!(f, "Set<{}>", Syntax(element)),
            Type::Record(_) => f.write_str("{ .. }"),
            Type::Entity(name) => f.write_str(&clip(name)),
            Type::Extension(e) => f.write_str(e.type_name()),
        }
    }
}

/// What a request sent, as a message names it: "a string". Never the value itself: context
/// values may be confidential and messages reach logs.
struct Given<'a>(&'a Value);

impl fmt::Display for Given<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("null"),
            Value::Bool(_) => f.write_str("a boolean"),
            Value::Number(n) if n.is_i64() => f.write_str("a whole number"),
            Value::Number(_) => f.write_str("a number that is not a 64-bit whole number"),
            Value::String(_) => f.write_str("a string"),
            Value::Array(_) => f.write_str("a list"),
            Value::Object(map) => match Escape::of(map) {
                Some(Escape::Entity(entity)) => match entity_type(entity) {
                    Some(name) => write!(f, "an entity reference of type `{}`", clip(name)),
                    None => f.write_str("an entity reference"),
                },
                Some(Escape::Extension(extension)) => {
                    match constructor(extension).and_then(Extension::from_constructor) {
                        Some(e) => write!(f, "an extension value of type `{}`", e.type_name()),
                        None => f.write_str("an extension value"),
                    }
                }
                None => f.write_str("a record"),
            },
        }
    }
}

/// The attributes a record declares, as a message lists them.
struct Declared<'a>(&'a Record);

impl fmt::Display for Declared<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = &self.0.attributes;
        if names.is_empty() {
            return f.write_str("none");
        }
        for (i, name) in names.keys().take(MAX_LISTED).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{}`", clip(name))?;
        }
        if names.len() > MAX_LISTED {
            write!(f, " and {} more", names.len() - MAX_LISTED)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{Context, EntityUid, Request, Schema, SchemaFragment};
    use serde_json::{Value, json};

    use super::*;
    use crate::bundle::{PolicyBundle, SourceFile};

    const SHIPPED: &str = include_str!("../../policies/baton.cedarschema");

    /// A task type with every kind of attribute, in a schema Cedar accepts.
    const SHOP: &str = r#"
        namespace Shop {
            type Item = { sku: String, qty?: Long };
            entity Customer;
        }
        entity Agent;
        type Tier = String;
        type Task = {
            currency: String,
            amount?: Long,
            flag?: Bool,
            tags?: Set<String>,
            items?: Set<Shop::Item>,
            customer?: { tier: Tier, since?: datetime },
            owner?: Agent,
            buyer?: Shop::Customer,
            limit?: decimal,
            from?: ipaddr,
            wait?: duration,
        };
        action invoke appliesTo { principal: Agent, resource: Agent, context: { task: Task } };
    "#;

    fn resolve(schema: &str) -> Result<Option<TaskType>, TaskTypeError> {
        let (fragment, _) = SchemaFragment::from_cedarschema_str(schema).unwrap();
        TaskType::resolve(&fragment.to_json_value().unwrap(), "invoke")
    }

    fn task_type(schema: &str) -> TaskType {
        assert!(Schema::from_cedarschema_str(schema).is_ok(), "{schema}");
        resolve(schema).unwrap().expect("a task type")
    }

    fn check(ty: &TaskType, task: Value) -> Result<(), Vec<String>> {
        ty.check(task.as_object().unwrap())
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    fn entity(kind: &str) -> Value {
        json!({ "__entity": { "type": kind, "id": "x" } })
    }

    fn extension(constructor: &str, arg: &str) -> Value {
        json!({ "__extn": { "fn": constructor, "arg": arg } })
    }

    #[test]
    fn the_shipped_task_type_names_the_attribute() {
        let ty = task_type(SHIPPED);
        assert_eq!(
            check(&ty, json!({ "amount": 750, "currency": "EUR" })),
            Ok(())
        );
        assert_eq!(
            check(&ty, json!({ "amount": "750" })),
            Err(vec![
                "`context.amount` must be a `Long` as the schema's task type declares, got a string"
                    .to_owned()
            ])
        );
        assert_eq!(
            check(&ty, json!({ "colour": "red" })),
            Err(vec![
                "`context.colour` is not an attribute of the task type: it declares `amount`, \
                 `currency`, `quarter`, `reason`"
                    .to_owned()
            ])
        );
    }

    #[test]
    fn nested_attributes_and_elements_are_named_by_path() {
        let ty = task_type(SHOP);
        let ok = json!({
            "currency": "EUR",
            "amount": -3,
            "flag": true,
            "tags": ["a", "b"],
            "items": [{ "sku": "a" }, { "sku": "b", "qty": 2 }],
            "customer": { "tier": "gold", "since": extension("datetime", "2024-01-01") },
            "owner": entity("Agent"),
            "buyer": entity("Shop::Customer"),
            "limit": extension("decimal", "1.5"),
            "from": extension("ip", "10.0.0.1"),
            "wait": extension("duration", "1h"),
        });
        assert_eq!(check(&ty, ok), Ok(()));

        let cases = [
            (
                json!({ "currency": "EUR", "tags": ["a", "b", 3] }),
                "`context.tags[2]` must be a `String` as the schema's task type declares, got a whole number",
            ),
            (
                json!({ "currency": "EUR", "items": [{ "sku": "a" }, { "sku": "b" }, "c"] }),
                "`context.items[2]` must be a record as the schema's task type declares, got a string",
            ),
            (
                json!({ "currency": "EUR", "items": [{ "sku": "a", "qty": "2" }] }),
                "`context.items[0].qty` must be a `Long` as the schema's task type declares, got a string",
            ),
            (
                json!({ "currency": "EUR", "tags": "a" }),
                "`context.tags` must be a `Set<String>` as the schema's task type declares, got a string",
            ),
            (
                json!({ "currency": "EUR", "items": {} }),
                "`context.items` must be a `Set<{ .. }>` as the schema's task type declares, got a record",
            ),
            (
                json!({ "currency": "EUR", "customer": { "tier": 1 } }),
                "`context.customer.tier` must be a `String` as the schema's task type declares, got a whole number",
            ),
            (
                json!({ "currency": "EUR", "customer": {} }),
                "`context.customer.tier` is required by the task type",
            ),
            (
                json!({ "amount": 5 }),
                "`context.currency` is required by the task type",
            ),
            (
                json!({ "currency": "EUR", "customer": { "tier": "gold", "colour": "red" } }),
                "`context.customer.colour` is not an attribute of `context.customer` in the task type: it declares `since`, `tier`",
            ),
            (
                json!({ "currency": "EUR", "flag": "true" }),
                "`context.flag` must be a `Bool` as the schema's task type declares, got a string",
            ),
            (
                json!({ "currency": "EUR", "owner": entity("User") }),
                "`context.owner` must be an entity reference of type `Agent` as the schema's task type declares, got an entity reference of type `User`",
            ),
            (
                json!({ "currency": "EUR", "buyer": entity("Customer") }),
                "`context.buyer` must be an entity reference of type `Shop::Customer` as the schema's task type declares, got an entity reference of type `Customer`",
            ),
            (
                json!({ "currency": "EUR", "owner": "Agent::\"x\"" }),
                "`context.owner` must be an entity reference of type `Agent` as the schema's task type declares, got a string",
            ),
            (
                json!({ "currency": "EUR", "limit": extension("ip", "10.0.0.1") }),
                "`context.limit` must be an extension value of type `decimal` as the schema's task type declares, got an extension value of type `ipaddr`",
            ),
            (
                json!({ "currency": "EUR", "limit": 1 }),
                "`context.limit` must be an extension value of type `decimal` as the schema's task type declares, got a whole number",
            ),
            (
                json!({ "currency": "EUR", "customer": entity("Agent") }),
                "`context.customer` must be a record as the schema's task type declares, got an entity reference of type `Agent`",
            ),
            (
                json!({ "currency": "EUR", "amount": null }),
                "`context.amount` must be a `Long` as the schema's task type declares, got null",
            ),
        ];
        for (task, message) in cases {
            assert_eq!(
                check(&ty, task.clone()),
                Err(vec![message.to_owned()]),
                "{task}"
            );
        }
    }

    #[test]
    fn every_violation_is_reported_up_to_a_few() {
        let ty = task_type(SHOP);
        let two = check(&ty, json!({ "amount": "5", "colour": "red" })).unwrap_err();
        assert_eq!(
            two,
            [
                "`context.amount` must be a `Long` as the schema's task type declares, got a string",
                "`context.colour` is not an attribute of the task type: it declares `amount`, \
                 `buyer`, `currency`, `customer`, `flag`, `from`, `items`, `limit` and 3 more",
                "`context.currency` is required by the task type",
            ]
        );
        let many: Vec<u32> = (0..100).collect();
        let errors = check(&ty, json!({ "currency": "EUR", "tags": many })).unwrap_err();
        assert_eq!(errors.len(), MAX_VIOLATIONS);
    }

    #[test]
    fn quoted_names_are_clipped() {
        let ty = task_type(SHOP);
        let long = "T".repeat(500);
        let errors = check(&ty, json!({ "currency": "EUR", "owner": entity(&long) })).unwrap_err();
        let expected = format!("`{}…`", "T".repeat(MAX_QUOTED));
        assert!(errors[0].ends_with(&expected), "{errors:?}");
    }

    #[test]
    fn entity_type_names_are_compared_as_cedar_reads_them() {
        let ty = task_type(SHOP);
        let spaced = json!({ "currency": "EUR", "buyer": entity("Shop :: Customer") });
        let cedar_reads = EntityTypeName::from_str("Shop :: Customer").is_ok();
        assert_eq!(check(&ty, spaced).is_ok(), cedar_reads);
    }

    /// Checks each task both ways and asserts the task type and Cedar agree on every one.
    fn assert_agrees_with_cedar(schema_text: &str, tasks: &[Value]) {
        let schema = Schema::from_cedarschema_str(schema_text).unwrap().0;
        let ty = task_type(schema_text);
        let agent = EntityUid::from_str(r#"Agent::"a""#).unwrap();
        let invoke = EntityUid::from_str(r#"Action::"invoke""#).unwrap();
        for task in tasks {
            let context = Context::from_json_value(json!({ "task": task }), None).unwrap();
            let cedar = Request::new(
                agent.clone(),
                invoke.clone(),
                agent.clone(),
                context,
                Some(&schema),
            );
            let ours = check(&ty, task.clone());
            assert_eq!(ours.is_ok(), cedar.is_ok(), "{task}: {ours:?} {cedar:?}");
        }
    }

    #[test]
    fn names_resolve_as_cedar_resolves_them() {
        // Inside `Shop`, `Item` is `Shop::Item` and `Agent` is the empty namespace's. (Cedar
        // refuses a schema where `Shop::Item` would shadow an `Item` of the empty namespace.)
        let schema = r#"
            namespace Shop {
                type Item = { sku: String, qty: Long };
                type Task = { item: Item, by: Agent, count: __cedar::Long };
            }
            entity Agent;
            action invoke appliesTo { principal: Agent, resource: Agent, context: { task: Shop::Task } };
        "#;
        let ty = task_type(schema);
        let task = json!({ "item": { "sku": "a", "qty": 2 }, "by": entity("Agent"), "count": 2 });
        assert_eq!(check(&ty, task.clone()), Ok(()));
        assert_agrees_with_cedar(
            schema,
            &[
                task,
                json!({ "item": { "other": 1 }, "by": entity("Agent"), "count": 2 }),
                json!({ "item": { "sku": "a", "qty": 2 }, "by": entity("Shop::Agent"), "count": 2 }),
            ],
        );

        // An entity type or common type named like an extension type takes its place.
        let schema = r#"
            entity Agent;
            entity decimal;
            type ipaddr = String;
            action invoke appliesTo { principal: Agent, resource: Agent, context: { task: { d?: decimal, i?: ipaddr } } };
        "#;
        assert_agrees_with_cedar(
            schema,
            &[
                json!({ "d": entity("decimal") }),
                json!({ "d": extension("decimal", "1.5") }),
                json!({ "i": "10.0.0.1" }),
                json!({ "i": extension("ip", "10.0.0.1") }),
            ],
        );
    }

    /// Whatever the task type accepts, Cedar accepts, and the other way round.
    #[test]
    fn agrees_with_cedar() {
        let tasks = [
            json!({ "currency": "EUR" }),
            json!({}),
            json!({ "currency": 1 }),
            json!({ "currency": "EUR", "colour": "red" }),
            json!({ "currency": "EUR", "amount": 9_223_372_036_854_775_807_i64 }),
            json!({ "currency": "EUR", "tags": [] }),
            json!({ "currency": "EUR", "tags": ["a", 1] }),
            json!({ "currency": "EUR", "tags": [["a"]] }),
            json!({ "currency": "EUR", "items": [{ "sku": "a" }, { "sku": "b", "qty": 1 }] }),
            json!({ "currency": "EUR", "items": [{ "qty": 1 }] }),
            json!({ "currency": "EUR", "items": [{ "sku": "a", "extra": 1 }] }),
            json!({ "currency": "EUR", "customer": { "tier": "gold" } }),
            json!({ "currency": "EUR", "customer": { "tier": "gold", "since": "2024-01-01" } }),
            json!({ "currency": "EUR", "customer": { "tier": "gold", "since": extension("datetime", "2024-01-01") } }),
            json!({ "currency": "EUR", "owner": entity("Agent") }),
            json!({ "currency": "EUR", "owner": entity("Shop::Customer") }),
            json!({ "currency": "EUR", "buyer": entity("Shop::Customer") }),
            json!({ "currency": "EUR", "limit": extension("decimal", "1.5") }),
            json!({ "currency": "EUR", "limit": extension("duration", "1h") }),
            json!({ "currency": "EUR", "from": extension("ip", "10.0.0.0/8") }),
            json!({ "currency": "EUR", "wait": extension("duration", "1h30m") }),
            json!({ "currency": "EUR", "flag": false }),
            json!({ "currency": "EUR", "flag": 0 }),
        ];
        assert_agrees_with_cedar(SHOP, &tasks);
    }

    #[test]
    fn no_record_task_means_no_task_type() {
        let no_task = r#"
            entity Agent;
            action invoke appliesTo { principal: Agent, resource: Agent, context: { depth: Long } };
        "#;
        assert!(resolve(no_task).unwrap().is_none());
        let long_task = r#"
            entity Agent;
            type Ctx = { task: Long };
            action invoke appliesTo { principal: Agent, resource: Agent, context: Ctx };
        "#;
        assert!(resolve(long_task).unwrap().is_none());
        let no_context =
            "entity Agent; action invoke appliesTo { principal: Agent, resource: Agent };";
        assert!(resolve(no_context).unwrap().is_none());
    }

    /// A schema with `type Task = { n: { n: ... { leaf: Long } } }`, `levels` records deep.
    fn nested_records(levels: usize) -> String {
        let task = format!(
            "{}leaf: Long{}",
            "n: { ".repeat(levels - 1),
            " }".repeat(levels - 1)
        );
        format!(
            "entity Agent; type Task = {{ {task} }}; \
             action invoke appliesTo {{ principal: Agent, resource: Agent, context: {{ task: Task }} }};"
        )
    }

    /// `type T0 = { n: T1 }; ... type T{levels} = Long;`, or plain aliases `type T0 = T1;`.
    fn chained_types(levels: usize, records: bool) -> String {
        let mut schema = String::from(
            "entity Agent; action invoke appliesTo { principal: Agent, resource: Agent, context: { task: { n: T0 } } };",
        );
        for i in 0..levels {
            let next = if records {
                format!("{{ n: T{} }}", i + 1)
            } else {
                format!("T{}", i + 1)
            };
            schema.push_str(&format!("type T{i} = {next};"));
        }
        schema.push_str(&format!("type T{levels} = Long;"));
        schema
    }

    #[test]
    fn deep_types_are_refused_clearly() {
        let too_deep = TaskTypeError::TooDeep {
            action: "invoke".into(),
        };
        assert!(resolve(&nested_records(8)).unwrap().is_some());
        // Much deeper schemas are refused before Cedar parses them: see `compile`.
        assert_eq!(
            resolve(&nested_records(MAX_TYPE_DEPTH + 1)).unwrap_err(),
            too_deep
        );
        assert!(resolve(&chained_types(8, true)).unwrap().is_some());
        assert_eq!(resolve(&chained_types(500, true)).unwrap_err(), too_deep);
        assert_eq!(resolve(&chained_types(500, false)).unwrap_err(), too_deep);
        assert_eq!(
            too_deep.to_string(),
            "the context type of `invoke` nests deeper than 32 levels, counting records, sets and named types"
        );
    }

    #[test]
    fn a_shared_type_counts_as_deep_wherever_it_is_used() {
        // `Deep` is resolved near the top first, then used again under 20 more records.
        let deep = format!("{}leaf: Long{}", "n: { ".repeat(20), " }".repeat(20));
        let wrapped = format!("{}x: Deep{}", "n: { ".repeat(20), " }".repeat(20));
        let schema = format!(
            "entity Agent; type Deep = {{ {deep} }}; \
             action invoke appliesTo {{ principal: Agent, resource: Agent, \
             context: {{ task: {{ a: Deep, b: {{ {wrapped} }} }} }} }};"
        );
        assert!(matches!(
            resolve(&schema),
            Err(TaskTypeError::TooDeep { .. })
        ));
    }

    #[test]
    fn a_deep_schema_is_a_bundle_error() {
        let files = vec![SourceFile {
            name: "deep.cedarschema".into(),
            text: chained_types(500, true)
                .replace(
                    "entity Agent;",
                    "entity User; entity Service; entity Agent;",
                )
                .replace("principal: Agent", "principal: [User, Service, Agent]"),
        }];
        let error = PolicyBundle::compile(files).unwrap_err();
        let messages: Vec<&str> = error.errors.iter().map(|d| d.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("nests deeper than 32 levels")),
            "{messages:?}"
        );
    }

    #[test]
    fn self_references_are_refused_not_followed() {
        // Cedar refuses these schemas too; the resolver must stop on its own all the same.
        let record = r#"
            entity Agent; type Task = { next?: Task };
            action invoke appliesTo { principal: Agent, resource: Agent, context: { task: Task } };
        "#;
        assert_eq!(
            resolve(record).unwrap_err(),
            TaskTypeError::Cycle("Task".into())
        );
        let aliases = r#"
            entity Agent; type A = B; type B = A;
            action invoke appliesTo { principal: Agent, resource: Agent, context: { task: A } };
        "#;
        assert!(matches!(resolve(aliases), Err(TaskTypeError::Cycle(_))));
        let context = r#"
            entity Agent; type Ctx = Ctx;
            action invoke appliesTo { principal: Agent, resource: Agent, context: Ctx };
        "#;
        assert_eq!(
            resolve(context).unwrap_err(),
            TaskTypeError::Cycle("Ctx".into())
        );
    }

    #[test]
    fn a_type_used_many_times_is_resolved_once() {
        // Inlined, this task type has 8^14 leaves.
        let mut schema = String::from(
            "entity Agent; action invoke appliesTo { principal: Agent, resource: Agent, context: { task: T0 } };",
        );
        for i in 0..14 {
            let attributes: Vec<String> = (0..8).map(|a| format!("a{a}: T{}", i + 1)).collect();
            schema.push_str(&format!("type T{i} = {{ {} }};", attributes.join(", ")));
        }
        schema.push_str("type T14 = Long;");
        let ty = resolve(&schema).unwrap().expect("a task type");
        let task = json!({ "a0": { "a7": { "a3": { "a1": 1 } } } });
        assert!(check(&ty, task).is_err(), "T4 is a record, not a number");
    }

    #[test]
    fn an_undeclared_name_is_an_error() {
        let schema = r#"
            entity Agent;
            action invoke appliesTo { principal: Agent, resource: Agent, context: { task: { x: Nope } } };
        "#;
        assert_eq!(
            resolve(schema).unwrap_err(),
            TaskTypeError::Undeclared("Nope".into())
        );
    }
}
