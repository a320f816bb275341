//! The agent lifecycle rule (`--agent-lifecycle`) against the real server: an expired agent,
//! an ownerless one and one whose owner left the directory, in every position of a chain,
//! under `off`, `warn` and `enforce`; and a cached ALLOW that never hides an expiry.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton::audit::{AuditEvent, AuditMode, AuditRecord, AuditSettings};
use baton::clock::{Clock as _, ManualClock};
use baton::decision::LifecycleMode;
use baton::pb::{self, Decision, DenialCode};
use serde_json::Value;

use crate::helpers::{TestApp, entity, hop, spawn_in, test_config};
use crate::spawn::server_dir;

/// The shipped context types, and agents with an owner and an expiry.
const SCHEMA: &str = r#"
entity Group;
entity User in [Group];
entity Service in [Group];
entity Agent in [Group] { owner?: User, expires?: datetime };
type Identity = { kind: String, id: String };
type Task = {};
type BatonContext = {
  on_behalf_of: Identity, caller: Identity, delegated: Bool, depth: Long,
  chain: Set<String>, agents: Set<Agent>, task: Task,
};
action invoke, read appliesTo {
  principal: [User, Service, Agent], resource: [Agent], context: BatonContext,
};
"#;

/// Every agent may call every agent and read there; only the lifecycle rule tells them apart.
const POLICIES: &str = "permit (principal, action, resource);";

/// When the `temporary` agent expires, from the clock's start: before the default TTL would
/// end its grant.
const TEMPORARY_FOR: Duration = Duration::from_secs(120);

fn entities(temporary_until: SystemTime) -> String {
    let owned = |id: &str, extra: &str| {
        format!(
            r#"{{ "uid": {{ "type": "Agent", "id": "{id}" }}, "parents": [],
                 "attrs": {{ "owner": {{ "type": "User", "id": "alice" }} {extra} }} }}"#
        )
    };
    let expires =
        |at: &str| format!(r#", "expires": {{ "__extn": {{ "fn": "datetime", "arg": "{at}" }} }}"#);
    let temporary = humantime::format_rfc3339_seconds(temporary_until).to_string();
    format!(
        "[{}]",
        [
            r#"{ "uid": { "type": "User", "id": "alice" }, "attrs": {}, "parents": [] }"#
                .to_owned(),
            owned("front", ""),
            owned("back", ""),
            owned("expired", &expires("2020-01-01T00:00:00Z")),
            owned("temporary", &expires(&temporary)),
            r#"{ "uid": { "type": "Agent", "id": "ownerless" }, "attrs": {}, "parents": [] }"#
                .to_owned(),
            r#"{ "uid": { "type": "Agent", "id": "abandoned" }, "parents": [],
                 "attrs": { "owner": { "type": "User", "id": "gone" } } }"#
                .to_owned(),
        ]
        .join(",\n")
    )
}

fn write_bundle(dir: &Path, temporary_until: SystemTime) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("lifecycle.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.join("policies.cedar"), POLICIES).unwrap();
    std::fs::write(dir.join("entities.json"), entities(temporary_until)).unwrap();
}

struct Lifecycle {
    app: TestApp,
    clock: Arc<ManualClock>,
    audit_file: std::path::PathBuf,
}

async fn spawn(mode: LifecycleMode) -> Lifecycle {
    let dir = server_dir();
    let clock = Arc::new(ManualClock::starting_now());
    let bundle = dir.path().join("bundle");
    write_bundle(&bundle, clock.now() + TEMPORARY_FOR);
    let mut config = test_config(dir.path());
    config.bundle_dir = bundle;
    config.agent_lifecycle = mode;
    config.clock = clock.clone();
    let audit_file = dir.path().join("audit.jsonl");
    config.audit = AuditSettings {
        mode: AuditMode::File,
        file: audit_file.clone(),
        spool: dir.path().join("spool.jsonl"),
        ..AuditSettings::default()
    };
    Lifecycle {
        app: spawn_in(config, dir).await,
        clock,
        audit_file,
    }
}

/// The chain positions an agent can hold: the callee, the caller, an earlier hop, and the
/// principal acting for itself.
fn in_every_position(agent: &str) -> Vec<(&'static str, pb::AuthorizeRequest)> {
    let agent = format!("Agent:{agent}");
    let mut through = hop("Agent:front", "Agent:back", "User:alice", &["read"]);
    through.delegation_chain = vec![entity(&agent)];
    vec![
        (
            "callee",
            hop("Agent:front", &agent, "User:alice", &["read"]),
        ),
        ("caller", hop(&agent, "Agent:back", "User:alice", &["read"])),
        ("earlier hop", through),
        ("principal", hop(&agent, "Agent:back", &agent, &["read"])),
    ]
}

