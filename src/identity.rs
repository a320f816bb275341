//! Who takes part in a delegation: users, services and agents, as typed references.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of identity a chain is made of; each is a Cedar entity type of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IdentityKind {
    /// A person; calls only for itself, so it is never an intermediate hop.
    User,
    /// A workload that is not an agent, such as a scheduled job calling an agent.
    Service,
    /// An AI agent; the only kind that may be a callee.
    Agent,
}

impl IdentityKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 3] = [Self::User, Self::Service, Self::Agent];

    /// The Cedar entity type name, which is also the wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Service => "Service",
            Self::Agent => "Agent",
        }
    }

    /// The kind whose Cedar entity type name is `s`, or `None` for any other name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user, service or agent of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// The entity type: user, service or agent.
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
