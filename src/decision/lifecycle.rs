//! The agent lifecycle rule: an agent past its `expires`, without an `owner`, or whose owner
//! is no longer in the directory is orphaned. Under [`LifecycleMode::Enforce`] a chain with an
//! orphaned agent anywhere in it (principal, earlier hops, caller, callee) is denied with
//! [`DenialCode::AgentOrphaned`]; under [`LifecycleMode::Warn`] it is decided as usual and the
//! answer carries a [`LifecycleWarning`] per orphaned agent.
//!
//! The rule depends on the time, so it is not part of the cached [`Outcome`]: the pipeline
//! applies it to every question, after revocation and before any cache, against terms the
//! bundle read once at load ([`crate::bundle::Lifecycles`]).

use std::time::SystemTime;

use super::outcome::{
    Denial, DenialCode, Effect, LifecycleWarning, OrphanReason, Outcome, RefusalReason,
    RefusedScope,
};
use super::request::DecisionRequest;
use crate::bundle::{Expiry, Owner, PolicyBundle};
use crate::identity::{Identity, IdentityKind};

/// The `source` of an answer the lifecycle rule denied before any cache or evaluation.
pub const LIFECYCLE_SOURCE: &str = "lifecycle";

/// How the agent lifecycle rule is applied (`--agent-lifecycle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LifecycleMode {
    /// Not applied: no cost on the decision path.
    #[default]
    Off,
    /// Orphaned agents are allowed as the policies say; answers and audit records say which.
    Warn,
    /// A chain with an orphaned agent is denied, `AGENT_ORPHANED`.
    Enforce,
}

/// What the lifecycle rule found in one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleCheck {
    /// Each orphaned agent once, in chain order.
    pub orphans: Vec<LifecycleWarning>,
    /// The earliest expiry among the chain's agents still in force: no grant outlives it.
    pub earliest_expiry: Option<SystemTime>,
}

/// Checks every agent of `request`'s chain against the terms `bundle` read at load, at `now`.
pub fn check_chain(
    bundle: &PolicyBundle,
    request: &DecisionRequest,
    now: SystemTime,
) -> LifecycleCheck {
    let members = std::iter::once(&request.principal)
        .chain(&request.delegation_chain)
        .chain([&request.caller, &request.callee]);
    let lifecycles = bundle.lifecycles();
    let mut checked = LifecycleCheck::default();
    let mut seen: Vec<&str> = Vec::new();
    for member in members.filter(|m| m.kind == IdentityKind::Agent) {
        if seen.contains(&member.id.as_str()) {
            continue;
        }
        seen.push(&member.id);
        let terms = lifecycles.terms(&member.id);
        let agent = agent_name(member);
        let found = match (&terms.expires, &terms.owner) {
            (Expiry::At(at), _) if *at <= now => Some((
                OrphanReason::Expired,
                format!(
                    "agent {agent} expired at {}",
                    humantime::format_rfc3339(*at)
                ),
            )),
            (Expiry::Malformed, _) => Some((
                OrphanReason::Expired,
                format!("agent {agent} has an `expires` that is not a datetime"),
            )),
            (_, Owner::Absent) => {
                Some((OrphanReason::NoOwner, format!("agent {agent} has no owner")))
            }
            (_, Owner::Malformed(what)) => Some((
                OrphanReason::NoOwner,
                format!(
                    "agent {agent} has no owner: its `owner` is {what}, not a `User` or `Group`"
                ),
            )),
            (_, Owner::NotInDirectory(owner)) => Some((
                OrphanReason::OwnerNotInDirectory,
                format!("agent {agent}'s owner `{owner}` is not in the directory"),
            )),
            (_, Owner::Present(_)) => None,
        };
        if let Expiry::At(at) = terms.expires
            && at > now
        {
            checked.earliest_expiry = Some(checked.earliest_expiry.map_or(at, |e| e.min(at)));
        }
        if let Some((reason, detail)) = found {
            checked.orphans.push(LifecycleWarning {
                agent: member.id.clone(),
                reason,
                detail,
            });
        }
    }
    checked
}

/// `Agent::"id"`, in backticks.
fn agent_name(agent: &Identity) -> String {
    format!("`Agent::{:?}`", agent.id)
}

