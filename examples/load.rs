//! A load run against a running Baton: `concurrency` callers send Authorize requests for
//! `seconds`, then throughput and latency percentiles are printed.
//!
//! ```text
//! cargo run --release --example load -- --server http://127.0.0.1:50051 --concurrency 16 --seconds 10
//! cargo run --release --example load -- --server https://127.0.0.1:50051 --ca ca.pem \
//!     --client-cert agent.pem --client-key agent.key
//! ```
//!
//! With `--swap-bundle DIR`, the run has two phases of `seconds` each, printed side by side:
//! steady, then with the active bundle swapped every `--swap-interval-ms` through the admin API
//! (between DIR and DIR with one comment more, pushed first, so the version changes each time).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use baton::pb::policy_admin_client::PolicyAdminClient;
use baton::pb::{self, decision_service_client::DecisionServiceClient};
use clap::Parser;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Requests in flight at once (each caller waits for its answer before the next).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// HTTP/2 connections the callers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// `human-led` (shipped bundle), `refund` (shipped bundle), `synthetic` (generated bundles:
    /// agent-3 calling its partner among `--agents` agents), or `health`: a gRPC health check on
    /// the same server, the transport's floor.
    #[arg(long, default_value = "human-led")]
    scenario: String,
    #[arg(long, default_value_t = 2500)]
    agents: usize,
    /// A label for the printed line.
    #[arg(long, default_value = "")]
    label: String,
    /// A bundle directory to swap in and out during a second phase of the run.
    #[arg(long)]
    swap_bundle: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 250)]
    swap_interval_ms: u64,
    #[arg(long, default_value = "http://127.0.0.1:50052")]
    admin_server: String,
    #[arg(long, env = "BATON_ADMIN_TOKEN", default_value = "")]
    admin_token: String,
    /// TLS to an `https://` server: `--ca`, `--client-cert`, `--client-key`.
    #[command(flatten)]
    tls: baton::tls::client::ClientTlsArgs,
}

fn entity(t: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: t.into(),
        id: id.into(),
    })
}

fn request(args: &Args) -> pb::AuthorizeRequest {
    match args.scenario.as_str() {
        "human-led" => pb::AuthorizeRequest {
            caller: entity("Agent", "user-assistant"),
            callee: entity("Agent", "data-analyst"),
            principal: entity("User", "alice"),
            scopes: vec!["reports.generate".into(), "finance.read".into()],
            ..Default::default()
        },
        "refund" => pb::AuthorizeRequest {
            caller: entity("Agent", "support-assistant"),
            callee: entity("Agent", "refund-agent"),
            principal: entity("User", "bob"),
            scopes: vec!["refunds.issue".into()],
            context: Some(prost_types::Struct {
                fields: [(
                    "amount".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NumberValue(750.0)),
                    },
                )]
                .into_iter()
                .collect(),
            }),
            ..Default::default()
        },
        "synthetic" => pb::AuthorizeRequest {
            caller: entity("Agent", "agent-3"),
            callee: entity("Agent", &format!("agent-{}", (3 * 7 + 1) % args.agents)),
            principal: entity("User", "alice"),
            scopes: vec!["read".into(), "write".into()],
            ..Default::default()
        },
        "health" => pb::AuthorizeRequest::default(),
        other => panic!("unknown scenario `{other}`"),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(
            args.tls
                .endpoint(&args.server)
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }
    let template = request(&args);
    let health = args.scenario == "health";
    if !health {
        // Fail fast when the scenario does not fit the served bundle.
        let first = DecisionServiceClient::new(channels[0].clone())
            .authorize(template.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            first.decision(),
            pb::Decision::Allow,
            "the scenario must be allowed: {first:?}"
        );
    }

    let label = if args.label.is_empty() {
        args.scenario.clone()
    } else {
        args.label.clone()
    };
    let Some(dir) = args.swap_bundle.clone() else {
        let (latencies, errors, elapsed) = run(&args, &channels, &template, health).await;
        report(&label, &args, latencies, errors, elapsed);
        return;
    };
    let revisions = push_pair(&args, &dir).await;
    let (latencies, errors, elapsed) = run(&args, &channels, &template, health).await;
    report(
        &format!("{label} steady"),
        &args,
        latencies,
        errors,
        elapsed,
    );
    let swaps = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let swapping = tokio::spawn(swap(
        args.admin_server.clone(),
        args.admin_token.clone(),
        revisions,
        args.swap_interval_ms,
        swaps.clone(),
    ));
    let (latencies, errors, elapsed) = run(&args, &channels, &template, health).await;
    swapping.abort();
    let swaps = swaps.load(std::sync::atomic::Ordering::Relaxed);
    report(
        &format!("{label} swapping"),
        &args,
        latencies,
        errors,
        elapsed,
    );
    println!("{swaps} swaps during the second phase");
}

fn admin_request<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Pushes `dir`, and `dir` with a comment more, and returns their revisions.
async fn push_pair(args: &Args, dir: &std::path::Path) -> [u64; 2] {
    let channel = Channel::from_shared(args.admin_server.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = PolicyAdminClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let files: Vec<pb::BundleFile> = baton::bundle::read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|f| pb::BundleFile {
            name: f.name,
            content: f.text,
        })
        .collect();
    let mut revisions = [0; 2];
    for (i, revision) in revisions.iter_mut().enumerate() {
        let mut files = files.clone();
        for f in files
            .iter_mut()
            .filter(|f| f.name.ends_with(".cedar"))
            .take(1)
        {
            f.content.push_str(&format!("\n// load run variant {i}\n"));
        }
        let pushed = admin
            .push_bundle(admin_request(
                &args.admin_token,
                pb::PushBundleRequest {
                    files,
                    message: format!("load run variant {i}"),
                    shadow: false,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        *revision = pushed.bundle.unwrap().revision;
    }
    revisions
}

/// Activates the two revisions in turn until aborted, counting the swaps in `swaps`.
async fn swap(
    server: String,
    token: String,
    revisions: [u64; 2],
    interval_ms: u64,
    swaps: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let channel = Channel::from_shared(server)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = PolicyAdminClient::new(channel);
    for i in 0usize.. {
        let revision = revisions[i % 2];
        admin
            .activate_bundle(admin_request(
                &token,
                pb::ActivateBundleRequest { revision },
            ))
            .await
            .unwrap();
        swaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
}

async fn run(
    args: &Args,
    channels: &[Channel],
    template: &pb::AuthorizeRequest,
    health: bool,
) -> (Vec<Duration>, u64, f64) {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for i in 0..args.concurrency {
        let channel = channels[i % channels.len()].clone();
        let mut client = DecisionServiceClient::new(channel.clone());
        let mut probe = HealthClient::new(channel);
        let req = template.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                let ok = if health {
                    probe.check(HealthCheckRequest::default()).await.is_ok()
                } else {
                    client.authorize(req.clone()).await.is_ok()
                };
                if ok {
                    latencies.push(start.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    (latencies, errors, started.elapsed().as_secs_f64())
}

fn report(label: &str, args: &Args, mut latencies: Vec<Duration>, errors: u64, elapsed: f64) {
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{:<28} concurrency {:>3}  {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  ({} requests, {} errors)",
        label,
        args.concurrency,
        latencies.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        latencies.len(),
        errors
    );
}
