//! The standing-access review a quarterly access review needs: from the audit trail over a
//! window and a bundle, the agents never seen, the grants the policies allow but nobody used,
//! and the agents nearing expiry. Pure: a bundle, the decisions seen and the time in, a
//! [`StandingAccessReport`] out, so `baton govern report` and a console render the same thing.
//!
//! - `grants`: the (caller agent → callee, scope) grants a bundle's policies allow.
//! - `render`: the report as people read it.

mod grants;
mod render;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use self::grants::{DEFAULT_MAX_EVALUATIONS, Grant, GrantsError, standing_grants};
use crate::audit::{AuditEvent, AuditRecord};
use crate::bundle::{AgentTerms, Expiry, Owner, PolicyBundle};
use crate::decision::DecisionKind;
use crate::identity::{Identity, IdentityKind};
use crate::replay::Window;

/// What a review looks at beside the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewSettings {
    /// The decisions that count as use.
    pub window: Window,
    /// The time of the review: expiries are measured from it.
    pub now: SystemTime,
    /// Agents expiring before `now` plus this are listed as nearing expiry.
    pub expiring_within: Duration,
    /// The most Cedar evaluations spent enumerating grants.
    pub max_evaluations: u64,
}

/// One decision as the review counts it: who took part, and what was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// When it was decided.
    pub time: SystemTime,
    /// Principal → … → caller → callee.
    pub chain: Vec<Identity>,
    /// The caller of the hop.
    pub caller: Identity,
    /// The callee of the hop.
    pub callee: Identity,
    /// The scopes granted: empty unless the answer was an ALLOW.
    pub granted: Vec<String>,
}

impl Sighting {
    /// The sighting in `record`, if it records a decision.
    pub fn of(record: &AuditRecord) -> Option<Self> {
        let AuditEvent::Decision(d) = &record.event else {
            return None;
        };
        Some(Self {
            time: record.time,
            chain: d.chain.clone(),
            caller: d.caller.clone(),
            callee: d.callee.clone(),
            granted: if d.effect == DecisionKind::Allow {
                d.granted.clone()
            } else {
                Vec::new()
            },
        })
    }
}

/// An agent of the directory, with its lifecycle terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLine {
    /// The agent's id.
    pub agent: String,
    /// Its owner as the directory names it (`User::"alice"`); absent without one.
    pub owner: Option<String>,
    /// Whether that owner is missing from the directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner_missing: bool,
    /// When it expires (RFC 3339); absent for never.
    pub expires: Option<String>,
}

/// An agent whose expiry has passed or falls within the review's horizon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringAgent {
    /// The agent and its terms.
    #[serde(flatten)]
    pub agent: AgentLine,
    /// Whether it has already expired.
    pub expired: bool,
}

/// A grant the policies allow that no ALLOW of the window used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedGrant {
    /// The agent that may call.
    pub caller: Identity,
    /// What it may call.
    pub callee: Identity,
    /// The scope nobody was granted there.
    pub scope: String,
}

/// The standing-access review of one bundle over one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingAccessReport {
    /// The content hash of the bundle reviewed.
    pub bundle_version: String,
    /// The window's start (RFC 3339, inclusive); absent from the first record.
    pub from: Option<String>,
    /// The window's end (RFC 3339, exclusive); absent to the last record.
    pub until: Option<String>,
    /// When the review was made (RFC 3339).
    pub now: String,
    /// Decisions of the window.
    pub decisions: u64,
    /// Agents of the directory.
    pub agents: u64,
    /// Agents of the directory in no decision of the window, by id.
    pub unseen_agents: Vec<AgentLine>,
    /// Grants the policies allow; absent when they were not enumerated.
    pub grants: Option<u64>,
    /// Grants no ALLOW of the window used, sorted by caller, callee and scope.
    pub unused_grants: Vec<UnusedGrant>,
    /// Why the grants were not enumerated, if they were not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants_not_enumerated: Option<String>,
    /// The horizon of `expiring`, in seconds from `now`.
    pub expiring_within_secs: u64,
    /// Agents expired or expiring before `now` plus the horizon, soonest first.
    pub expiring: Vec<ExpiringAgent>,
}

/// A review in progress: offer it the trail's decisions, then take its report.
pub struct Review<'b> {
    bundle: &'b PolicyBundle,
    settings: ReviewSettings,
    decisions: u64,
    seen: HashSet<String>,
    used: HashSet<(Identity, Identity, String)>,
}

