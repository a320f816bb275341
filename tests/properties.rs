//! Property tests of the invariants that matter most: the index never changes a decision, and
//! a hop never gets more than it asked for or than the hop before it was granted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // each user takes only part of it
#[path = "support/synthetic.rs"]
mod synthetic;

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use baton::bundle::{ContextInput, PolicyBundle, SourceFile};
use baton::decision::{DecisionRequest, DecisionSettings, Effect, decide};
use baton::identity::{Identity, IdentityKind};
use cedar_policy::EntityUid;
use proptest::prelude::*;
use serde_json::{Map, json};

// ---- index ≡ full evaluation, on generated bundles and requests ----

const AGENTS: usize = 6;
const USERS: usize = 3;
const GROUPS: usize = 4;

fn entity_scope(var: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(var.to_owned()),
        (0..AGENTS).prop_map(move |i| format!("{var} == Agent::\"a{i}\"")),
        (0..USERS).prop_map(move |i| format!("{var} == User::\"u{i}\"")),
        (0..GROUPS).prop_map(move |i| format!("{var} in Group::\"g{i}\"")),
        (0..AGENTS).prop_map(move |i| format!("{var} in Agent::\"a{i}\"")),
        Just(format!("{var} is Agent")),
        Just(format!("{var} is User")),
        (0..GROUPS).prop_map(move |i| format!("{var} is Agent in Group::\"g{i}\"")),
    ]
}

fn action_scope() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("action".to_owned()),
        prop::sample::select(vec!["invoke", "read", "write", "admin"])
            .prop_map(|a| format!("action == Action::\"{a}\"")),
        Just("action in Action::\"all\"".to_owned()),
        Just("action in [Action::\"read\", Action::\"admin\"]".to_owned()),
        Just("action in [Action::\"invoke\", Action::\"all\"]".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0i64..4).prop_map(|d| format!(" when {{ context.depth > {d} }}")),
        (0i64..1000).prop_map(|a| format!(
            " when {{ context.task has amount && context.task.amount > {a} }}"
        )),
        Just(" unless { context.delegated }".to_owned()),
        (0..AGENTS).prop_map(|i| format!(" when {{ context.agents.contains(Agent::\"a{i}\") }}")),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.75),
        entity_scope("principal"),
        action_scope(),
        entity_scope("resource"),
        condition(),
    )
        .prop_map(|(permit, p, a, r, c)| {
            let effect = if permit { "permit" } else { "forbid" };
            format!("{effect}({p}, {a}, {r}){c};")
        })
}

