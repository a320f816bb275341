//! Replay against the real server: traffic recorded with `--audit-context full`, one policy
//! changed three ways, and `ReplayBundle` (and `baton policy replay`) reporting exactly the
//! changes each causes; records kept without the context counted as skipped; the call behind
//! admin auth; bad input refused with the field named.

use std::collections::BTreeMap;
use std::process::Command;

use baton::audit::AuditContext;
use baton::pb::{self, Decision, policy_admin_client::PolicyAdminClient};
use baton::replay::ReplayReport;
use tonic::Code;
use tonic::transport::Channel;

use crate::admin_helpers::{TOKEN, authed, shipped_files, with_token};
use crate::app::{Audited, with_file_keeping, with_redis_keeping, with_rotated_file_keeping};
use crate::helpers::{hop, refund_request, report_request};
use crate::redis_server::RedisServer;

/// Records the traffic every replay here reads, and returns how many decisions it made:
/// small refunds (allowed, TTL 300), large ones (waiting for approval), alice's report with
/// both scopes (allowed), carol's finance read (denied by a forbid) and a transactions read.
async fn record_traffic(audited: &mut Audited) -> u64 {
    let client = &mut audited.app.client;
    let mut asked = 0;
    let mut ask = async |request: pb::AuthorizeRequest, expected: Decision| {
        let answer = client.authorize(request).await.unwrap().into_inner();
        assert_eq!(answer.decision(), expected);
    };
    for amount in [100, 200, 300] {
        ask(refund_request(amount), Decision::Allow).await;
        asked += 1;
    }
    for amount in [4000, 5000] {
        ask(refund_request(amount), Decision::ApprovalRequired).await;
        asked += 1;
    }
    for _ in 0..2 {
        let both = report_request("User:alice", &["reports.generate", "finance.read"]);
        ask(both, Decision::Allow).await;
        asked += 1;
    }
    ask(
        report_request("User:carol", &["finance.read"]),
        Decision::Deny,
    )
    .await;
    asked += 1;
    let read = hop(
        "Agent:support-assistant",
        "Agent:refund-agent",
        "User:bob",
        &["transactions.read"],
    );
    ask(read, Decision::Allow).await;
    asked += 1;
    audited.app.pipeline.audit().flush().await;
    asked
}

/// The shipped bundle without its test cases (a changed policy would fail some of them),
/// with `edit` applied to `file`.
fn candidate(file: &str, edit: impl Fn(&str) -> String) -> Vec<pb::BundleFile> {
    let mut edited = false;
    let files: Vec<pb::BundleFile> = shipped_files()
        .into_iter()
        .filter(|f| !f.name.ends_with("tests.json"))
        .map(|mut f| {
            if f.name == file {
                let before = f.content.clone();
                f.content = edit(&f.content);
                assert_ne!(f.content, before, "the edit of `{file}` changes it");
                edited = true;
            }
            f
        })
        .collect();
    assert!(
        edited || file.is_empty(),
        "`{file}` is a file of the bundle"
    );
    files
}

fn unchanged() -> Vec<pb::BundleFile> {
    candidate("", str::to_owned)
}

fn forbid_added() -> Vec<pb::BundleFile> {
    candidate("refunds.cedar", |text| {
        format!(
            "{text}\n@id(\"no-refunds-over-50\")\nforbid (principal, action == Action::\"refunds.issue\", resource)\nwhen {{ context.task has amount && context.task.amount > 50 }};\n"
        )
    })
}

fn ttl_shortened() -> Vec<pb::BundleFile> {
    candidate("refunds.cedar", |text| {
        text.replacen(
            "@id(\"refunds-up-to-500\")\n@ttl(\"300\")",
            "@id(\"refunds-up-to-500\")\n@ttl(\"60\")",
            1,
        )
    })
}

fn scope_removed() -> Vec<pb::BundleFile> {
    candidate("reporting.cedar", |text| {
        text.replacen(
            "action in [Action::\"reports.generate\", Action::\"finance.read\"],\n  resource == Agent::\"data-analyst\"",
            "action in [Action::\"reports.generate\"],\n  resource == Agent::\"data-analyst\"",
            1,
        )
    })
}

fn admin(audited: &Audited) -> PolicyAdminClient<Channel> {
    PolicyAdminClient::new(audited.admin.clone())
}

async fn replay(audited: &Audited, files: Vec<pb::BundleFile>) -> ReplayReport {
    let request = pb::ReplayBundleRequest {
        files,
        ..Default::default()
    };
    let response = admin(audited)
        .replay_bundle(authed(request))
        .await
        .unwrap()
        .into_inner();
    ReplayReport::try_from(response).unwrap()
}

/// Each group as `KIND old → new: count [details]`, for comparing whole.
fn groups(report: &ReplayReport) -> BTreeMap<String, (u64, Vec<String>)> {
    report
        .groups
        .iter()
        .map(|g| {
            let key = format!(
                "{} {} → {}",
                g.change.as_str(),
                g.old_policies.join(","),
                g.new_policies.join(",")
            );
            assert!(!g.examples.is_empty() && g.examples.len() <= 3);
            (key, (g.count, g.details.clone()))
        })
        .collect()
}

