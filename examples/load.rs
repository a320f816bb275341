//! A load run against a running Baton: `concurrency` callers send Authorize requests for
//! `seconds`, then throughput and latency percentiles are printed.
//!
//! ```text
//! cargo run --release --example load -- --server http://127.0.0.1:50051 --concurrency 16 --seconds 10
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

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
            Channel::from_shared(args.server.clone())
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
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{:<28} concurrency {:>3}  {:>9.0} req/s  p50 {:>7.1} µs  p99 {:>7.1} µs  ({} requests, {} errors)",
        if args.label.is_empty() {
            &args.scenario
        } else {
            &args.label
        },
        args.concurrency,
        latencies.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        latencies.len(),
        errors
    );
}
