//! Graceful shutdown: calls already received are answered, then the server future returns.

use std::future::Future;
use std::task::Poll;

use baton::pb::{self, Decision};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::{item_response, report_request, spawn_app};
use crate::spawn::DRAIN_TIMEOUT;

#[tokio::test]
async fn a_call_in_flight_is_answered_during_shutdown() {
    let app = spawn_app().await;
    let mut decisions = app.client.clone();
    let mut health = HealthClient::new(app.channel.clone());

    let requests = vec![report_request("User:alice", &["reports.generate", "finance.read"]); 100];
    let batch = decisions.batch_authorize(pb::BatchAuthorizeRequest { requests });
    tokio::pin!(batch);
    // One poll queues the batch on the connection. HTTP/2 opens streams in order, so once the
    // health check below is answered, the server has received the batch's stream too: it is in
    // flight when the shutdown starts.
    let early = std::future::poll_fn(|cx| Poll::Ready(batch.as_mut().poll(cx))).await;
    assert!(
        early.is_pending(),
        "the batch cannot be answered without polling"
    );
    let serving = health
        .check(HealthCheckRequest::default())
        .await
        .expect("a health answer")
        .into_inner();
    assert_eq!(serving.status(), ServingStatus::Serving);

    let (answered, stopped) = tokio::join!(batch, app.shutdown());

    let results = answered
        .expect("the in-flight batch is answered")
        .into_inner()
        .results;
    assert_eq!(results.len(), 100);
    for result in &results {
        assert_eq!(item_response(result).decision(), Decision::Allow);
    }
    stopped.expect("the server stops cleanly");
}

#[tokio::test]
async fn after_shutdown_the_port_is_closed() {
    let mut app = spawn_app().await;
    let addr = app.addr;

    let before = app
        .client
        .authorize(report_request("User:alice", &["reports.generate"]))
        .await
        .expect("a decision before the shutdown")
        .into_inner();
    assert_eq!(before.decision(), Decision::Allow);

    app.shutdown().await.expect("the server stops cleanly");

    let connected = tokio::net::TcpStream::connect(addr).await;
    assert!(
        connected.is_err(),
        "{addr} still accepts connections after the shutdown"
    );
}

#[tokio::test]
async fn an_open_health_watch_does_not_hold_up_the_shutdown() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());

    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("a health watch")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("a first health status")
        .expect("the watch is open");
    assert_eq!(first.status(), ServingStatus::Serving);

    // The watcher learns the replica is leaving, then its watch ends, so the open watch does
    // not hold the process to the drain timeout (it used to, for the whole of it).
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.shutdown());
    let next = watch
        .message()
        .await
        .expect("a status update")
        .expect("the watch is still open");
    assert_eq!(next.status(), ServingStatus::NotServing);
    // The server ends the stream: with an error of the closing connection at worst, never
    // another status.
    if let Ok(more) = watch.message().await {
        assert!(more.is_none(), "a status after NOT_SERVING: {more:?}");
    }
    stopping
        .await
        .expect("the shutdown task does not panic")
        .expect("the server stops cleanly");
    assert!(
        started.elapsed() < DRAIN_TIMEOUT / 2,
        "the open watch held the shutdown for {:?}",
        started.elapsed()
    );
    drop(watch);
}
