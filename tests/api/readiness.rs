//! `/readyz` and gRPC health give one answer: ready while serving, not once draining starts.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;

use crate::helpers::spawn_app;

/// `GET path`: the whole reply, head and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
}

/// The status code of `GET path`.
async fn get_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    get(addr, path)
        .await
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn readyz_and_grpc_health_turn_not_ready_together_when_draining_starts() {
    let app = spawn_app().await;
    let http = app.running.http_addr;
    let mut health = HealthClient::new(app.channel.clone());
    // An open reflection stream holds the drain (health watches end as it starts), so the
    // server still answers after the shutdown signal.
    let (holding, requests) = tokio::sync::mpsc::channel::<ServerReflectionRequest>(1);
    let _open = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap();
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "baton.v1.DecisionService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    assert_eq!(get_status(http, "/readyz").await, 200);
    assert_eq!(get_status(http, "/healthz").await, 200);

    let stopping = tokio::spawn(app.shutdown());
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    assert_eq!(get_status(http, "/readyz").await, 503);
    // Alive, though not ready.
    assert_eq!(get_status(http, "/healthz").await, 200);

    drop(watch);
    drop(holding);
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn metrics_count_each_authorize_by_outcome() {
    let app = spawn_app().await;
    let http = app.running.http_addr;
    let mut client = app.client.clone();
    client
        .authorize(crate::helpers::report_request(
            "User:alice",
            &["finance.read"],
        ))
        .await
        .unwrap();
    client
        .authorize(crate::helpers::report_request(
            "User:alice",
            &["finance.read"],
        ))
        .await
        .unwrap();
    client
        .authorize(baton::pb::AuthorizeRequest::default())
        .await
        .expect_err("an empty request is refused");

    let reply = get(http, "/metrics").await;
    for line in [
        r#"baton_decisions_total{outcome="allow"} 2"#,
        r#"baton_decisions_total{outcome="error"} 1"#,
        "baton_authorize_duration_seconds_count 3",
        r#"baton_cache_lookups_total{tier="local",result="miss"} 1"#,
        r#"baton_cache_lookups_total{tier="local",result="hit"} 1"#,
    ] {
        assert!(reply.lines().any(|l| l == line), "no `{line}` in:\n{reply}");
    }
    assert!(
        reply.contains("content-type: application/openmetrics-text"),
        "{reply}"
    );
    // The standard process metrics, unprefixed, beside Baton's own.
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "process_threads ",
    ] {
        assert!(
            reply.lines().any(|l| l.starts_with(name)),
            "no `{name}` in:\n{reply}"
        );
    }
    assert_eq!(reply.matches("# EOF").count(), 1, "{reply}");
}
