//! Walks through the shipped scenarios: along any chain of verified hops, what a hop is granted
//! never grows, neither its scopes nor its lifetime. Each walk starts at a first hop of the
//! shipped scenarios, then hands the verdict of every ALLOW to the next hop as its
//! `subject_token`. (`delegation_properties` walks a permissive bundle through every door.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton::app::{Application, Config};
use baton::delegation::trust::Gateways;
use baton::pb::decision_service_server::DecisionService;
use baton::pb::{self, Decision};
use baton::token::VerdictClaims;
use baton::transport::DecisionApi;
use proptest::prelude::*;

/// The longest chain any walk reached, to see that the walks go deep.
static DEEPEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

const GATEWAY_TOKEN: &str = "property-gateway-token-0123456789";

/// The application serving the shipped bundle, built once, and the runtime it lives on.
struct Served {
    api: DecisionApi,
    runtime: tokio::runtime::Runtime,
    _app: Application,
    _dir: tempfile::TempDir,
}

fn served() -> &'static Served {
    static SERVED: std::sync::OnceLock<Served> = std::sync::OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateways");
        std::fs::write(&path, format!("property {GATEWAY_TOKEN}\n")).unwrap();
        let bundle = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
        let mut config = Config::new(bundle, dir.path().join("store"));
        config.delegation.gateways = Gateways::from_file(&path).unwrap();
        let app = runtime.block_on(Application::build(config)).unwrap();
        Served {
            api: app.decision_api(),
            runtime,
            _app: app,
            _dir: dir,
        }
    })
}

fn entity(s: &str) -> Option<pb::EntityRef> {
    let (t, id) = s.split_once(':').unwrap();
    Some(pb::EntityRef {
        r#type: t.into(),
        id: id.into(),
    })
}

fn claims(verdict: &str) -> VerdictClaims {
    let payload = verdict.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn ask(request: pb::AuthorizeRequest) -> Result<pb::AuthorizeResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {GATEWAY_TOKEN}").parse().unwrap(),
    );
    let served = served();
    served
        .runtime
        .block_on(served.api.authorize(request))
        .map(tonic::Response::into_inner)
}

/// First hops of the shipped scenarios: principal, caller, callee, and the scopes they ask for.
const FIRST_HOPS: [(&str, &str, &str, &[&str]); 4] = [
    (
        "User:alice",
        "User:alice",
        "Agent:user-assistant",
        &["reports.generate", "finance.read", "finance.write"],
    ),
    (
        "Service:monitoring",
        "Service:monitoring",
        "Agent:diagnostics",
        &["diagnostics.run", "logs.read", "metrics.read"],
    ),
    (
        "User:jane",
        "User:jane",
        "Agent:intake",
        &[
            "intake.submit",
            "insurance.verify",
            "symptoms.read",
            "appointments.book",
        ],
    ),
    (
        "User:bob",
        "User:bob",
        "Agent:support-assistant",
        &["refunds.issue", "transactions.read"],
    ),
];

const AGENTS: [&str; 12] = [
    "user-assistant",
    "data-analyst",
    "database-agent",
    "diagnostics",
    "log-analysis",
    "support-assistant",
    "refund-agent",
    "intake",
    "verification",
    "triage",
    "scheduling",
    "ledger",
];

const SCOPES: [&str; 13] = [
    "reports.generate",
    "finance.read",
    "finance.write",
    "diagnostics.run",
    "logs.read",
    "metrics.read",
    "refunds.issue",
    "transactions.read",
    "intake.submit",
    "insurance.verify",
    "symptoms.read",
    "appointments.book",
    "ledger.reconcile",
];

/// Who each agent of the shipped bundle may call: most walks follow it, some stray.
fn allowed_next(agent: &str) -> &'static [&'static str] {
    match agent {
        "user-assistant" => &["data-analyst"],
        "data-analyst" => &["database-agent"],
        "diagnostics" => &["log-analysis"],
        "support-assistant" => &["refund-agent"],
        "intake" => &["verification", "triage"],
        "triage" => &["scheduling"],
        _ => &[],
    }
}

