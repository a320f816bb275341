//! The review over a trail built to leave grants unused.

use std::time::{Duration, SystemTime};

use super::*;
use crate::bundle::SourceFile;

const SCHEMA: &str = r#"
entity Group; entity User in [Group]; entity Service;
entity Agent in [Group] { owner?: Group, expires?: datetime };
entity Tool;
type Identity = { kind: String, id: String };
type BatonContext = {
  on_behalf_of: Identity, caller: Identity, delegated: Bool, depth: Long,
  chain: Set<String>, agents: Set<Agent>, task: {},
};
action invoke, read, write appliesTo {
  principal: [User, Service, Agent], resource: [Agent, Tool], context: BatonContext,
};
"#;

const ENTITIES: &str = r#"[
  { "uid": { "type": "Group", "id": "ops" }, "attrs": {}, "parents": [] },
  { "uid": { "type": "Agent", "id": "a" }, "parents": [],
    "attrs": { "owner": { "type": "Group", "id": "ops" } } },
  { "uid": { "type": "Agent", "id": "b" }, "parents": [],
    "attrs": { "owner": { "type": "Group", "id": "ops" },
               "expires": { "__extn": { "fn": "datetime", "arg": "2030-01-10T00:00:00Z" } } } },
  { "uid": { "type": "Agent", "id": "idle" }, "parents": [],
    "attrs": { "owner": { "type": "Group", "id": "gone" },
               "expires": { "__extn": { "fn": "datetime", "arg": "2029-12-01T00:00:00Z" } } } },
  { "uid": { "type": "Tool", "id": "t" }, "attrs": {}, "parents": [] }
]"#;

// `a` may read and write at `b` (when delegated: a condition the review takes as met), and
// read the tool; `b` may read the tool. A forbid without conditions takes `write` at the tool
// from everyone; one with conditions takes nothing from the review.
const POLICIES: &str = r#"
permit (principal == Agent::"a", action in [Action::"invoke", Action::"read", Action::"write"], resource == Agent::"b")
  when { context.delegated };
permit (principal == Agent::"a", action, resource == Tool::"t");
permit (principal == Agent::"b", action in [Action::"invoke", Action::"read"], resource == Tool::"t");
forbid (principal, action == Action::"write", resource == Tool::"t");
forbid (principal, action == Action::"read", resource == Agent::"b") when { context.depth > 5 };
"#;

fn bundle() -> PolicyBundle {
    let file = |name: &str, text: &str| SourceFile {
        name: name.into(),
        text: text.into(),
    };
    PolicyBundle::compile(vec![
        file("s.cedarschema", SCHEMA),
        file("entities.json", ENTITIES),
        file("p.cedar", POLICIES),
    ])
    .unwrap_or_else(|e| panic!("{e}"))
}

fn at(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

fn agent(id: &str) -> Identity {
    Identity::new(IdentityKind::Agent, id)
}

fn settings() -> ReviewSettings {
    ReviewSettings {
        window: Window::new(
            Some(at("2030-01-01T00:00:00Z")),
            Some(at("2030-01-02T00:00:00Z")),
        )
        .unwrap(),
        now: at("2030-01-02T00:00:00Z"),
        expiring_within: Duration::from_secs(30 * 24 * 3600),
        max_evaluations: DEFAULT_MAX_EVALUATIONS,
    }
}

fn used(time: &str, caller: &str, callee: Identity, granted: &[&str]) -> Sighting {
    Sighting {
        time: at(time),
        chain: vec![
            Identity::new(IdentityKind::User, "u"),
            agent(caller),
            callee.clone(),
        ],
        caller: agent(caller),
        callee,
        granted: granted.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[test]
fn the_grants_are_what_the_policies_allow_whatever_the_task() {
    let grants: Vec<(String, String, String)> = standing_grants(&bundle(), DEFAULT_MAX_EVALUATIONS)
        .unwrap()
        .into_iter()
        .map(|g| {
            (
                g.caller.id,
                format!("{} {}", g.callee.kind, g.callee.id),
                g.scope,
            )
        })
        .collect();
    let expected = [
        ("a", "Agent b", "read"),
        ("a", "Agent b", "write"),
        ("a", "Tool t", "read"),
        ("b", "Tool t", "read"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(grants, expected);
}

#[test]
fn a_trail_that_leaves_grants_unused_is_reported() {
    let bundle = bundle();
    let mut review = Review::new(&bundle, settings());
    // `a` reads at `b`, inside the window; `b` reads the tool, but only before it.
    review.offer(used("2030-01-01T10:00:00Z", "a", agent("b"), &["read"]));
    review.offer(used(
        "2029-12-31T10:00:00Z",
        "b",
        Identity::new(
            IdentityKind::Resource(crate::identity::ResourceType::parse("Tool").unwrap()),
            "t",
        ),
        &["read"],
    ));
    // A deny grants nothing, but its agents are seen.
    review.offer(used("2030-01-01T11:00:00Z", "a", agent("b"), &[]));
    let report = review.finish();

    assert_eq!(report.decisions, 2);
    assert_eq!(report.agents, 3);
    assert_eq!(report.grants, Some(4));
    let unseen: Vec<&str> = report
        .unseen_agents
        .iter()
        .map(|a| a.agent.as_str())
        .collect();
    assert_eq!(unseen, ["idle"]);
    assert_eq!(
        report.unseen_agents[0].owner.as_deref(),
        Some("Group::\"gone\"")
    );
    assert!(report.unseen_agents[0].owner_missing);
    let unused: Vec<String> = report
        .unused_grants
        .iter()
        .map(|g| format!("{} -> {} {}", g.caller, g.callee, g.scope))
        .collect();
    assert_eq!(
        unused,
        [
            "Agent a -> Agent b write",
            "Agent a -> Tool t read",
            "Agent b -> Tool t read",
        ]
    );
    let expiring: Vec<(&str, bool)> = report
        .expiring
        .iter()
        .map(|e| (e.agent.agent.as_str(), e.expired))
        .collect();
    assert_eq!(expiring, [("idle", true), ("b", false)]);

    let text = report.render();
    assert!(
        text.contains("agents never seen in the window (1):"),
        "{text}"
    );
    assert!(text.contains("Agent a -> Tool t  read"), "{text}");
    assert!(
        text.contains("Agent idle  owner Group::\"gone\" (not in the directory)"),
        "{text}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["unused_grants"][0]["caller"],
        serde_json::json!({"kind": "Agent", "id": "a"})
    );
}

#[test]
fn a_bundle_too_large_to_enumerate_still_gets_the_rest_of_its_report() {
    let bundle = bundle();
    let report = Review::new(
        &bundle,
        ReviewSettings {
            max_evaluations: 10,
            ..settings()
        },
    )
    .finish();
    assert_eq!(report.grants, None);
    assert!(report.unused_grants.is_empty());
    let why = report.grants_not_enumerated.unwrap();
    assert!(why.contains("3 agents × 4 callees × (2 scopes + the connection) is up to 36 Cedar evaluations, over the cap of 10"), "{why}");
    assert_eq!(report.unseen_agents.len(), 3);
}
