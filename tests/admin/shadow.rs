//! Shadow bundles: pushed without being activated, compared against live traffic on every
//! replica, reported by `GetShadowStatus` and the audit trail, promoted by activation.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::policy_admin_client::PolicyAdminClient;
use baton::pb::{self, Decision};
use tonic::transport::Channel;

use crate::helpers::{
    AdminApp, TOKEN, authed, connect, shipped_files, spawn_admin_app_configured, with_token,
};

const BATON: &str = env!("CARGO_BIN_EXE_baton");

/// Longer than the worker needs even at idle priority on a machine busy with other tests.
const PATIENCE: Duration = Duration::from_secs(60);

/// The shipped bundle with three changes, and without its test cases (which the changes
/// break): a forbid added (carol's reports), a TTL shortened (monitoring's scopes at
/// diagnostics, 600 s to 60 s), a scope removed (`finance.read` from the assistant's scopes
/// at the analyst).
fn changed_files() -> Vec<pb::BundleFile> {
    let replace = |f: &mut pb::BundleFile, from: &str, to: &str| {
        let before = f.content.clone();
        f.content = f.content.replace(from, to);
        assert_ne!(
            before, f.content,
            "the shipped policy changed shape: {from}"
        );
    };
    shipped_files()
        .into_iter()
        .filter(|f| f.name != "tests.json")
        .map(|mut f| {
            if f.name == "reporting.cedar" {
                replace(
                    &mut f,
                    "action in [Action::\"reports.generate\", Action::\"finance.read\"],\n  resource == Agent::\"data-analyst\"",
                    "action in [Action::\"reports.generate\"],\n  resource == Agent::\"data-analyst\"",
                );
                f.content.push_str(
                    "\n@id(\"carol-makes-no-reports\")\nforbid (\n  principal == User::\"carol\",\n  action == Action::\"reports.generate\",\n  resource\n);\n",
                );
            }
            if f.name == "diagnostics.cedar" {
                replace(
                    &mut f,
                    "@id(\"monitoring-scopes-at-diagnostics\")\n@ttl(\"600\")",
                    "@id(\"monitoring-scopes-at-diagnostics\")\n@ttl(\"60\")",
                );
            }
            f
        })
        .collect()
}

fn entity(t: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: t.into(),
        id: id.into(),
    })
}

