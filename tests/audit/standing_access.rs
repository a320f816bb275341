//! `baton govern report` against a trail the real server recorded: traffic that uses a few of
//! the shipped bundle's grants, so the rest are reported unused, read from the file trail and
//! through the admin API.

use std::process::Command;

use baton::pb::Decision;
use baton::standing_access::StandingAccessReport;

use crate::admin_helpers::TOKEN;
use crate::app::with_file;
use crate::helpers::{hop, report_request};
use crate::spawn::shipped_bundle;

fn has_grant(report: &StandingAccessReport, caller: &str, callee: &str, scope: &str) -> bool {
    report
        .unused_grants
        .iter()
        .any(|g| g.caller.id == caller && g.callee.id == callee && g.scope == scope)
}

// Multi-threaded: the command runs while this thread waits on it, and the server must answer
// its `--server` calls meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_lists_unseen_agents_unused_grants_and_expiries() {
    let mut audited = with_file().await;
    let client = &mut audited.app.client;
    // alice's assistant uses both its scopes at the analyst; the monitoring service is refused
    // at the refund agent, which it may not call: seen, but granted nothing.
    let both = report_request("User:alice", &["reports.generate", "finance.read"]);
    let answer = client.authorize(both).await.unwrap().into_inner();
    assert_eq!(answer.decision(), Decision::Allow);
    let refused = hop(
        "Service:monitoring",
        "Agent:refund-agent",
        "Service:monitoring",
        &["refunds.issue"],
    );
    let answer = client.authorize(refused).await.unwrap().into_inner();
    assert_eq!(answer.decision(), Decision::Deny);
    audited.app.pipeline.audit().flush().await;

    let report = |source: &[&str], json: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args([
                "govern",
                "report",
                "--window",
                "1d",
                "--expiring-within",
                "36500d",
            ])
            .args(source)
            .args(if json { &["--json"][..] } else { &[][..] })
            .env("BATON_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bundle = shipped_bundle();
    let file = audited.file();
    let local = [
        "--bundle",
        bundle.to_str().unwrap(),
        "--audit-file",
        file.to_str().unwrap(),
    ];
    let parsed: StandingAccessReport = serde_json::from_str(&report(&local, true)).unwrap();

    assert_eq!(parsed.decisions, 2);
    let unseen: Vec<&str> = parsed
        .unseen_agents
        .iter()
        .map(|a| a.agent.as_str())
        .collect();
    assert!(unseen.contains(&"database-agent"), "{unseen:?}");
    for seen in ["user-assistant", "data-analyst", "refund-agent"] {
        assert!(!unseen.contains(&seen), "{seen} was seen: {unseen:?}");
    }
    // The grants used are not listed; those of the same callers elsewhere are.
    assert!(!has_grant(
        &parsed,
        "user-assistant",
        "data-analyst",
        "reports.generate"
    ));
    assert!(!has_grant(
        &parsed,
        "user-assistant",
        "data-analyst",
        "finance.read"
    ));
    assert!(has_grant(
        &parsed,
        "data-analyst",
        "database-agent",
        "finance.read"
    ));
    assert!(has_grant(
        &parsed,
        "support-assistant",
        "refund-agent",
        "refunds.issue"
    ));
    assert!(has_grant(&parsed, "database-agent", "sql-query", "db.read"));
    assert_eq!(
        parsed
            .grants
            .map(|g| g as usize > parsed.unused_grants.len()),
        Some(true)
    );
    // The shipped reconciler is the one agent with an expiry.
    let expiring: Vec<(&str, bool)> = parsed
        .expiring
        .iter()
        .map(|e| (e.agent.agent.as_str(), e.expired))
        .collect();
    assert_eq!(expiring, [("reconciler", false)]);
    assert_eq!(
        parsed.expiring[0].agent.owner.as_deref(),
        Some("Group::\"finance\"")
    );

    let text = report(&local, false);
    assert!(text.contains("agents never seen in the window"), "{text}");
    assert!(
        text.contains("Agent data-analyst -> Agent database-agent  finance.read"),
        "{text}"
    );
    assert!(
        text.contains("Agent reconciler  owner Group::\"finance\", expires 2030-12-31T00:00:00Z"),
        "{text}"
    );

    // The same from the server: its active bundle and its trail, through the admin API.
    let server = format!("http://{}", audited.admin_addr);
    let served: StandingAccessReport =
        serde_json::from_str(&report(&["--server", &server], true)).unwrap();
    assert_eq!(served.decisions, parsed.decisions);
    assert_eq!(served.unseen_agents, parsed.unseen_agents);
    assert_eq!(served.unused_grants, parsed.unused_grants);
    assert_eq!(served.bundle_version, parsed.bundle_version);
}
