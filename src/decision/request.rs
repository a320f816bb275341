//! A validated decision request and the limits that keep bad input out of the core.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::identity::{Identity, IdentityKind};

/// Size limits on requests. Anything beyond them is refused as invalid input, never truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest entity id or transaction id, in bytes.
    pub max_id_bytes: usize,
    /// Most scopes in a request, and in a ceiling.
    pub max_scopes: usize,
    /// Longest scope name, in bytes.
    pub max_scope_bytes: usize,
    /// Entries of an asserted delegation chain; the depth rule itself is a decision setting.
    pub max_chain_entries: usize,
    /// Largest task context, in bytes of its protobuf encoding.
    pub max_context_bytes: usize,
    /// Deepest nesting of records and lists in the task context; the top level is 1.
    pub max_context_depth: usize,
    /// Most questions in one batch.
    pub max_batch_items: usize,
    /// Largest single question, in bytes of its protobuf encoding.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_id_bytes: 256,
            max_scopes: 64,
            max_scope_bytes: 128,
            max_chain_entries: 32,
            max_context_bytes: 16 * 1024,
            max_context_depth: 8,
            max_batch_items: 100,
            max_request_bytes: 64 * 1024,
        }
    }
}

/// One reason a request is invalid, naming the wire field (for example `caller.id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The wire path of the offending field, such as `scopes[2]` or `context.amount`.
    pub field: String,
    /// What is wrong with it, as a phrase that follows the field's name.
    pub description: String,
}

impl FieldViolation {
    /// The violation of `field`, described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// A request the core refuses to decide on, with every violation found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {}", describe(.violations))]
pub struct InvalidRequest {
    /// Every violation found.
    pub violations: Vec<FieldViolation>,
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("`{}` {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<FieldViolation> for InvalidRequest {
    fn from(v: FieldViolation) -> Self {
        Self {
            violations: vec![v],
        }
    }
}

/// A question for the decision core: may `caller` call `callee` for `principal` with `scopes`?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRequest {
    /// The identity making this call.
    pub caller: Identity,
    /// The agent being called.
    pub callee: Identity,
    /// The identity at the root of the chain, on whose behalf the call is made.
    pub principal: Identity,
    /// Deduplicated, in request order.
    pub scopes: Vec<String>,
    /// Task attributes, visible to policies as `context.task`.
    pub context: Map<String, Value>,
    /// Actors between the principal and the caller, earliest first.
    pub delegation_chain: Vec<Identity>,
    /// The previous hop's grant; `None` at the first hop.
    pub ceiling: Option<HashSet<String>>,
    /// The task this hop belongs to; `None` asks for a new one, as at a first hop.
    pub transaction_id: Option<String>,
    /// Whether the caller holds its place in the chain as an actor of a verified credential
    /// (a token's `act` names it), so it is listed even when it is also the principal: a chain
    /// taken from a token is never shortened. False for a principal calling on its own
    /// authority, which the principal's own entry records.
    pub caller_is_actor: bool,
    /// Obligations of the upstream credential that no token service met (a verdict presented
    /// as it is): they carry into this hop's grant. Sorted, without duplicates.
    pub upstream_obligations: Vec<String>,
    /// What the request says the callee is like (an AuthZEN resource's `properties`): its
    /// attributes for this decision, in place of the directory's. `None` leaves the directory's.
    pub callee_attributes: Option<Map<String, Value>>,
}

impl DecisionRequest {
    /// A first hop of `caller` to `callee` for `principal`, with nothing requested yet.
    pub fn new(caller: Identity, callee: Identity, principal: Identity) -> Self {
        Self {
            caller,
            callee,
            principal,
            scopes: Vec::new(),
            context: Map::new(),
            delegation_chain: Vec::new(),
            ceiling: None,
            transaction_id: None,
            caller_is_actor: false,
            upstream_obligations: Vec::new(),
            callee_attributes: None,
        }
    }

    /// A SHA-256 digest of everything the decision depends on: who, for whom, through whom,
    /// which scopes in which order, the task context, the ceiling and the upstream obligations. The transaction id is left
    /// out: it names the request without changing its outcome. Every field is length-prefixed,
    /// so no two different requests share an encoding.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        for identity in [&self.caller, &self.callee, &self.principal] {
            field(identity.kind.as_str().as_bytes());
            field(identity.id.as_bytes());
        }
        field(&(self.delegation_chain.len() as u64).to_be_bytes());
        for hop in &self.delegation_chain {
            field(hop.kind.as_str().as_bytes());
            field(hop.id.as_bytes());
        }
        field(&(self.scopes.len() as u64).to_be_bytes());
        for scope in &self.scopes {
            field(scope.as_bytes());
        }
        // serde_json keeps object keys sorted, so equal contexts serialize equally.
        field(
            serde_json::to_string(&self.context)
                .unwrap_or_default()
                .as_bytes(),
        );
        match &self.ceiling {
            None => field(b"no ceiling"),
            Some(ceiling) => {
                let mut sorted: Vec<&String> = ceiling.iter().collect();
                sorted.sort();
                field(&(sorted.len() as u64).to_be_bytes());
                for scope in sorted {
                    field(scope.as_bytes());
                }
            }
        }
        field(&[u8::from(self.caller_is_actor)]);
        match &self.callee_attributes {
            None => field(b"directory callee"),
            Some(attributes) => field(
                serde_json::to_string(attributes)
                    .unwrap_or_default()
                    .as_bytes(),
            ),
        }
        field(&(self.upstream_obligations.len() as u64).to_be_bytes());
        for obligation in &self.upstream_obligations {
            field(obligation.as_bytes());
        }
        h.finalize().into()
    }
}

