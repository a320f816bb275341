//! How long a transaction query takes over a long, rotated audit file trail: writes `records`
//! decision records (three hops per transaction, a millisecond apart) through the audit writer
//! into a trail rotated every `--rotate-bytes`, waits until every segment is packed and indexed,
//! then times `queries` transaction queries spread over the whole history, and the same again
//! after a restart (the indexes read back from disk).
//!
//! ```text
//! cargo run --release --example audit_trail -- --records 1000000 --queries 100
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use baton::audit::{Audit, AuditMode, AuditQuery, AuditRecord, AuditSettings, Rotation, Selector};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Records to write.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Transaction queries to time, each run.
    #[arg(long, default_value_t = 100)]
    queries: u64,
    /// Rotate the live file at this many bytes (serve's default).
    #[arg(long, default_value_t = Rotation::default().max_bytes)]
    rotate_bytes: u64,
    /// Where the trail goes; a fresh temporary directory without it.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A decision record as `baton serve` writes one, for the `n`th hop of the run.
fn record(n: u64) -> AuditRecord {
    let txn = transaction(n / 3);
    let depth = n % 3;
    let agents = [
        "user-assistant",
        "data-analyst",
        "database-agent",
        "refund-agent",
    ];
    let chain: Vec<serde_json::Value> = std::iter::once(("User", "alice"))
        .chain(
            agents
                .iter()
                .take(depth as usize + 2)
                .map(|a| ("Agent", *a)),
        )
        .map(|(kind, id)| serde_json::json!({"kind": kind, "id": id}))
        .collect();
    let line = chain
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["kind"].as_str().unwrap(),
                m["id"].as_str().unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(" → ");
    let time = UNIX_EPOCH + Duration::from_millis(1_750_000_000_000 + n);
    serde_json::from_value(serde_json::json!({
        "id": format!("01977a2c-{:04x}-7000-8000-{n:012x}", n % 0xffff),
        "time": humantime::format_rfc3339_millis(time).to_string(),
        "kind": "decision",
        "transaction_id": txn,
        "principal": chain[0],
        "caller": chain[chain.len() - 2],
        "callee": chain[chain.len() - 1],
        "chain": chain,
        "chain_line": line,
        "effect": "ALLOW",
        "requested": ["reports.generate", "finance.read"],
        "granted": ["reports.generate", "finance.read"],
        "refused": [],
        "denial": null,
        "determining_policies": ["assistant-invokes-analyst", "assistant-scopes-at-analyst", "employees-generate-reports", "finance-reads-finance-data"],
        "bundle_version": "sha256:5f0c6a1be0b0ad2c7c34f1b6d2f7ab0e3c1f8d1c9b2a7e6d5c4b3a291807f6e5",
        "obligations": [],
        "ttl_secs": 300,
        "pdp_caller": "gateway-1",
        "trace_id": format!("{:032x}", n * 2_654_435_761),
        "latency_us": 87,
        "source": "evaluated"
    }))
    .unwrap()
}

fn transaction(t: u64) -> String {
    format!("01977a2c-8bf8-77df-aef9-{t:012x}")
}

async fn time_queries(audit: &Audit, transactions: u64, queries: u64) -> Vec<Duration> {
    let mut times = Vec::new();
    // A fixed walk over the whole history: oldest, newest and everything between.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for q in 0..queries {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let t = match q {
            0 => 0,
            1 => transactions - 1,
            _ => (x >> 33) % transactions,
        };
        let started = Instant::now();
        let page = audit
            .query(AuditQuery::new(Selector::Transaction(transaction(t))))
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_eq!(page.records.len(), 3, "transaction {t}");
    }
    times.sort();
    times
}

fn report(what: &str, times: &[Duration]) {
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "{what}: {} queries, median {:.2?}, p99 {:.2?}, max {:.2?}",
        times.len(),
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}

fn size_of(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                size_of(&e.path())
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let temp = tempfile::tempdir().unwrap();
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let settings = AuditSettings {
        mode: AuditMode::File,
        file: dir.join("audit.jsonl"),
        rotation: Rotation {
            max_bytes: args.rotate_bytes,
            ..Rotation::default()
        },
        ..AuditSettings::default()
    };
    let audit = Audit::start(&settings, None).unwrap();
    let started = Instant::now();
    for n in 0..args.records {
        audit.record(record(n)).await;
    }
    audit.flush().await;
    let written = started.elapsed();
    audit.packed().await;
    let stats = audit.stats();
    println!(
        "wrote {} records in {written:.1?} ({:.0}/s); {} segments packed and indexed after {:.1?}; {:.1} MiB on disk",
        stats.written,
        stats.written as f64 / written.as_secs_f64(),
        stats.segments_rotated,
        started.elapsed(),
        size_of(&dir) as f64 / (1024.0 * 1024.0)
    );
    let transactions = args.records / 3;
    report(
        "transaction query",
        &time_queries(&audit, transactions, args.queries).await,
    );
    audit.close().await;
    drop(audit);

    let started = Instant::now();
    let audit = Audit::start(&settings, None).unwrap();
    println!("reopened in {:.1?}", started.elapsed());
    report(
        "after a restart",
        &time_queries(&audit, transactions, args.queries).await,
    );
}
