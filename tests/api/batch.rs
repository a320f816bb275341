//! `BatchAuthorize`: answers in order, a malformed item fails only itself.

use baton::pb::{self, Decision};
use tonic::Code;

use crate::helpers::{
    context, entity, item_error, item_fields, item_response, refund_request, report_request,
    spawn_app, violated_fields,
};

fn batch(requests: Vec<pb::AuthorizeRequest>) -> pb::BatchAuthorizeRequest {
    pb::BatchAuthorizeRequest { requests }
}

/// The principal at the root of the answer's chain, as `Type id`.
fn principal_of(r: &pb::AuthorizeResponse) -> String {
    r.chain
        .first()
        .map(|e| format!("{} {}", e.r#type, e.id))
        .unwrap_or_default()
}

#[tokio::test]
async fn answers_come_back_in_request_order() {
    let mut app = spawn_app().await;

    let results = app
        .client
        .batch_authorize(batch(vec![
            report_request("User:alice", &["finance.read"]),
            report_request("User:carol", &["finance.read"]),
            refund_request(750),
            report_request("User:dave", &["reports.generate"]),
        ]))
        .await
        .expect("a batch")
        .into_inner()
        .results;

    let verdicts: Vec<(Decision, String)> = results
        .iter()
        .map(item_response)
        .map(|r| (r.decision(), principal_of(r)))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Decision::Allow, "User alice".to_owned()),
            (Decision::Deny, "User carol".to_owned()),
            (Decision::ApprovalRequired, "User bob".to_owned()),
            (Decision::Allow, "User dave".to_owned()),
        ]
    );
    assert_eq!(item_response(&results[2]).obligations, ["human_approval"]);
    let ids: std::collections::HashSet<&str> = results
        .iter()
        .map(|r| item_response(r).decision_id.as_str())
        .collect();
    assert_eq!(ids.len(), results.len(), "decision ids repeat in a batch");
}

#[tokio::test]
async fn a_bad_item_fails_only_itself() {
    let mut app = spawn_app().await;

    let mut no_caller = report_request("User:alice", &["reports.generate"]);
    no_caller.caller = None;
    let unknown_task_attribute = pb::AuthorizeRequest {
        context: Some(context(serde_json::json!({ "colour": "red" }))),
        ..report_request("User:alice", &["reports.generate"])
    };
    let user_in_the_middle = pb::AuthorizeRequest {
        delegation_chain: vec![entity("User:dave")],
        ..report_request("User:alice", &["reports.generate"])
    };
    let results = app
        .client
        .batch_authorize(batch(vec![
            report_request("User:alice", &["reports.generate"]),
            no_caller,
            report_request("User:carol", &["finance.read"]),
            unknown_task_attribute,
            user_in_the_middle,
            refund_request(300),
        ]))
        .await
        .expect("a batch with bad items still succeeds")
        .into_inner()
        .results;

    assert_eq!(results.len(), 6);
    assert_eq!(item_response(&results[0]).decision(), Decision::Allow);
    assert_eq!(item_response(&results[2]).decision(), Decision::Deny);
    assert_eq!(item_response(&results[5]).decision(), Decision::Allow);
    // Errors found while converting the wire message and while deciding are both located.
    for (i, field) in [
        (1, "requests[1].caller"),
        (3, "requests[3].context.colour"),
        (4, "requests[4].delegation_chain[0].type"),
    ] {
        let error = item_error(&results[i]);
        assert_eq!(error.code, "INVALID_ARGUMENT", "item {i}");
        assert!(!error.message.is_empty(), "item {i}");
        assert_eq!(item_fields(error), [field], "item {i}");
    }
}

#[tokio::test]
async fn an_oversized_item_is_refused_by_its_index() {
    let mut app = spawn_app().await;

    let oversized = pb::AuthorizeRequest {
        context: Some(context(
            serde_json::json!({ "reason": "x".repeat(70 * 1024) }),
        )),
        ..report_request("User:alice", &["reports.generate"])
    };
    let results = app
        .client
        .batch_authorize(batch(vec![
            report_request("User:alice", &["reports.generate"]),
            oversized,
        ]))
        .await
        .expect("a batch")
        .into_inner()
        .results;

    assert_eq!(item_response(&results[0]).decision(), Decision::Allow);
    assert_eq!(item_fields(item_error(&results[1])), ["requests[1]"]);
}

#[tokio::test]
async fn a_full_batch_is_answered_whole() {
    let mut app = spawn_app().await;

    let requests = (0..100)
        .map(|i| {
            let principal = if i % 2 == 0 {
                "User:alice"
            } else {
                "User:carol"
            };
            report_request(principal, &["finance.read"])
        })
        .collect();
    let results = app
        .client
        .batch_authorize(batch(requests))
        .await
        .expect("100 items are within the limit")
        .into_inner()
        .results;

    assert_eq!(results.len(), 100);
    for (i, result) in results.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Decision::Allow
        } else {
            Decision::Deny
        };
        assert_eq!(item_response(result).decision(), expected, "item {i}");
    }
}

#[tokio::test]
async fn an_over_limit_batch_is_refused_whole() {
    let mut app = spawn_app().await;

    let requests = vec![report_request("User:alice", &["reports.generate"]); 101];
    let status = app
        .client
        .batch_authorize(batch(requests))
        .await
        .expect_err("101 items are over the limit");

    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["requests"]);
}

#[tokio::test]
async fn an_empty_batch_gets_no_results() {
    let mut app = spawn_app().await;

    let results = app
        .client
        .batch_authorize(batch(Vec::new()))
        .await
        .expect("an empty batch")
        .into_inner()
        .results;

    assert!(results.is_empty());
}