/// Checks the reference to an identity that acts (a caller, a principal, an earlier hop): one of
/// the acting kinds and an id of sane size. `field` is the wire path.
pub fn identity(
    field: &str,
    kind: &str,
    id: &str,
    limits: &Limits,
) -> Result<Identity, Vec<FieldViolation>> {
    typed(field, IdentityKind::parse(kind), kind, id, limits)
}

/// Checks a callee reference: an acting kind or a well-formed resource type name (the decision
/// then checks the bundle declares it), and an id of sane size.
pub fn callee(
    field: &str,
    kind: &str,
    id: &str,
    limits: &Limits,
) -> Result<Identity, Vec<FieldViolation>> {
    let parsed = IdentityKind::parse_any(kind);
    if parsed.is_none() && !kind.is_empty() {
        let mut violations = vec![FieldViolation::new(
            format!("{field}.type"),
            format!(
                "is `{}`, which is not an entity type name: `Agent`, or a resource type such as `Tool`",
                clip(kind)
            ),
        )];
        if let Err(description) = check_text(id, limits.max_id_bytes) {
            violations.push(FieldViolation::new(format!("{field}.id"), description));
        }
        return Err(violations);
    }
    typed(field, parsed, kind, id, limits)
}

fn typed(
    field: &str,
    parsed: Option<IdentityKind>,
    kind: &str,
    id: &str,
    limits: &Limits,
) -> Result<Identity, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    if parsed.is_none() {
        let described = if kind.is_empty() {
            "is required: one of `User`, `Service`, `Agent`".to_owned()
        } else {
            format!(
                "is an unknown entity type `{}`: expected `User`, `Service` or `Agent`",
                clip(kind)
            )
        };
        violations.push(FieldViolation::new(format!("{field}.type"), described));
    }
    if let Err(description) = check_text(id, limits.max_id_bytes) {
        violations.push(FieldViolation::new(format!("{field}.id"), description));
    }
    match parsed {
        Some(kind) if violations.is_empty() => Ok(Identity::new(kind, id)),
        _ => Err(violations),
    }
}

/// Checks a scope name.
pub fn scope(field: &str, name: &str, limits: &Limits) -> Result<(), FieldViolation> {
    check_text(name, limits.max_scope_bytes).map_err(|d| FieldViolation::new(field, d))
}

/// Checks an opaque identifier such as a transaction id.
pub fn token(field: &str, value: &str, limits: &Limits) -> Result<(), FieldViolation> {
    check_text(value, limits.max_id_bytes).map_err(|d| FieldViolation::new(field, d))
}

fn check_text(value: &str, max_bytes: usize) -> Result<(), String> {
    if value.is_empty() {
        Err("must not be empty".to_owned())
    } else if value.len() > max_bytes {
        Err(format!(
            "is {} bytes long, over the limit of {max_bytes}",
            value.len()
        ))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(())
    }
}

/// User input quoted in an error stays short.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Checks the roles identities play in a hop, which the wire types cannot express.
pub fn check_roles(request: &DecisionRequest) -> Result<(), InvalidRequest> {
    let mut violations = Vec::new();
    if matches!(
        request.callee.kind,
        IdentityKind::User | IdentityKind::Service
    ) {
        violations.push(FieldViolation::new(
            "callee.type",
            format!(
                "must be `Agent` or a resource type of the bundle (a `Tool`, a `Dataset`): Baton decides calls to agents and resources, not to a `{}`",
                request.callee.kind
            ),
        ));
    }
    if !request.caller.kind.is_actor() {
        violations.push(FieldViolation::new(
            "caller.type",
            format!(
                "is `{}`: a resource is called at the end of a chain and never calls onwards",
                request.caller.kind
            ),
        ));
    }
    if !request.principal.kind.is_actor() {
        violations.push(FieldViolation::new(
            "principal.type",
            format!(
                "is `{}`: only a user, a service or an agent is a principal",
                request.principal.kind
            ),
        ));
    }
    let self_acting = request.caller == request.principal
        && request.delegation_chain.is_empty()
        && !request.caller_is_actor;
    if request.caller.kind == IdentityKind::User && !self_acting {
        violations.push(FieldViolation::new(
            "caller.type",
            "a `User` can only call on its own behalf: set `principal` to the same user and leave `delegation_chain` empty",
        ));
    }
    for (i, hop) in request.delegation_chain.iter().enumerate() {
        if !hop.kind.is_actor() {
            violations.push(FieldViolation::new(
                format!("delegation_chain[{i}].type"),
                "a resource is called at the end of a chain and never acts in one",
            ));
        } else if hop.kind == IdentityKind::User {
            violations.push(FieldViolation::new(
                format!("delegation_chain[{i}].type"),
                "a `User` can only be the principal, not an intermediate actor",
            ));
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(InvalidRequest { violations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_errors_name_the_field() {
        let limits = Limits::default();
        let err = identity("caller", "Robot", "", &limits).unwrap_err();
        let fields: Vec<&str> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["caller.type", "caller.id"]);
        assert!(err[0].description.contains("`Robot`"));
        let long = "x".repeat(257);
        let err = identity("principal", "User", &long, &limits).unwrap_err();
        assert!(err[0].description.contains("over the limit of 256"));
        assert!(identity("callee", "Agent", "bad\nid", &limits).is_err());
        assert_eq!(
            identity("callee", "Agent", "data-analyst", &limits).unwrap(),
            Identity::new(IdentityKind::Agent, "data-analyst")
        );
    }

    #[test]
    fn long_input_is_clipped_in_messages() {
        let err = identity("caller", &"T".repeat(500), "a", &Limits::default()).unwrap_err();
        assert!(err[0].description.len() < 200);
    }
}