/// Parent edges only point to lower-numbered groups, so the hierarchy is acyclic.
fn entities() -> impl Strategy<Value = String> {
    let members = prop::collection::vec(prop::collection::vec(0..GROUPS, 0..3), AGENTS + USERS);
    let groups = prop::collection::vec(prop::option::of(0..GROUPS), GROUPS);
    (members, groups).prop_map(|(members, groups)| {
        let parents = |gs: &[usize]| {
            gs.iter()
                .map(|g| format!(r#"{{"type":"Group","id":"g{g}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = Vec::new();
        for (g, parent) in groups.iter().enumerate() {
            let p: Vec<usize> = parent.iter().copied().filter(|&p| p < g).collect();
            out.push(format!(
                r#"{{"uid":{{"type":"Group","id":"g{g}"}},"attrs":{{}},"parents":[{}]}}"#,
                parents(&p)
            ));
        }
        for (i, gs) in members.iter().enumerate() {
            let (kind, id) = if i < AGENTS {
                ("Agent", format!("a{i}"))
            } else {
                ("User", format!("u{}", i - AGENTS))
            };
            out.push(format!(
                r#"{{"uid":{{"type":"{kind}","id":"{id}"}},"attrs":{{}},"parents":[{}]}}"#,
                parents(gs)
            ));
        }
        format!("[{}]", out.join(","))
    })
}

#[derive(Debug, Clone)]
struct Probe {
    principal: Identity,
    resource: usize,
    actions: Vec<&'static str>,
    amount: i64,
    via: Vec<usize>,
}

fn probe() -> impl Strategy<Value = Probe> {
    let principal = prop_oneof![
        (0..AGENTS + 1).prop_map(|i| Identity::new(IdentityKind::Agent, format!("a{i}"))), // a6 is unknown
        (0..USERS).prop_map(|i| Identity::new(IdentityKind::User, format!("u{i}"))),
    ];
    (
        principal,
        0..AGENTS,
        prop::sample::subsequence(vec!["invoke", "read", "write", "admin"], 1..=4),
        0i64..2000,
        prop::collection::vec(0..AGENTS, 0..3),
    )
        .prop_map(|(principal, resource, actions, amount, via)| Probe {
            principal,
            resource,
            actions,
            amount,
            via,
        })
}

fn uid(s: &str) -> EntityUid {
    EntityUid::from_str(s).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn indexed_evaluation_matches_the_full_policy_set(
        policies in prop::collection::vec(policy(), 1..40),
        entities in entities(),
        probes in prop::collection::vec(probe(), 1..12),
    ) {
        let files = vec![
            SourceFile { name: "s.cedarschema".into(), text: synthetic::SCHEMA.into() },
            SourceFile { name: "p.cedar".into(), text: policies.join("\n") },
            SourceFile { name: "entities.json".into(), text: entities },
        ];
        let bundle = PolicyBundle::compile(files).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        for probe in probes {
            let resource = Identity::new(IdentityKind::Agent, format!("a{}", probe.resource));
            let mut chain = vec![probe.principal.clone()];
            chain.extend(probe.via.iter().map(|i| Identity::new(IdentityKind::Agent, format!("a{i}"))));
            chain.push(resource.clone());
            let task: Map<String, serde_json::Value> = json!({ "amount": probe.amount }).as_object().cloned().unwrap();
            let context = bundle
                .contract()
                .context(&ContextInput {
                    on_behalf_of: &probe.principal,
                    caller: &chain[chain.len() - 2],
                    delegated: chain.len() > 2,
                    depth: chain.len() - 1,
                    chain: &chain,
                    task: &task,
                })
                .unwrap();
            let actions: Vec<EntityUid> = probe.actions.iter().map(|a| uid(&format!("Action::\"{a}\""))).collect();
            let action_refs: Vec<&EntityUid> = actions.iter().collect();
            let p = bundle.contract().uid(&probe.principal).unwrap();
            let r = bundle.contract().uid(&resource).unwrap();
            let indexed = bundle.evaluate(&p, &action_refs, &r, &context);
            let full = bundle.evaluate_unindexed(&p, &action_refs, &r, &context);
            prop_assert_eq!(indexed, full, "probe {:?}", probe);
        }
    }
}

// ---- decisions never widen ----

fn shipped() -> &'static PolicyBundle {
    static BUNDLE: std::sync::OnceLock<PolicyBundle> = std::sync::OnceLock::new();
    BUNDLE.get_or_init(|| {
        PolicyBundle::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap()
    })
}

const SCOPES: [&str; 12] = [
    "reports.generate",
    "finance.read",
    "finance.write",
    "logs.read",
    "metrics.read",
    "diagnostics.run",
    "refunds.issue",
    "transactions.read",
    "symptoms.read",
    "appointments.book",
    "invoke",
    "no.such.scope",
];

/// First hops of the shipped scenarios: principal, caller, callee, and a scope they can get.
const FIRST_HOPS: [(&str, &str, &str, &str); 4] = [
    ("alice", "user-assistant", "data-analyst", "finance.read"),
    ("monitoring", "monitoring", "diagnostics", "logs.read"),
    ("jane", "jane", "intake", "symptoms.read"),
    (
        "bob",
        "support-assistant",
        "refund-agent",
        "transactions.read",
    ),
];

fn any_identity(kinds: &'static [IdentityKind]) -> impl Strategy<Value = Identity> {
    let ids = vec![
        "alice",
        "dave",
        "carol",
        "bob",
        "jane",
        "monitoring",
        "user-assistant",
        "data-analyst",
        "database-agent",
        "diagnostics",
        "log-analysis",
        "support-assistant",
        "refund-agent",
        "intake",
        "triage",
        "scheduling",
        "reconciler",
        "ledger",
        "ghost",
    ];
    (
        prop::sample::select(kinds.to_vec()),
        prop::sample::select(ids),
    )
        .prop_map(|(k, id)| Identity::new(k, id))
}

fn any_request() -> impl Strategy<Value = DecisionRequest> {
    use IdentityKind::{Agent, Service, User};
    (
        any_identity(&[Agent, Service]),
        any_identity(&[Agent]),
        any_identity(&[User, Service, Agent]),
        prop::collection::vec(prop::sample::select(SCOPES.to_vec()), 1..6),
        prop::option::of(prop::collection::hash_set(
            prop::sample::select(SCOPES.to_vec()),
            0..6,
        )),
        prop::collection::vec(any_identity(&[Agent, Service]), 0..3),
        prop::option::of(0i64..20_000),
    )
        .prop_map(
            |(caller, callee, principal, scopes, ceiling, via, amount)| {
                let mut unique = Vec::new();
                for s in scopes {
                    if !unique.contains(&s) {
                        unique.push(s);
                    }
                }
                let mut context = Map::new();
                if let Some(a) = amount {
                    context.insert("amount".into(), json!(a));
                }
                DecisionRequest {
                    scopes: unique.into_iter().map(str::to_owned).collect(),
                    context,
                    delegation_chain: via,
                    ceiling: ceiling.map(|c| c.into_iter().map(str::to_owned).collect()),
                    ..DecisionRequest::new(caller, callee, principal)
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn granted_scopes_lie_within_the_request_and_the_ceiling(request in any_request()) {
        let outcome = decide(shipped(), &request, &DecisionSettings::default()).unwrap();
        let requested: HashSet<&String> = request.scopes.iter().collect();
        for scope in &outcome.granted {
            prop_assert!(requested.contains(scope), "granted `{}` that was not requested", scope);
            if let Some(ceiling) = &request.ceiling {
                prop_assert!(ceiling.contains(scope), "granted `{}` above the ceiling", scope);
            }
        }
        // Every requested scope is either granted or refused, exactly once.
        let mut accounted: Vec<&String> = outcome.granted.iter().chain(outcome.refused.iter().map(|r| &r.scope)).collect();
        accounted.sort();
        let mut asked: Vec<&String> = request.scopes.iter().collect();
        asked.sort();
        prop_assert_eq!(accounted, asked);
        prop_assert_eq!(outcome.effect == Effect::Allow, !outcome.granted.is_empty());
        if outcome.effect == Effect::Deny {
            prop_assert_eq!(outcome.ttl_secs, 0);
            prop_assert!(outcome.obligations.is_empty());
        } else {
            prop_assert!(outcome.ttl_secs > 0 && outcome.ttl_secs <= DecisionSettings::default().max_ttl_secs);
        }
    }

    #[test]
    fn each_hop_gets_at_most_the_previous_grant(
        start in prop::sample::select(FIRST_HOPS.to_vec()),
        extra in prop::collection::vec(prop::sample::select(SCOPES.to_vec()), 0..4),
        next_callee in any_identity(&[IdentityKind::Agent]),
        next_scopes in prop::collection::vec(prop::sample::select(SCOPES.to_vec()), 1..6),
    ) {
        use IdentityKind::{Agent, Service, User};
        let settings = DecisionSettings::default();
        let (principal, caller, callee, grantable) = start;
        let kind = |id: &str| match id {
            "alice" | "jane" | "bob" => User,
            "monitoring" => Service,
            _ => Agent,
        };
        let mut scopes = vec![grantable.to_owned()];
        scopes.extend(extra.into_iter().map(str::to_owned).filter(|s| s != grantable));
        scopes.dedup();
        let first = DecisionRequest {
            scopes,
            ..DecisionRequest::new(
                Identity::new(kind(caller), caller),
                Identity::new(Agent, callee),
                Identity::new(kind(principal), principal),
            )
        };
        let hop1 = decide(shipped(), &first, &settings).unwrap();
        prop_assert_eq!(hop1.effect, Effect::Allow, "seed hop must be allowed: {:?}", hop1);
        // The callee of hop 1 calls on, bounded by what hop 1 granted.
        let via = if first.caller == first.principal { Vec::new() } else { vec![first.caller.clone()] };
        let mut scopes: Vec<String> = next_scopes.into_iter().map(str::to_owned).collect();
        scopes.sort();
        scopes.dedup();
        let second = DecisionRequest {
            scopes,
            delegation_chain: via,
            ceiling: Some(hop1.granted.iter().cloned().collect()),
            ..DecisionRequest::new(first.callee.clone(), next_callee, first.principal.clone())
        };
        let hop2 = decide(shipped(), &second, &settings).unwrap();
        for scope in &hop2.granted {
            prop_assert!(hop1.granted.contains(scope), "hop 2 widened to `{}`", scope);
        }
    }
}
