//! The lifecycle terms of a bundle's agents, read once when the bundle compiles: who owns each
//! agent (its optional `owner`, a `User` or `Group`) and when it expires (its optional
//! `expires`, a Cedar `datetime`). The decision path then looks an agent up instead of reading
//! entity attributes on every question.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use cedar_policy::{
    Context, Entities, EntityTypeName, EntityUid, EvalResult, Expression, Request, eval_expression,
};

/// The agent attribute naming the agent's owner.
pub const OWNER_ATTRIBUTE: &str = "owner";
/// The agent attribute naming when the agent expires.
pub const EXPIRES_ATTRIBUTE: &str = "expires";
/// The entity types an owner may have.
pub const OWNER_TYPES: [&str; 2] = ["User", "Group"];

/// Who owns an agent, as the directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// An owner of the directory.
    Present(String),
    /// No `owner` attribute.
    Absent,
    /// The owner named is not an entity of the directory (anymore).
    NotInDirectory(String),
    /// The attribute holds something that is not a `User` or `Group` reference, described.
    Malformed(String),
}

/// When an agent expires, as the directory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No `expires` attribute.
    Never,
    /// From this time on the agent is expired.
    At(SystemTime),
    /// The attribute holds something that is not a datetime: treated as already expired.
    Malformed,
}

/// One agent's lifecycle terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTerms {
    /// Its owner.
    pub owner: Owner,
    /// Its expiry.
    pub expires: Expiry,
}

impl AgentTerms {
    /// The terms of an agent the directory does not hold: no owner, no expiry.
    pub const UNKNOWN: Self = Self {
        owner: Owner::Absent,
        expires: Expiry::Never,
    };
}

/// The lifecycle terms of every agent of a bundle's directory, by agent id.
#[derive(Debug, Default)]
pub struct Lifecycles {
    agents: HashMap<String, AgentTerms>,
}

impl Lifecycles {
    /// Reads the terms of every entity of type `agent` in `entities`; `invoke` is any action
    /// (it only completes the request an expression is evaluated in). Returns a warning for
    /// each kind of malformed value found, naming a few of the agents.
    pub fn read(
        entities: &Entities,
        agent: &EntityTypeName,
        invoke: &EntityUid,
    ) -> (Self, Vec<String>) {
        // A datetime's milliseconds since the epoch, through Cedar's own datetime functions:
        // its extension value has no public accessor.
        let epoch_ms = Expression::from_str(&format!(
            "resource.{EXPIRES_ATTRIBUTE}.durationSince(datetime(\"1970-01-01\")).toMilliseconds()"
        ));
        let mut agents = HashMap::new();
        let mut bad_owners = Vec::new();
        let mut bad_expiries = Vec::new();
        for entity in entities.iter() {
            let uid = entity.uid();
            if uid.type_name() != agent {
                continue;
            }
            let owner = match entity.attr(OWNER_ATTRIBUTE) {
                None => Owner::Absent,
                Some(Ok(EvalResult::EntityUid(owner)))
                    if OWNER_TYPES.contains(&owner.type_name().to_string().as_str()) =>
                {
                    if entities.get(&owner).is_some() {
                        Owner::Present(owner.to_string())
                    } else {
                        Owner::NotInDirectory(owner.to_string())
                    }
                }
                Some(Ok(other)) => Owner::Malformed(describe(&other)),
                Some(Err(_)) => Owner::Malformed("an unevaluated value".to_owned()),
            };
            if matches!(owner, Owner::Malformed(_)) {
                bad_owners.push(uid.to_string());
            }
            let expires = match entity.attr(EXPIRES_ATTRIBUTE) {
                None => Expiry::Never,
                Some(Ok(EvalResult::ExtensionValue(_))) => epoch_ms
                    .as_ref()
                    .ok()
                    .and_then(|expr| {
                        let request = Request::new(
                            uid.clone(),
                            invoke.clone(),
                            uid.clone(),
                            Context::empty(),
                            None,
                        )
                        .ok()?;
                        match eval_expression(&request, entities, expr).ok()? {
                            EvalResult::Long(ms) => Some(at_epoch_ms(ms)),
                            _ => None,
                        }
                    })
                    .map_or(Expiry::Malformed, Expiry::At),
                Some(_) => Expiry::Malformed,
            };
            if expires == Expiry::Malformed {
                bad_expiries.push(uid.to_string());
            }
            agents.insert(
                uid.id().unescaped().to_owned(),
                AgentTerms { owner, expires },
            );
        }
        let mut warnings = Vec::new();
        if !bad_owners.is_empty() {
            warnings.push(format!(
                "agent attribute `{OWNER_ATTRIBUTE}` must be a `User` or `Group` entity for the agent lifecycle rules, so {} count as having no owner: {}",
                plural(bad_owners.len(), "agent"),
                listed(bad_owners)
            ));
        }
        if !bad_expiries.is_empty() {
            warnings.push(format!(
                "agent attribute `{EXPIRES_ATTRIBUTE}` must be a `datetime` for the agent lifecycle rules, so {} count as expired: {}",
                plural(bad_expiries.len(), "agent"),
                listed(bad_expiries)
            ));
        }
        (Self { agents }, warnings)
    }

    /// The terms of the agent `id`; [`AgentTerms::UNKNOWN`] for an agent the directory lacks.
    pub fn terms(&self, id: &str) -> &AgentTerms {
        self.agents.get(id).unwrap_or(&AgentTerms::UNKNOWN)
    }

    /// Every agent of the directory with its terms, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AgentTerms)> {
        self.agents.iter().map(|(id, t)| (id.as_str(), t))
    }
}

/// The time `ms` milliseconds from the epoch, clamped to what `SystemTime` holds.
fn at_epoch_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH
            .checked_add(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(magnitude)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// What a malformed owner value is, for the reader.
fn describe(value: &EvalResult) -> String {
    match value {
        EvalResult::String(s) => format!("the string `{}`", super::clip(s)),
        EvalResult::EntityUid(uid) => format!("`{uid}`, which is neither a `User` nor a `Group`"),
        EvalResult::Bool(_) => "a boolean".to_owned(),
        EvalResult::Long(_) => "a number".to_owned(),
        EvalResult::Set(_) => "a set".to_owned(),
        EvalResult::Record(_) => "a record".to_owned(),
        EvalResult::ExtensionValue(_) => "an extension value".to_owned(),
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A few names, and how many more.
fn listed(mut names: Vec<String>) -> String {
    const SHOWN: usize = 5;
    names.sort();
    let more = names.len().saturating_sub(SHOWN);
    names.truncate(SHOWN);
    let mut out = names.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}