/// The deny of a hop whose chain holds `orphan`: every requested scope refused with the hop.
pub fn orphaned_outcome(
    request: &DecisionRequest,
    chain: Vec<Identity>,
    orphan: &LifecycleWarning,
    bundle_version: &str,
) -> Outcome {
    Outcome {
        effect: Effect::Deny,
        granted: Vec::new(),
        refused: request
            .scopes
            .iter()
            .map(|scope| RefusedScope {
                scope: scope.clone(),
                reason: RefusalReason::HopDenied,
                policy_ids: Vec::new(),
                detail: orphan.detail.clone(),
            })
            .collect(),
        ttl_secs: 0,
        chain,
        obligations: Vec::new(),
        determining_policies: Vec::new(),
        bundle_version: bundle_version.to_owned(),
        denial: Some(Denial {
            code: DenialCode::AgentOrphaned,
            detail: orphan.detail.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bundle::SourceFile;

    const SCHEMA: &str = r#"
        entity Group; entity User in [Group]; entity Service;
        entity Agent { owner?: User, expires?: datetime };
        type Identity = { kind: String, id: String };
        type BatonContext = {
          on_behalf_of: Identity, caller: Identity, delegated: Bool, depth: Long,
          chain: Set<String>, agents: Set<Agent>, task: {},
        };
        action invoke appliesTo {
          principal: [User, Service, Agent], resource: Agent, context: BatonContext,
        };
    "#;

    fn bundle() -> PolicyBundle {
        let entities = r#"[
            { "uid": { "type": "User", "id": "alice" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "Agent", "id": "kept" }, "parents": [],
              "attrs": { "owner": { "type": "User", "id": "alice" },
                         "expires": { "__extn": { "fn": "datetime", "arg": "2030-01-01T00:00:00Z" } } } },
            { "uid": { "type": "Agent", "id": "ownerless" }, "attrs": {}, "parents": [] },
            { "uid": { "type": "Agent", "id": "abandoned" }, "parents": [],
              "attrs": { "owner": { "type": "User", "id": "bob" } } }
        ]"#;
        PolicyBundle::compile(vec![
            SourceFile {
                name: "s.cedarschema".into(),
                text: SCHEMA.into(),
            },
            SourceFile {
                name: "entities.json".into(),
                text: entities.into(),
            },
            SourceFile {
                name: "p.cedar".into(),
                text: "permit(principal, action, resource);".into(),
            },
        ])
        .unwrap()
    }

    fn agent(id: &str) -> Identity {
        Identity::new(IdentityKind::Agent, id)
    }

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn each_reason_is_found_wherever_the_agent_sits() {
        let bundle = bundle();
        let alice = Identity::new(IdentityKind::User, "alice");
        let now = at("2029-06-01T00:00:00Z");
        let mut request = DecisionRequest::new(agent("kept"), agent("kept"), alice.clone());
        assert_eq!(check_chain(&bundle, &request, now).orphans, []);
        assert_eq!(
            check_chain(&bundle, &request, now).earliest_expiry,
            Some(at("2030-01-01T00:00:00Z"))
        );

        request.delegation_chain = vec![agent("ownerless")];
        let found = check_chain(&bundle, &request, now).orphans;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reason, OrphanReason::NoOwner);
        assert_eq!(found[0].detail, "agent `Agent::\"ownerless\"` has no owner");

        request.delegation_chain.clear();
        request.callee = agent("abandoned");
        let found = check_chain(&bundle, &request, now).orphans;
        assert_eq!(found[0].reason, OrphanReason::OwnerNotInDirectory);
        assert_eq!(
            found[0].detail,
            "agent `Agent::\"abandoned\"`'s owner `User::\"bob\"` is not in the directory"
        );

        let request = DecisionRequest::new(agent("kept"), agent("unknown"), alice);
        let later = at("2030-01-01T00:00:00Z") + Duration::from_secs(1);
        let found = check_chain(&bundle, &request, later).orphans;
        let reasons: Vec<_> = found.iter().map(|o| o.reason).collect();
        assert_eq!(reasons, [OrphanReason::Expired, OrphanReason::NoOwner]);
        assert_eq!(
            found[0].detail,
            "agent `Agent::\"kept\"` expired at 2030-01-01T00:00:00Z"
        );
    }

    #[test]
    fn an_owner_of_the_wrong_kind_warns_at_load_and_counts_as_none() {
        let schema = SCHEMA.replace("owner?: User", "owner?: String");
        let bundle = PolicyBundle::compile(vec![
            SourceFile {
                name: "s.cedarschema".into(),
                text: schema,
            },
            SourceFile {
                name: "entities.json".into(),
                text: r#"[{ "uid": { "type": "Agent", "id": "a" }, "attrs": { "owner": "finance" }, "parents": [] }]"#.into(),
            },
        ])
        .unwrap();
        let warnings: Vec<String> = bundle
            .warnings()
            .iter()
            .map(|w| w.message.clone())
            .collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("must be a `User` or `Group` entity")),
            "{warnings:?}"
        );
        let request = DecisionRequest::new(
            agent("a"),
            agent("a"),
            Identity::new(IdentityKind::User, "u"),
        );
        let found = check_chain(&bundle, &request, SystemTime::UNIX_EPOCH).orphans;
        assert_eq!(found[0].reason, OrphanReason::NoOwner);
        assert!(found[0].detail.contains("the string `finance`"));
    }
}
