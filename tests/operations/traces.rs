//! Two replicas exporting to one receiver, as in the compose file: a traced call joins the
//! caller's trace on whichever replica answers, and each replica's `/metrics` counts it.

use baton::pb;
use tonic::metadata::MetadataValue;

use crate::otlp::{Received, Receiver};
use crate::process::{Baton, sample};
use crate::redis_server::RedisServer;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn entity(kind: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    })
}

/// Scenario 1's first hop: alice's assistant asks the analyst for a report.
fn report() -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: entity("Agent", "user-assistant"),
        callee: entity("Agent", "data-analyst"),
        principal: entity("User", "alice"),
        scopes: vec!["reports.generate".to_owned(), "finance.read".to_owned()],
        ..Default::default()
    }
}

/// An Authorize whose caller is in trace [`TRACE_ID`], in its span `parent`, which the
/// caller chose to record.
async fn traced_authorize(
    baton: &Baton,
    parent: &str,
    request: pb::AuthorizeRequest,
) -> pb::AuthorizeResponse {
    authorize_in_trace(baton, parent, "01", request).await
}

/// An Authorize whose caller is in trace [`TRACE_ID`], in its span `parent`, with the W3C
/// trace `flags` (`01` sampled, `00` not).
async fn authorize_in_trace(
    baton: &Baton,
    parent: &str,
    flags: &str,
    request: pb::AuthorizeRequest,
) -> pb::AuthorizeResponse {
    let mut request = tonic::Request::new(request);
    let traceparent = format!("00-{TRACE_ID}-{parent}-{flags}");
    request
        .metadata_mut()
        .insert("traceparent", MetadataValue::try_from(traceparent).unwrap());
    request
        .metadata_mut()
        .insert("tracestate", MetadataValue::from_static("gateway=7"));
    baton
        .client()
        .await
        .authorize(request)
        .await
        .unwrap()
        .into_inner()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server span of Authorize whose parent is the caller's span `parent`.
fn server_span<'a>(spans: &'a [Received], parent: &str) -> Option<&'a Received> {
    spans.iter().find(|r| {
        r.span.name == "baton.v1.DecisionService/Authorize"
            && hex(&r.span.trace_id) == TRACE_ID
            && hex(&r.span.parent_span_id) == parent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_authorize_joins_the_callers_trace_on_each_replica_and_is_counted() {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    // The compose topology: two replicas sharing one Redis, exporting to one collector.
    let redis = RedisServer::start();
    let url = redis.url();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    // Redis is asked on every in-process miss, so the lookup has its span.
    let shared = ["--redis-url", url.as_str(), "--redis-reads", "always"];
    let mut replicas = [Baton::start(&shared, &env), Baton::start(&shared, &env)];
    let parents = ["00f067aa0ba902b7", "00f067aa0ba902b8"];

    for (i, (baton, parent)) in replicas.iter().zip(parents).enumerate() {
        // The scopes in another order make another question, so the second replica evaluates
        // too rather than finding the first one's answer in Redis, whenever its write lands.
        let mut request = report();
        if i == 1 {
            request.scopes.reverse();
        }
        let answer = traced_authorize(baton, parent, request).await;
        assert_eq!(answer.decision(), pb::Decision::Allow);
        let (status, metrics) = baton.get("/metrics");
        assert_eq!(status, 200);
        assert_eq!(
            sample(&metrics, r#"baton_decisions_total{outcome="allow"}"#),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            sample(&metrics, "baton_authorize_duration_seconds_count"),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            sample(
                &metrics,
                r#"baton_cache_lookups_total{tier="local",result="miss"}"#
            ),
            Some(1.0),
            "{metrics}"
        );
    }
    // A caller that chose not to record its trace gets no span from Baton either.
    let unsampled = "00f067aa0ba902b9";
    let answer = authorize_in_trace(&replicas[0], unsampled, "00", report()).await;
    assert_eq!(answer.decision(), pb::Decision::Allow);
    // The batch processor would wait seconds before exporting; shutdown must flush at once.
    for baton in &mut replicas {
        baton.terminate();
    }

    let spans = receiver
        .wait_for("both server spans", |spans| {
            parents.iter().all(|p| server_span(spans, p).is_some())
        })
        .await;
    for parent in parents {
        let server = server_span(&spans, parent).unwrap();
        assert_eq!(server.service, "baton");
        for (key, value) in [
            ("rpc.system", "grpc"),
            ("rpc.service", "baton.v1.DecisionService"),
            ("rpc.method", "Authorize"),
            ("rpc.grpc.status_code", "0"),
            ("baton.decision", "allow"),
            ("baton.caller", "Agent user-assistant"),
            ("baton.callee", "Agent data-analyst"),
            ("baton.principal", "User alice"),
            ("baton.scopes.requested", "2"),
            ("baton.scopes.granted", "2"),
            ("baton.scopes.refused", "0"),
            ("baton.cache", "evaluated"),
        ] {
            assert_eq!(
                server.attribute(key).as_deref(),
                Some(value),
                "`{key}` of {server:#?}"
            );
        }
        assert!(server.attribute("baton.bundle.version").is_some());
        let children: Vec<&str> = spans
            .iter()
            .filter(|r| r.span.parent_span_id == server.span.span_id)
            .map(|r| r.span.name.as_str())
            .collect();
        for child in ["baton.cache.lookup", "baton.evaluate", "baton.verdict.sign"] {
            assert!(children.contains(&child), "no `{child}` in {children:?}");
        }
        let lookup = spans
            .iter()
            .find(|r| {
                r.span.parent_span_id == server.span.span_id && r.span.name == "baton.cache.lookup"
            })
            .unwrap();
        assert_eq!(
            lookup.attribute("baton.cache.tier").as_deref(),
            Some("redis")
        );
    }
    assert!(
        server_span(&spans, unsampled).is_none(),
        "a call the caller did not sample was recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_start_a_trace_at_baton_are_recorded_one_in_ten_by_default() {
    const CALLS: usize = 400;
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let mut baton = Baton::start(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]);
    let mut client = baton.client().await;
    for _ in 0..CALLS {
        client.authorize(report()).await.unwrap();
    }
    // Shutdown exports what is queued before the process exits.
    baton.terminate();

    let is_server = |r: &Received| r.span.name == "baton.v1.DecisionService/Authorize";
    let spans = receiver
        .wait_for("a server span", |spans| spans.iter().any(is_server))
        .await;
    let recorded = spans.iter().filter(|r| is_server(r)).count();
    // Binomial(400, 0.1) has mean 40 and deviation 6: outside 10..=80 about once in 10^8 runs.
    assert!(
        (10..=80).contains(&recorded),
        "{recorded} of {CALLS} untraced calls were recorded"
    );
}
