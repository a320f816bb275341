//! Who takes part in a delegation: users, services and agents, as typed references, and the
//! resources (tools, MCP servers, datasets) a chain may end at.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of identity a chain is made of; each is a Cedar entity type of the same name.
/// Users, services and agents act (call, delegate, are principals); a resource of another type
/// the bundle declares (a `Tool`, an `McpServer`, a `Dataset`) can only be called, at the last
/// hop of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKind {
    /// A person; calls only for itself, so it is never an intermediate hop.
    User,
    /// A workload that is not an agent, such as a scheduled job calling an agent.
    Service,
    /// An AI agent: it may be called, and may call onwards.
    Agent,
    /// A resource of a type the bundle declares, named as Cedar names it (`Tool`,
    /// `corp::Dataset`): it may be called, and never calls onwards.
    Resource(ResourceType),
}

/// The Cedar entity type name of a resource kind: one or more identifiers joined by `::`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceType(std::sync::Arc<str>);

/// Longest resource type name accepted, in bytes.
pub const MAX_TYPE_NAME_BYTES: usize = 128;

impl ResourceType {
    /// `name` as a resource type, if it is a well-formed Cedar type name (`Tool`,
    /// `corp::Dataset`) other than the actor kinds'.
    pub fn parse(name: &str) -> Option<Self> {
        let well_formed = !name.is_empty()
            && name.len() <= MAX_TYPE_NAME_BYTES
            && name.split("::").all(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        (well_formed && IdentityKind::parse(name).is_none()).then(|| Self(name.into()))
    }

    /// The type name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl IdentityKind {
    /// The kinds that act: callers, principals and intermediate hops are always one of these.
    pub const ALL: [Self; 3] = [Self::User, Self::Service, Self::Agent];

    /// The Cedar entity type name, which is also the wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::User => "User",
            Self::Service => "Service",
            Self::Agent => "Agent",
            Self::Resource(t) => t.as_str(),
        }
    }

    /// The acting kind whose Cedar entity type name is `s`, or `None` for any other name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind named `s`: an acting kind, else a resource type (which the bundle must
    /// declare for a decision to use it). `None` for a malformed name.
    pub fn parse_any(s: &str) -> Option<Self> {
        Self::parse(s).or_else(|| ResourceType::parse(s).map(Self::Resource))
    }

    /// Whether this kind acts: a user, a service or an agent.
    pub fn is_actor(&self) -> bool {
        !matches!(self, Self::Resource(_))
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Written as its type name, as before resource kinds existed, so records stay readable both
/// ways.
impl Serialize for IdentityKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdentityKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse_any(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("`{name}` is not an entity type name")))
    }
}

/// A user, service or agent of the directory, or a resource that can be called.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// The entity type: user, service, agent, or a resource type.
    pub kind: IdentityKind,
    /// The entity id within its kind, such as `data-analyst`.
    pub id: String,
}

impl Identity {
    /// The identity of `kind` named `id`.
    pub fn new(kind: IdentityKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }
}

/// Reads as the audit trail prints it: `Agent data-analyst`.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_are_cedar_type_names_other_than_the_actors() {
        assert_eq!(IdentityKind::parse_any("Agent"), Some(IdentityKind::Agent));
        let tool = IdentityKind::parse_any("Tool").unwrap();
        assert!(!tool.is_actor());
        assert_eq!(tool.as_str(), "Tool");
        assert!(IdentityKind::parse_any("corp::Dataset").is_some());
        for bad in ["", "9tool", "Tool::", "a b", "Tool\n", &"T".repeat(200)] {
            assert_eq!(IdentityKind::parse_any(bad), None, "{bad:?}");
        }
        assert_eq!(IdentityKind::parse("Tool"), None);
        let json = serde_json::to_string(&Identity::new(tool.clone(), "sql")).unwrap();
        assert_eq!(json, r#"{"kind":"Tool","id":"sql"}"#);
        let back: Identity = serde_json::from_str(&json).unwrap();
        assert_eq!(back.kind, tool);
    }
}