fn group(key: &str, count: u64, details: &[&str]) -> (String, (u64, Vec<String>)) {
    (
        key.to_owned(),
        (count, details.iter().map(|d| (*d).to_owned()).collect()),
    )
}

#[tokio::test]
async fn replay_reports_exactly_the_changes_each_edit_causes() {
    let mut audited = with_file_keeping(AuditContext::Full).await;
    let asked = record_traffic(&mut audited).await;

    let same = replay(&audited, unchanged()).await;
    assert_eq!(same.decisions, asked);
    assert_eq!(same.replayed, asked, "{same:?}");
    assert_eq!(same.unchanged, asked);
    assert_eq!(same.changed, 0);
    assert!(same.groups.is_empty(), "{same:?}");
    assert_eq!(same.skipped.total(), 0);

    let small = "refunds-up-to-500,support-assistant-invokes-refunds,support-staff-handle-refunds";
    let large = "refunds-over-500-need-approval,support-assistant-invokes-refunds,support-staff-handle-refunds";
    let forbid = replay(&audited, forbid_added()).await;
    assert_eq!(forbid.changed, 5, "{forbid:?}");
    assert_eq!(forbid.unchanged, asked - 5);
    assert_eq!(
        groups(&forbid),
        BTreeMap::from([
            group(
                &format!("ALLOW_TO_DENY {small} → no-refunds-over-50"),
                3,
                &["NO_SCOPE_GRANTED"]
            ),
            group(
                &format!("ALLOW_TO_DENY {large} → no-refunds-over-50"),
                2,
                &["NO_SCOPE_GRANTED"]
            ),
        ])
    );
    assert_ne!(forbid.candidate_version, same.candidate_version);

    let ttl = replay(&audited, ttl_shortened()).await;
    assert_eq!(ttl.changed, 3, "{ttl:?}");
    assert_eq!(
        groups(&ttl),
        BTreeMap::from([group(
            &format!("TTL_CHANGED {small} → {small}"),
            3,
            &["300s → 60s"]
        )])
    );

    let scope = replay(&audited, scope_removed()).await;
    assert_eq!(scope.changed, 2, "{scope:?}");
    assert_eq!(
        groups(&scope),
        BTreeMap::from([group(
            "SCOPES_REFUSED assistant-invokes-analyst,assistant-scopes-at-analyst,employees-generate-reports,finance-reads-finance-data → assistant-invokes-analyst,assistant-scopes-at-analyst,employees-generate-reports",
            2,
            &["finance.read (NOT_PERMITTED_FOR_CALLER)"]
        )])
    );
}