impl<'b> Review<'b> {
    /// A review of `bundle` under `settings`.
    pub fn new(bundle: &'b PolicyBundle, settings: ReviewSettings) -> Self {
        Self {
            bundle,
            settings,
            decisions: 0,
            seen: HashSet::new(),
            used: HashSet::new(),
        }
    }

    /// Counts `record` if it is a decision of the window.
    pub fn offer_record(&mut self, record: &AuditRecord) {
        if let Some(sighting) = Sighting::of(record) {
            self.offer(sighting);
        }
    }

    /// Counts a decision, if it falls in the window: its agents are seen, its granted scopes
    /// used.
    pub fn offer(&mut self, sighting: Sighting) {
        let (min, max) = self.settings.window.range_ms();
        if !(min..=max).contains(&crate::audit::record::unix_ms(sighting.time)) {
            return;
        }
        self.decisions += 1;
        for member in &sighting.chain {
            if member.kind == IdentityKind::Agent && !self.seen.contains(&member.id) {
                self.seen.insert(member.id.clone());
            }
        }
        for scope in sighting.granted {
            self.used
                .insert((sighting.caller.clone(), sighting.callee.clone(), scope));
        }
    }

    /// The report.
    pub fn finish(self) -> StandingAccessReport {
        let s = self.settings;
        let lifecycles = self.bundle.lifecycles();
        let mut agents: Vec<(&str, &AgentTerms)> = lifecycles.iter().collect();
        agents.sort_unstable_by_key(|(id, _)| *id);
        let unseen_agents = agents
            .iter()
            .filter(|(id, _)| !self.seen.contains(*id))
            .map(|(id, terms)| line(id, terms))
            .collect();
        let horizon = s.now.checked_add(s.expiring_within).unwrap_or(s.now);
        let mut expiring: Vec<(SystemTime, ExpiringAgent)> = agents
            .iter()
            .filter_map(|(id, terms)| match terms.expires {
                Expiry::At(at) if at <= horizon => Some((
                    at,
                    ExpiringAgent {
                        agent: line(id, terms),
                        expired: at <= s.now,
                    },
                )),
                _ => None,
            })
            .collect();
        expiring.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.agent.agent.cmp(&b.1.agent.agent))
        });
        let (grants, unused_grants, grants_not_enumerated) =
            match standing_grants(self.bundle, s.max_evaluations) {
                Ok(grants) => {
                    let total = u64::try_from(grants.len()).unwrap_or(u64::MAX);
                    let unused = grants
                        .into_iter()
                        .filter(|g| {
                            !self.used.contains(&(
                                g.caller.clone(),
                                g.callee.clone(),
                                g.scope.clone(),
                            ))
                        })
                        .map(|g| UnusedGrant {
                            caller: g.caller,
                            callee: g.callee,
                            scope: g.scope,
                        })
                        .collect();
                    (Some(total), unused, None)
                }
                Err(e) => (None, Vec::new(), Some(e.to_string())),
            };
        StandingAccessReport {
            bundle_version: self.bundle.version().to_owned(),
            from: s.window.from.map(rfc3339),
            until: s.window.until.map(rfc3339),
            now: rfc3339(s.now),
            decisions: self.decisions,
            agents: u64::try_from(agents.len()).unwrap_or(u64::MAX),
            unseen_agents,
            grants,
            unused_grants,
            grants_not_enumerated,
            expiring_within_secs: s.expiring_within.as_secs(),
            expiring: expiring.into_iter().map(|(_, e)| e).collect(),
        }
    }
}

/// Reviews `bundle` over the decisions of `records` under `settings`.
pub fn review(
    bundle: &PolicyBundle,
    settings: ReviewSettings,
    records: impl IntoIterator<Item = AuditRecord>,
) -> StandingAccessReport {
    let mut review = Review::new(bundle, settings);
    for record in records {
        review.offer_record(&record);
    }
    review.finish()
}

fn line(id: &str, terms: &AgentTerms) -> AgentLine {
    let (owner, owner_missing) = match &terms.owner {
        Owner::Present(owner) => (Some(owner.clone()), false),
        Owner::NotInDirectory(owner) => (Some(owner.clone()), true),
        Owner::Absent | Owner::Malformed(_) => (None, false),
    };
    AgentLine {
        agent: id.to_owned(),
        owner,
        owner_missing,
        expires: match terms.expires {
            Expiry::At(at) => Some(rfc3339(at)),
            Expiry::Never | Expiry::Malformed => None,
        },
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests;