fn ask(
    caller: (&str, &str),
    callee: &str,
    principal: (&str, &str),
    scopes: &[&str],
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: entity(caller.0, caller.1),
        callee: entity("Agent", callee),
        principal: entity(principal.0, principal.1),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

/// One round of traffic: three requests each change touches, and one none does.
fn round() -> Vec<pb::AuthorizeRequest> {
    let assistant = ("Agent", "user-assistant");
    vec![
        // The scope removed: alice's finance.read is refused.
        ask(
            assistant,
            "data-analyst",
            ("User", "alice"),
            &["reports.generate", "finance.read"],
        ),
        // Untouched: dave asks only for a report.
        ask(
            assistant,
            "data-analyst",
            ("User", "dave"),
            &["reports.generate"],
        ),
        // The TTL shortened.
        ask(
            ("Service", "monitoring"),
            "diagnostics",
            ("Service", "monitoring"),
            &["logs.read"],
        ),
        // The forbid added: carol's report is denied.
        ask(
            assistant,
            "data-analyst",
            ("User", "carol"),
            &["reports.generate"],
        ),
    ]
}

/// Sends `rounds` rounds from `callers` concurrent callers; every request must be answered,
/// and answered as the live bundle decides.
async fn load(url: &str, rounds: usize, callers: usize) {
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let mut client = DecisionServiceClient::new(connect(url).await);
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                for request in round() {
                    let answer = client.authorize(request).await.unwrap().into_inner();
                    assert_eq!(
                        answer.decision(),
                        Decision::Allow,
                        "the live bundle allows all four"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn status(admin: &mut PolicyAdminClient<Channel>) -> pb::GetShadowStatusResponse {
    admin
        .get_shadow_status(authed(pb::GetShadowStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// Polls the status until `done`, failing after [`PATIENCE`].
async fn status_until(
    admin: &mut PolicyAdminClient<Channel>,
    what: &str,
    done: impl Fn(&pb::GetShadowStatusResponse) -> bool,
) -> pb::GetShadowStatusResponse {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = status(admin).await;
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn push_shadow(admin: &mut PolicyAdminClient<Channel>) -> pb::PushBundleResponse {
    admin
        .push_bundle(authed(pb::PushBundleRequest {
            files: changed_files(),
            message: "try the changes".into(),
            shadow: true,
        }))
        .await
        .unwrap()
        .into_inner()
}

fn by_policy(s: &pb::GetShadowStatusResponse) -> BTreeMap<String, u64> {
    s.policies
        .iter()
        .map(|p| (p.policy.clone(), p.count))
        .collect()
}

/// Every `shadow_disagreement` record of the trail.
async fn shadow_records(
    audit: &mut baton::pb::audit_service_client::AuditServiceClient<Channel>,
) -> Vec<pb::AuditRecord> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .query_audit(authed(pb::QueryAuditRequest {
                kind: "shadow_disagreement".into(),
                page_size: 1000,
                page_token,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        found.extend(page.records);
        if page.next_page_token.is_empty() {
            return found;
        }
        page_token = page.next_page_token;
    }
}

async fn sampled_app(sample: f64) -> AdminApp {
    spawn_admin_app_configured(|config| {
        config.shadow_sample = sample;
        config.audit.mode = baton::audit::AuditMode::File;
    })
    .await
}

#[tokio::test]
async fn a_shadow_under_load_reports_exactly_the_disagreements_its_changes_cause() {
    let mut app = sampled_app(1.0).await;
    let live_version = app.pipeline.bundle().version().to_owned();
    let pushed = push_shadow(&mut app.admin).await;
    assert!(pushed.shadow);
    let info = pushed.bundle.unwrap();
    assert!(!info.active, "a shadow is not activated");
    assert_eq!(app.pipeline.bundle().version(), live_version);

    let (rounds, callers) = (25, 4);
    load(&app.url, rounds, callers).await;
    let sent = (rounds * callers) as u64;
    let s = status_until(&mut app.admin, "every request was compared", |s| {
        s.compared == 4 * sent
    })
    .await;
    assert!(s.shadowing);
    assert_eq!(s.revision, info.revision);
    assert_eq!(s.sample, 1.0);
    assert_eq!((s.agreed, s.disagreed, s.dropped), (sent, 3 * sent, 0));
    let expected: BTreeMap<String, u64> = [
        ("assistant-scopes-at-analyst".to_owned(), sent),
        ("carol-makes-no-reports".to_owned(), sent),
        ("monitoring-scopes-at-diagnostics".to_owned(), sent),
    ]
    .into();
    assert_eq!(by_policy(&s), expected);
    assert!(s.policies.iter().all(|p| p.example_decision_ids.len() == 3));

    // The metric, by the same policies.
    let metrics = app.pipeline.render_metrics();
    for (policy, n) in &expected {
        let line = format!("baton_shadow_disagreements_total{{policy=\"{policy}\"}} {n}");
        assert!(metrics.contains(&line), "missing `{line}` in:\n{metrics}");
    }
    assert!(metrics.contains(&format!("baton_shadow_compared_total {}", 4 * sent)));

    // The audit trail holds one record per disagreement, each saying what would change.
    let mut audit =
        baton::pb::audit_service_client::AuditServiceClient::new(connect(&app.admin_url).await);
    let example = &s.policies[0].example_decision_ids[0];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let found = loop {
        let found = shadow_records(&mut audit).await;
        if found.len() as u64 >= 3 * sent || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found.len() as u64, 3 * sent);
    let changes: Vec<Vec<String>> = found
        .iter()
        .filter_map(|r| match &r.event {
            Some(pb::audit_record::Event::ShadowDisagreement(d)) => Some(d.changes.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), found.len(), "only shadow disagreements");
    for c in &changes {
        let known = [
            vec!["refused finance.read".to_owned()],
            vec!["ttl 600 -> 60".to_owned()],
            vec![
                "effect ALLOW -> DENY".to_owned(),
                "refused reports.generate".to_owned(),
                "ttl 900 -> 0".to_owned(),
            ],
        ];
        assert!(known.contains(c), "unexpected change {c:?}");
    }
    assert!(
        found.iter().any(|r| matches!(&r.event,
            Some(pb::audit_record::Event::ShadowDisagreement(d)) if &d.decision_id == example)),
        "the example decision {example} has its record"
    );
}

#[tokio::test]
async fn a_sample_of_zero_compares_nothing() {
    let mut app = sampled_app(0.0).await;
    let pushed = push_shadow(&mut app.admin).await;
    load(&app.url, 5, 1).await;
    let s = status(&mut app.admin).await;
    assert!(s.shadowing);
    assert_eq!(s.revision, pushed.bundle.unwrap().revision);
    assert_eq!((s.sample, s.compared, s.dropped), (0.0, 0, 0));
    assert!(
        app.pipeline
            .render_metrics()
            .contains("baton_shadow_compared_total 0")
    );
}

#[tokio::test]
async fn activating_the_shadow_promotes_it_and_stop_ends_it() {
    let mut app = sampled_app(1.0).await;
    let revision = push_shadow(&mut app.admin).await.bundle.unwrap().revision;
    let activated = app
        .admin
        .activate_bundle(authed(pb::ActivateBundleRequest { revision }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(activated.active.unwrap().revision, revision);
    assert!(activated.timings.is_some());
    assert!(
        !status(&mut app.admin).await.shadowing,
        "promoted, so no longer shadowed"
    );
    let mut decisions = app.decisions.clone();
    let carol = round().pop().unwrap();
    let answer = decisions.authorize(carol).await.unwrap().into_inner();
    assert_eq!(
        answer.decision(),
        Decision::Deny,
        "the promoted forbid is live"
    );

    // A second shadow, stopped rather than promoted.
    let revision = push_shadow(&mut app.admin).await.bundle.unwrap().revision;
    assert_eq!(status(&mut app.admin).await.revision, revision);
    let stopped = app
        .admin
        .stop_shadow(authed(pb::StopShadowRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.revision, revision);
    assert!(!status(&mut app.admin).await.shadowing);
}

/// `message` with `token`, or with none.
fn request<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    match token {
        Some(t) => with_token(t, message),
        None => tonic::Request::new(message),
    }
}

#[tokio::test]
async fn shadow_calls_need_an_admin_token() {
    let mut app = sampled_app(1.0).await;
    for token in [None, Some("not-the-token-0123456789")] {
        let pushed = app
            .admin
            .push_bundle(request(
                token,
                pb::PushBundleRequest {
                    files: changed_files(),
                    message: "sneak".into(),
                    shadow: true,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(pushed.code(), tonic::Code::Unauthenticated, "{pushed:?}");
        let asked = app
            .admin
            .get_shadow_status(request(token, pb::GetShadowStatusRequest {}))
            .await
            .unwrap_err();
        assert_eq!(asked.code(), tonic::Code::Unauthenticated);
        let stopped = app
            .admin
            .stop_shadow(request(token, pb::StopShadowRequest {}))
            .await
            .unwrap_err();
        assert_eq!(stopped.code(), tonic::Code::Unauthenticated);
    }
    assert!(!status(&mut app.admin).await.shadowing);
}

// Multi-threaded: the CLI runs as a blocking child process while this runtime serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_cli_output_has_the_phase_timings_and_no_progress_codes() {
    let app = sampled_app(1.0).await;
    let dir = tempfile::tempdir().unwrap();
    for f in changed_files() {
        std::fs::write(dir.path().join(&f.name), f.content).unwrap();
    }
    let baton = |args: &[&str]| {
        let out = Command::new(BATON)
            .args(args)
            .args(["--server", &app.admin_url])
            .env("BATON_ADMIN_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains('\u{1b}'),
                "escape codes in piped output: {text:?}"
            );
            assert!(
                !text.contains('\r'),
                "a spinner's carriage return: {text:?}"
            );
        }
        stdout
    };
    let bundle = dir.path().to_str().unwrap();
    let validated = baton(&["policy", "validate", bundle]);
    assert!(validated.contains("took parse "), "{validated}");
    assert!(validated.contains(", validate ") && validated.contains(", index "));
    assert!(validated.contains(", tests ") && validated.contains(" in all"));
    let pushed = baton(&["policy", "push", "--shadow", "-m", "try", bundle]);
    assert!(pushed.contains("pushed as the shadow revision"), "{pushed}");
    assert!(pushed.contains("took parse "), "{pushed}");
    let status = baton(&["policy", "shadow", "status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["shadowing"], true);
    assert_eq!(json["sample"], 1.0);
    let listed = baton(&["audit", "--kind", "shadow_disagreement"]);
    assert!(
        listed.starts_with("shadow_disagreement records"),
        "{listed}"
    );
    assert!(listed.contains("record(s), read in"), "{listed}");
    let stopped = baton(&["policy", "shadow", "stop"]);
    assert!(
        stopped.starts_with("stopped shadowing revision"),
        "{stopped}"
    );
}

#[tokio::test]
async fn two_replicas_sharing_redis_both_shadow_and_both_stop() {
    use crate::replicas::{Replica, redis_support::RedisServer};
    let redis = RedisServer::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sample = ["--shadow-sample", "1"];
    let a = Replica::start_with(&redis.url(), dir_a.path(), &sample);
    let b = Replica::start_with(&redis.url(), dir_b.path(), &sample);
    let revision = push_shadow(&mut a.admin().await)
        .await
        .bundle
        .unwrap()
        .revision;

    // The other replica learns the shadow through Redis, and compares its own traffic.
    let mut on_b = b.admin().await;
    status_until(
        &mut on_b,
        "the other replica shadows the pushed revision",
        |s| s.revision == revision,
    )
    .await;
    let mut decisions = b.decisions().await;
    for request in round() {
        decisions.authorize(request).await.unwrap();
    }
    let s = status_until(&mut on_b, "the other replica compared its round", |s| {
        s.compared == 4
    })
    .await;
    assert_eq!((s.agreed, s.disagreed), (1, 3));
    assert_eq!(
        by_policy(&s).into_keys().collect::<Vec<_>>(),
        [
            "assistant-scopes-at-analyst",
            "carol-makes-no-reports",
            "monitoring-scopes-at-diagnostics"
        ]
    );
    assert_eq!(
        status(&mut a.admin().await).await.compared,
        0,
        "counts are per replica"
    );

    // Activating the shadow on one replica promotes it everywhere, and ends the shadow.
    a.admin()
        .await
        .activate_bundle(authed(pb::ActivateBundleRequest { revision }))
        .await
        .unwrap();
    status_until(&mut on_b, "the other replica stops shadowing", |s| {
        !s.shadowing
    })
    .await;
    let carol = round().pop().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while decisions
        .authorize(carol.clone())
        .await
        .unwrap()
        .into_inner()
        .decision()
        != Decision::Deny
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the promotion did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