// Multi-threaded: the command runs while this thread waits on it, and the server must answer
// its `--server` call meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_reads_the_file_trail_and_exits_by_what_changes() {
    let mut audited = with_file_keeping(AuditContext::Full).await;
    let asked = record_traffic(&mut audited).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |files: Vec<pb::BundleFile>| {
        for f in files {
            std::fs::write(dir.path().join(&f.name), &f.content).unwrap();
        }
    };
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["policy", "replay"])
            .arg(dir.path())
            .arg("--audit-file")
            .arg(audited.file())
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            stderr,
        )
    };

    write(unchanged());
    let (code, stdout, stderr) = run(&["--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let report: ReplayReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!((report.replayed, report.changed), (asked, 0));
    assert!(stderr.contains("load bundle"), "phases are timed: {stderr}");

    write(ttl_shortened());
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("TTL_CHANGED × 3"), "{stdout}");
    assert!(stdout.contains("300s → 60s"), "{stdout}");
    assert!(stderr.contains("3 decision(s) would change"), "{stderr}");
    let (code, _, stderr) = run(&["--allow-flips"]);
    assert_eq!(code, Some(0), "{stderr}");

    // The same through the server's admin API, which replays its own trail.
    let served = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["policy", "replay", "--json"])
        .arg(dir.path())
        .args(["--server", &format!("http://{}", audited.admin_addr)])
        .env("BATON_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(
        served.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    let report: ReplayReport = serde_json::from_slice(&served.stdout).unwrap();
    assert_eq!((report.replayed, report.changed), (asked, 3));
    let refused = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["policy", "replay"])
        .arg(dir.path())
        .args(["--server", &format!("http://{}", audited.admin_addr)])
        .env_remove("BATON_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"));

    // A window after every record holds none of them.
    let (code, stdout, _) = run(&["--json", "--from", "2999-01-01T00:00:00Z"]);
    assert_eq!(code, Some(0));
    let report: ReplayReport = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report.decisions, 0);

    let (code, _, stderr) = run(&[
        "--from",
        "2026-01-02T00:00:00Z",
        "--to",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the window is empty"), "{stderr}");
    let (code, _, stderr) = run(&["--since", "soon"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--since"), "{stderr}");

    std::fs::write(dir.path().join("refunds.cedar"), "permit (principal,").unwrap();
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("refunds.cedar"),
        "the error names the file: {stderr}"
    );
}

#[tokio::test]
async fn records_kept_without_the_full_context_are_skipped_and_said_to_be() {
    for context in [AuditContext::Hash, AuditContext::None] {
        let mut audited = with_file_keeping(context).await;
        let asked = record_traffic(&mut audited).await;
        let report = replay(&audited, forbid_added()).await;
        assert_eq!(report.decisions, asked);
        assert_eq!(report.replayed, 0);
        assert_eq!(report.skipped.without_full_context, asked);
        assert!(report.groups.is_empty());
        assert!(
            report.render().contains(&format!(
                "{asked} records skipped: recorded without --audit-context full"
            )),
            "{}",
            report.render()
        );
        let records = audited.file_records().await;
        let text = std::fs::read_to_string(audited.file()).unwrap();
        assert!(!text.contains("\"amount\""), "no context value is kept");
        assert_eq!(records.len() as u64, asked);
    }
}

#[tokio::test]
async fn replay_needs_an_admin_and_refuses_bad_input_by_name() {
    let mut audited = with_file_keeping(AuditContext::Full).await;
    record_traffic(&mut audited).await;
    let mut client = admin(&audited);
    let request = |files, revision, from, to| pb::ReplayBundleRequest {
        files,
        revision,
        from,
        to,
    };

    let anonymous = client
        .replay_bundle(tonic::Request::new(request(unchanged(), 0, None, None)))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let wrong = client
        .replay_bundle(with_token(
            "not-the-admin-token-0123456789",
            request(unchanged(), 0, None, None),
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_ne!(TOKEN, "not-the-admin-token-0123456789");

    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let backwards = client
        .replay_bundle(authed(request(unchanged(), 0, at(2_000), at(1_000))))
        .await
        .unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    assert!(
        backwards.message().contains("`from`"),
        "{}",
        backwards.message()
    );

    let neither = client
        .replay_bundle(authed(request(Vec::new(), 0, None, None)))
        .await
        .unwrap_err();
    assert_eq!(neither.code(), Code::InvalidArgument);
    assert!(
        neither.message().contains("`files`"),
        "{}",
        neither.message()
    );
    let both = client
        .replay_bundle(authed(request(unchanged(), 1, None, None)))
        .await
        .unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument);

    let broken = candidate("refunds.cedar", |_| "permit (principal,".to_owned());
    let bad = client
        .replay_bundle(authed(request(broken, 0, None, None)))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("refunds.cedar") || format!("{bad:?}").contains("refunds.cedar")
    );

    let unknown = client
        .replay_bundle(authed(request(Vec::new(), 999, None, None)))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // A stored revision is a candidate too: the active one changes nothing.
    let listed = client
        .list_bundles(authed(pb::ListBundlesRequest { limit: 1 }))
        .await
        .unwrap()
        .into_inner();
    let same = client
        .replay_bundle(authed(request(
            Vec::new(),
            listed.active_revision,
            None,
            None,
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(same.replayed > 0);
    assert_eq!(same.changed, 0);
}

#[tokio::test]
async fn the_redis_stream_is_replayed_alike_by_the_server_and_the_command_line() {
    let redis = RedisServer::start();
    let mut audited = with_redis_keeping(&redis.url(), "replayed", AuditContext::Full).await;
    let asked = record_traffic(&mut audited).await;

    let served = replay(&audited, forbid_added()).await;
    assert_eq!(served.replayed, asked, "{served:?}");
    assert_eq!(served.changed, 5);

    let dir = tempfile::tempdir().unwrap();
    for f in forbid_added() {
        std::fs::write(dir.path().join(&f.name), &f.content).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["policy", "replay", "--json", "--redis-prefix", "replayed"])
        .arg(dir.path())
        .args(["--redis-url", &redis.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let read: ReplayReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(groups(&read), groups(&served));
    assert_eq!((read.replayed, read.changed), (asked, 5));
}

#[tokio::test]
async fn a_trail_rotated_into_segments_is_read_whole() {
    let mut audited = with_rotated_file_keeping(AuditContext::Full).await;
    let asked = record_traffic(&mut audited).await;
    audited.app.pipeline.audit().packed().await;
    let segments = std::fs::read_dir(audited.dir.path().join("audit.segments"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".jsonl.gz"))
        })
        .count();
    assert!(segments > 1, "the trail was rotated into packed segments");
    let served = replay(&audited, ttl_shortened()).await;
    assert_eq!((served.replayed, served.changed), (asked, 3), "{served:?}");

    let dir = tempfile::tempdir().unwrap();
    for f in ttl_shortened() {
        std::fs::write(dir.path().join(&f.name), &f.content).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["policy", "replay", "--json", "--allow-flips"])
        .arg(dir.path())
        .arg("--audit-file")
        .arg(audited.file())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: ReplayReport = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(groups(&read), groups(&served));
    assert_eq!(read.replayed, asked);
}
