//! The in-process decision cache: a repeated question skips evaluation but never reuses what
//! belongs to one answer (decision id, times, verdict).

use baton::pb::Decision;

use crate::helpers::{refund_request, report_request, spawn_app};

#[tokio::test]
async fn a_repeated_question_is_answered_from_the_cache_with_its_own_id_and_verdict() {
    let mut app = spawn_app().await;
    let ask = report_request("User:alice", &["reports.generate", "finance.read"]);

    let first = app
        .client
        .authorize(ask.clone())
        .await
        .unwrap()
        .into_inner();
    let second = app.client.authorize(ask).await.unwrap().into_inner();

    let stats = app.pipeline.cache().stats();
    assert_eq!((stats.hits, stats.misses), (1, 1));
    assert_eq!(second.decision(), Decision::Allow);
    assert_eq!(second.granted_scopes, first.granted_scopes);
    assert_eq!(second.determining_policies, first.determining_policies);
    assert_eq!(second.chain, first.chain);
    assert_ne!(second.decision_id, first.decision_id);
    assert_ne!(second.transaction_id, first.transaction_id);
    assert_ne!(
        second.verdict, first.verdict,
        "every answer is signed afresh"
    );
    assert!(second.expires_at.unwrap().seconds >= first.expires_at.unwrap().seconds);
}

#[tokio::test]
async fn a_different_context_is_a_different_question() {
    let mut app = spawn_app().await;
    let small = app
        .client
        .authorize(refund_request(200))
        .await
        .unwrap()
        .into_inner();
    let large = app
        .client
        .authorize(refund_request(750))
        .await
        .unwrap()
        .into_inner();
    let huge = app
        .client
        .authorize(refund_request(20_000))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(app.pipeline.cache().stats().hits, 0);
    assert!(small.obligations.is_empty());
    assert_eq!(large.obligations, ["human_approval"]);
    assert_eq!(huge.decision(), Decision::Deny);
}

#[tokio::test]
async fn invalid_requests_are_never_cached() {
    let mut app = spawn_app().await;
    let mut bad = report_request("User:alice", &["reports.generate"]);
    bad.callee.as_mut().unwrap().r#type = "User".into();
    for _ in 0..2 {
        assert!(app.client.authorize(bad.clone()).await.is_err());
    }
    assert_eq!(app.pipeline.cache().stats().hits, 0);
}