const ORPHANS: [(&str, &str, &str); 3] = [
    (
        "expired",
        "expired",
        "agent `Agent::\"expired\"` expired at 2020-01-01T00:00:00Z",
    ),
    (
        "ownerless",
        "no_owner",
        "agent `Agent::\"ownerless\"` has no owner",
    ),
    (
        "abandoned",
        "owner_not_in_directory",
        "agent `Agent::\"abandoned\"`'s owner `User::\"gone\"` is not in the directory",
    ),
];

fn verdict_claims(verdict: &str) -> Value {
    let payload = verdict.split('.').nth(1).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn off_looks_at_nothing() {
    let mut s = spawn(LifecycleMode::Off).await;
    for (agent, _, _) in ORPHANS {
        for (position, ask) in in_every_position(agent) {
            let answer = s.app.client.authorize(ask).await.unwrap().into_inner();
            assert_eq!(answer.decision(), Decision::Allow, "{agent} as {position}");
            assert!(
                answer.lifecycle_warnings.is_empty(),
                "{agent} as {position}"
            );
            assert!(
                verdict_claims(&answer.verdict)
                    .get("lifecycle_warnings")
                    .is_none()
            );
        }
    }
}

#[tokio::test]
async fn enforce_denies_an_orphaned_agent_anywhere_in_the_chain() {
    let mut s = spawn(LifecycleMode::Enforce).await;
    for (agent, _, detail) in ORPHANS {
        for (position, ask) in in_every_position(agent) {
            let answer = s.app.client.authorize(ask).await.unwrap().into_inner();
            assert_eq!(answer.decision(), Decision::Deny, "{agent} as {position}");
            let denial = answer.denial.unwrap();
            assert_eq!(denial.code(), DenialCode::AgentOrphaned);
            assert_eq!(denial.detail, detail, "{agent} as {position}");
            assert!(answer.verdict.is_empty());
        }
    }
    // A chain of owned, unexpired agents goes through.
    let fine = hop("Agent:front", "Agent:back", "User:alice", &["read"]);
    let answer = s.app.client.authorize(fine).await.unwrap().into_inner();
    assert_eq!(answer.decision(), Decision::Allow);

    s.app.pipeline.audit().flush().await;
    let sources: Vec<String> = std::fs::read_to_string(&s.audit_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap())
        .filter_map(|r| match r.event {
            AuditEvent::Decision(d) => Some(d.source),
            _ => None,
        })
        .collect();
    assert_eq!(sources.iter().filter(|s| *s == "lifecycle").count(), 12);
}

#[tokio::test]
async fn warn_allows_and_says_so_in_the_answer_the_verdict_and_the_audit_record() {
    let mut s = spawn(LifecycleMode::Warn).await;
    for (agent, reason, detail) in ORPHANS {
        for (position, ask) in in_every_position(agent) {
            let answer = s.app.client.authorize(ask).await.unwrap().into_inner();
            assert_eq!(answer.decision(), Decision::Allow, "{agent} as {position}");
            let warnings: Vec<(&str, &str, &str)> = answer
                .lifecycle_warnings
                .iter()
                .map(|w| (w.agent.as_str(), w.reason.as_str(), w.detail.as_str()))
                .collect();
            assert_eq!(warnings, [(agent, reason, detail)], "{agent} as {position}");
            let claims = verdict_claims(&answer.verdict);
            assert_eq!(
                claims["lifecycle_warnings"],
                serde_json::json!([{ "agent": agent, "reason": reason, "detail": detail }])
            );
        }
    }
    s.app.pipeline.audit().flush().await;
    let warned: Vec<Value> = std::fs::read_to_string(&s.audit_file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|r| r.get("lifecycle_warnings").cloned())
        .collect();
    assert_eq!(warned.len(), 12, "every answer's record names its orphan");
    assert_eq!(warned[0][0]["reason"], "expired");
}

#[tokio::test]
async fn a_cached_allow_never_hides_an_expiry() {
    let mut s = spawn(LifecycleMode::Enforce).await;
    let start = s.clock.now();
    let ask = hop("Agent:front", "Agent:temporary", "User:alice", &["read"]);
    let first = s
        .app
        .client
        .authorize(ask.clone())
        .await
        .unwrap()
        .into_inner();
    let second = s
        .app
        .client
        .authorize(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.decision(), Decision::Allow);
    assert_eq!(second.decision(), Decision::Allow);
    assert_eq!(
        s.app.pipeline.cache().stats().hits,
        1,
        "the second is cached"
    );
    // The grant ends when the agent does, not when the policy TTL would.
    let ends = |a: &pb::AuthorizeResponse| a.expires_at.unwrap().seconds;
    let expiry = i64::try_from(
        (start + TEMPORARY_FOR)
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(ends(&first) <= expiry, "{} > {expiry}", ends(&first));

    s.clock.advance(TEMPORARY_FOR);
    let after = s.app.client.authorize(ask).await.unwrap().into_inner();
    assert_eq!(after.decision(), Decision::Deny);
    assert_eq!(after.denial.unwrap().code(), DenialCode::AgentOrphaned);
}
