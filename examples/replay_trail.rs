//! A recorded trail to time `baton policy replay` on: decides `--distinct` different questions
//! against a generated bundle of `--policies` policies, records `--records` decisions of them
//! (with `--audit-context full`, a millisecond apart, through the audit writer into a trail
//! rotated and packed as `serve` does), and writes beside it the bundle (`bundle/`) and a
//! candidate that forbids one agent everything (`candidate/`), so the replay has changes to
//! group as well as decisions that stay.
//!
//! ```text
//! cargo run --release --example replay_trail -- --records 1000000 --policies 10000 --dir /tmp/replay
//! taskset -c 1 target/release/baton policy replay /tmp/replay/candidate \
//!     --audit-file /tmp/replay/audit.jsonl --allow-flips
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // each user takes only part of it
#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use baton::audit::{Asked, Audit, AuditContext, AuditMode, AuditRecord, AuditSettings};
use baton::bundle::PolicyBundle;
use baton::decision::{Decision, DecisionRequest, DecisionSettings, decide};
use baton::identity::{Identity, IdentityKind};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Decision records to write.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Policies in the generated bundle.
    #[arg(long, default_value_t = 10_000)]
    policies: usize,
    /// Different questions the records ask, round robin.
    #[arg(long, default_value_t = 2_000)]
    distinct: usize,
    /// Where the trail and the bundles go.
    #[arg(long)]
    dir: PathBuf,
}

/// The `n`th question: an agent calls the agent it may call, for alice, reading and writing,
/// with an amount that the bundle's forbid refuses writing for one time in four.
fn question(n: usize, agents: usize) -> DecisionRequest {
    let caller = n % agents;
    let callee = synthetic::partner(caller, agents);
    let amount = if n.is_multiple_of(4) { 5000 } else { 100 };
    DecisionRequest {
        scopes: vec!["read".into(), "write".into()],
        context: serde_json::json!({ "amount": amount })
            .as_object()
            .cloned()
            .unwrap(),
        ..DecisionRequest::new(
            Identity::new(IdentityKind::Agent, format!("agent-{caller}")),
            Identity::new(IdentityKind::Agent, format!("agent-{callee}")),
            Identity::new(IdentityKind::User, "alice"),
        )
    }
}

fn write_bundle(bundle: &PolicyBundle, dir: &Path, extra: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for file in bundle.sources() {
        let mut text = file.text.clone();
        if file.name.ends_with(".cedar") {
            text.push_str(extra);
        }
        std::fs::write(dir.join(&file.name), text).unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).unwrap();
    let bundle = synthetic::bundle(args.policies);
    let agents = synthetic::agents_for(args.policies);
    write_bundle(&bundle, &args.dir.join("bundle"), "");
    write_bundle(
        &bundle,
        &args.dir.join("candidate"),
        "\n@id(\"quarantine-agent-3\")\nforbid (principal == Agent::\"agent-3\", action, resource);\n",
    );
    let settings = DecisionSettings::default();
    let started = Instant::now();
    let decided: Vec<(DecisionRequest, baton::decision::Outcome)> = (0..args.distinct)
        .map(|n| {
            let request = question(n, agents);
            let outcome = decide(&bundle, &request, &settings).unwrap();
            (request, outcome)
        })
        .collect();
    println!(
        "decided {} questions against {} policies in {:.1?}",
        args.distinct,
        bundle.policy_count(),
        started.elapsed()
    );

    let audit = Audit::start(
        &AuditSettings {
            mode: AuditMode::File,
            file: args.dir.join("audit.jsonl"),
            context: AuditContext::Full,
            ..AuditSettings::default()
        },
        None,
    )
    .unwrap();
    let started = Instant::now();
    for n in 0..args.records {
        let (request, outcome) = &decided[(n % args.distinct as u64) as usize];
        let at = UNIX_EPOCH + Duration::from_millis(1_750_000_000_000 + n);
        let decision = Decision::stamp(outcome.clone(), None, at, None);
        let asked = Asked {
            pdp_caller: Some("gateway-1".into()),
            trace_id: None,
            latency: Duration::from_micros(80),
            source: "evaluated",
        };
        audit
            .record(AuditRecord::decision(
                request,
                &decision,
                asked,
                AuditContext::Full,
            ))
            .await;
    }
    audit.flush().await;
    audit.packed().await;
    let stats = audit.stats();
    audit.close().await;
    println!(
        "wrote {} records ({} segments) to {} in {:.1?}",
        stats.written,
        stats.segments_rotated,
        args.dir.join("audit.jsonl").display(),
        started.elapsed()
    );
}