/// One hop: which callee (`choice` picks an allowed one, or strays to `stray`), which held
/// scopes to keep asking for, and extra scopes that may lie above the ceiling.
#[derive(Debug, Clone)]
struct Hop {
    choice: usize,
    stray: &'static str,
    keep: Vec<bool>,
    extra: Vec<&'static str>,
}

fn hop() -> impl Strategy<Value = Hop> {
    (
        0usize..10,
        prop::sample::select(AGENTS.to_vec()),
        prop::collection::vec(any::<bool>(), 4),
        prop::collection::vec(prop::sample::select(SCOPES.to_vec()), 0..3),
    )
        .prop_map(|(choice, stray, keep, extra)| Hop {
            choice,
            stray,
            keep,
            extra,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn granted_scopes_and_lifetimes_never_grow_along_a_chain(
        start in prop::sample::select(FIRST_HOPS.to_vec()),
        amount in 0i64..1000,
        hops in prop::collection::vec(hop(), 1..5),
    ) {
        let (principal, caller, callee, scopes) = start;
        let context = prost_types::Struct {
            fields: [("amount".to_owned(), prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(amount as f64)),
            })].into_iter().collect(),
        };
        let first = ask(pb::AuthorizeRequest {
            caller: entity(caller),
            callee: entity(callee),
            principal: entity(principal),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            context: Some(context.clone()),
            ..Default::default()
        }).unwrap();
        prop_assert_eq!(first.decision(), Decision::Allow);
        let mut previous = first;
        for hop in hops {
            let holder = previous.chain.last().map(|e| e.id.clone()).unwrap_or_default();
            let allowed = allowed_next(&holder);
            // Eight in ten hops follow the allowlist; the rest try an arbitrary agent.
            let next = if hop.choice < 8 && !allowed.is_empty() {
                allowed[hop.choice % allowed.len()]
            } else {
                hop.stray
            };
            let mut scopes: BTreeSet<String> = previous
                .granted_scopes
                .iter()
                .zip(hop.keep.iter().cycle())
                .filter(|(_, keep)| **keep)
                .map(|(s, _)| s.clone())
                .collect();
            scopes.extend(hop.extra.iter().map(|s| (*s).to_owned()));
            if scopes.is_empty() {
                scopes.insert(previous.granted_scopes[0].clone());
            }
            let answer = ask(pb::AuthorizeRequest {
                caller: previous.chain.last().cloned(),
                callee: entity(&format!("Agent:{next}")),
                scopes: scopes.into_iter().collect(),
                context: Some(context.clone()),
                subject_token: previous.verdict.clone(),
                ..Default::default()
            });
            // A refusal of the credential or the hop ends the walk; it can never widen anything.
            let Ok(answer) = answer else { break };
            if answer.decision() != Decision::Allow {
                prop_assert!(answer.verdict.is_empty(), "a deny carries no verdict");
                break;
            }
            let before: BTreeSet<&String> = previous.granted_scopes.iter().collect();
            for scope in &answer.granted_scopes {
                prop_assert!(before.contains(scope), "`{}` was granted but not held upstream", scope);
            }
            let (up, down) = (claims(&previous.verdict), claims(&answer.verdict));
            prop_assert!(down.exp_max <= up.exp_max, "exp_max grew from {} to {}", up.exp_max, down.exp_max);
            prop_assert!(down.exp <= down.exp_max);
            prop_assert!(
                answer.expires_at.as_ref().unwrap().seconds <= previous.expires_at.as_ref().unwrap().seconds,
                "expires_at grew"
            );
            prop_assert_eq!(&answer.transaction_id, &previous.transaction_id);
            prop_assert_eq!(&answer.chain[..answer.chain.len() - 1], &previous.chain[..]);
            prop_assert_eq!(&down.sub, &up.sub);
            DEEPEST.fetch_max(answer.chain.len(), std::sync::atomic::Ordering::Relaxed);
            previous = answer;
        }
    }
}

#[test]
fn walks_reach_the_end_of_the_longest_scenario_chain() {
    granted_scopes_and_lifetimes_never_grow_along_a_chain();
    assert!(
        DEEPEST.load(std::sync::atomic::Ordering::Relaxed) >= 4,
        "no walk reached four members: the property was barely exercised"
    );
}
