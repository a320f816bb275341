//! The JSON of the AuthZEN Authorization API 1.0: evaluation requests, batches with top-level
//! defaults, and the answers. Unknown members are ignored, as the specification asks.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The user or machine the question is about (AuthZEN §5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct Subject {
    /// The subject's type, such as `user`; mapped to a Baton kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// The subject's id within its type.
    pub id: String,
    /// Attributes the PEP reports, ignored: Baton reads the subject from its own directory,
    /// so a PEP cannot lend a subject a role.
    #[serde(default)]
    pub properties: Option<IgnoredAny>,
}

/// What the subject wants to do (AuthZEN §5.3): one scope of the bundle.
#[derive(Debug, Clone, Deserialize)]
pub struct Action {
    /// The action's name: a Cedar action of the active bundle.
    pub name: String,
    /// Ignored: Cedar actions have no attributes.
    #[serde(default)]
    pub properties: Option<IgnoredAny>,
}

/// What the subject wants to act on (AuthZEN §5.2): the callee of the hop.
#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    /// The resource's type; mapped to an entity type of the bundle.
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource's id within its type.
    pub id: String,
    /// The resource's attributes for this evaluation.
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
}

/// One evaluation's members; in a batch item each one is optional, defaulting to the batch's.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluation {
    /// Who asks.
    #[serde(default)]
    pub subject: Option<Subject>,
    /// What for.
    #[serde(default)]
    pub action: Option<Action>,
    /// On what.
    #[serde(default)]
    pub resource: Option<Resource>,
    /// The task's attributes, and Baton's own under `baton`.
    #[serde(default)]
    pub context: Option<Value>,
}

/// The Access Evaluations API request (AuthZEN §7.1): defaults, items, options.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Evaluations {
    /// The default subject of every item.
    #[serde(default)]
    pub subject: Option<Subject>,
    /// The default action of every item.
    #[serde(default)]
    pub action: Option<Action>,
    /// The default resource of every item.
    #[serde(default)]
    pub resource: Option<Resource>,
    /// The default context of every item.
    #[serde(default)]
    pub context: Option<Value>,
    /// The items; none or empty makes the request a single evaluation.
    #[serde(default)]
    pub evaluations: Option<Vec<Evaluation>>,
    /// How the items are decided.
    #[serde(default)]
    pub options: Option<Options>,
}

impl Evaluations {
    /// The request's top level as one evaluation: the defaults, or the single question.
    pub fn defaults(&self) -> Evaluation {
        Evaluation {
            subject: self.subject.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            context: self.context.clone(),
        }
    }
}

impl Evaluation {
    /// This item with what it leaves out taken from `defaults`; a member the item gives
    /// replaces the default's whole.
    pub fn over(self, defaults: &Evaluation) -> Evaluation {
        Evaluation {
            subject: self.subject.or_else(|| defaults.subject.clone()),
            action: self.action.or_else(|| defaults.action.clone()),
            resource: self.resource.or_else(|| defaults.resource.clone()),
            context: self.context.or_else(|| defaults.context.clone()),
        }
    }
}

/// Batch options (AuthZEN §7.1.2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Options {
    /// `execute_all` (the default), `deny_on_first_deny` or `permit_on_first_permit`.
    #[serde(default)]
    pub evaluations_semantic: Option<String>,
}

/// How a batch's items are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Every item is decided.
    ExecuteAll,
    /// Items are decided in order until one is denied (that one included).
    DenyOnFirstDeny,
    /// Items are decided in order until one is permitted (that one included).
    PermitOnFirstPermit,
}

impl Semantic {
    /// The semantic named `name`, if it is one of the three.
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name {
            None | Some("execute_all") => Some(Self::ExecuteAll),
            Some("deny_on_first_deny") => Some(Self::DenyOnFirstDeny),
            Some("permit_on_first_permit") => Some(Self::PermitOnFirstPermit),
            Some(_) => None,
        }
    }
}

/// One answer (AuthZEN §6.2).
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Whether the subject may.
    pub decision: bool,
    /// What Baton adds: ids, the verdict of an ALLOW, the reasons of a refusal.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
}

/// The answer to a batch, item for item.
#[derive(Debug, Clone, Serialize)]
pub struct Decisions {
    /// One decision per item decided, in order.
    pub evaluations: Vec<Decision>,
}
