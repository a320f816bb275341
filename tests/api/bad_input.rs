//! Malformed questions are `INVALID_ARGUMENT` naming the field, never a verdict.

use baton::pb::{self, Decision};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    context, entity, item_error, item_fields, item_response, report_request, spawn_app,
    violated_fields,
};

fn good() -> pb::AuthorizeRequest {
    report_request("User:alice", &["reports.generate", "finance.read"])
}

/// The good request changed by `change`.
fn with(change: impl FnOnce(&mut pb::AuthorizeRequest)) -> pb::AuthorizeRequest {
    let mut request = good();
    change(&mut request);
    request
}

fn with_context(object: Value) -> pb::AuthorizeRequest {
    with(|r| r.context = Some(context(object)))
}

fn typed(kind: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    })
}

/// `{"n": {"n": … {"leaf": 1}}}` with `levels` records in all.
fn nested(levels: usize) -> Value {
    (1..levels).fold(json!({ "leaf": 1 }), |inner, _| json!({ "n": inner }))
}

fn cases() -> Vec<(&'static str, pb::AuthorizeRequest, String)> {
    let long_id = "a".repeat(257);
    let long_scope = "s".repeat(129);
    vec![
        (
            "empty caller id",
            with(|r| r.caller = typed("Agent", "")),
            "caller.id".into(),
        ),
        (
            "caller id over 256 bytes",
            with(|r| r.caller = typed("Agent", &long_id)),
            "caller.id".into(),
        ),
        (
            "control character in an id",
            with(|r| r.principal = typed("User", "ali\nce")),
            "principal.id".into(),
        ),
        (
            "unknown caller type",
            with(|r| r.caller = typed("Robot", "user-assistant")),
            "caller.type".into(),
        ),
        (
            "empty callee type",
            with(|r| r.callee = typed("", "data-analyst")),
            "callee.type".into(),
        ),
        (
            "callee that is not an agent",
            with(|r| r.callee = typed("Service", "monitoring")),
            "callee.type".into(),
        ),
        (
            "user calling for someone else",
            with(|r| r.caller = typed("User", "dave")),
            "caller.type".into(),
        ),
        ("missing caller", with(|r| r.caller = None), "caller".into()),
        ("missing callee", with(|r| r.callee = None), "callee".into()),
        (
            "missing principal",
            with(|r| r.principal = None),
            "principal".into(),
        ),
        ("no scopes", with(|r| r.scopes.clear()), "scopes".into()),
        (
            "65 scopes",
            with(|r| r.scopes = (0..65).map(|i| format!("scope-{i}")).collect()),
            "scopes".into(),
        ),
        (
            "scope over 128 bytes",
            with(|r| r.scopes.push(long_scope.clone())),
            "scopes[2]".into(),
        ),
        (
            "empty scope",
            with(|r| r.scopes.push(String::new())),
            "scopes[2]".into(),
        ),
        (
            "empty ceiling scope",
            with(|r| {
                r.ceiling = Some(pb::ScopeCeiling {
                    scopes: vec![String::new()],
                });
            }),
            "ceiling.scopes[0]".into(),
        ),
        (
            "unknown type in the delegation chain",
            with(|r| r.delegation_chain = vec![typed("Robot", "x").unwrap()]),
            "delegation_chain[0].type".into(),
        ),
        (
            "user in the middle of the chain",
            with(|r| r.delegation_chain = vec![entity("User:dave")]),
            "delegation_chain[0].type".into(),
        ),
        (
            "33 delegation chain entries",
            with(|r| {
                r.delegation_chain = (0..33).map(|i| entity(&format!("Agent:a{i}"))).collect();
            }),
            "delegation_chain".into(),
        ),
        (
            "transaction id over 256 bytes",
            with(|r| r.transaction_id = long_id.clone()),
            "transaction_id".into(),
        ),
        (
            "null in the context",
            with_context(json!({ "amount": null })),
            "context.amount".into(),
        ),
        (
            "fractional number in the context",
            with_context(json!({ "amount": 12.5 })),
            "context.amount".into(),
        ),
        (
            "number beyond 64 bits in the context",
            with_context(json!({ "amount": 1e300 })),
            "context.amount".into(),
        ),
        (
            "fraction inside a list in the context",
            with_context(json!({ "amounts": [1, 0.5] })),
            "context.amounts[1]".into(),
        ),
        (
            "context nested 9 levels",
            with_context(nested(9)),
            format!("context{}", ".n".repeat(8)),
        ),
        (
            "context over 16 KiB",
            with_context(json!({ "reason": "x".repeat(17 * 1024) })),
            "context".into(),
        ),
        (
            "context attribute the schema does not declare",
            with_context(json!({ "colour": "red" })),
            "context.colour".into(),
        ),
        (
            "context record the schema does not declare",
            with_context(json!({ "customer": { "tier": "gold" } })),
            "context.customer".into(),
        ),
        (
            "context attribute of the wrong type",
            with_context(json!({ "amount": "750" })),
            "context.amount".into(),
        ),
        (
            "context record where the schema has a string",
            with_context(json!({ "currency": { "code": "EUR" } })),
            "context.currency".into(),
        ),
        (
            "context list where the schema has a string",
            with_context(json!({ "reason": ["late", "damaged"] })),
            "context.reason".into(),
        ),
        (
            "context entity reference where the schema has a number",
            with_context(json!({ "amount": { "__entity": { "type": "Agent", "id": "x" } } })),
            "context.amount".into(),
        ),
        (
            "request over 64 KiB",
            with_context(json!({ "reason": "x".repeat(70 * 1024) })),
            "request".into(),
        ),
        (
            "request of 1 MiB",
            with_context(json!({ "reason": "x".repeat(1024 * 1024) })),
            "request".into(),
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_is_invalid_argument_naming_its_field() {
    let mut app = spawn_app().await;

    for (name, request, field) in cases() {
        let status = app
            .client
            .authorize(request)
            .await
            .expect_err(&format!("{name}: must not be decided"));
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        assert_eq!(violated_fields(&status), [field.as_str()], "{name}");
    }

    // None of them hurt the server.
    let response = app
        .client
        .authorize(good())
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(response.decision(), Decision::Allow);
}

#[tokio::test]
async fn every_bad_input_fails_only_its_batch_item() {
    let mut app = spawn_app().await;

    let cases = cases();
    // A good item after each bad one.
    let requests = cases
        .iter()
        .flat_map(|(_, request, _)| [request.clone(), good()])
        .collect();
    let results = app
        .client
        .batch_authorize(pb::BatchAuthorizeRequest { requests })
        .await
        .expect("a batch")
        .into_inner()
        .results;

    assert_eq!(results.len(), 2 * cases.len());
    for (i, (name, _, field)) in cases.iter().enumerate() {
        let (bad, good) = (2 * i, 2 * i + 1);
        let error = item_error(&results[bad]);
        assert_eq!(error.code, "INVALID_ARGUMENT", "{name}");
        // A whole item too large is named by its index alone.
        let located = if field == "request" {
            format!("requests[{bad}]")
        } else {
            format!("requests[{bad}].{field}")
        };
        assert_eq!(item_fields(error), [located.as_str()], "{name}");
        assert_eq!(
            item_response(&results[good]).decision(),
            Decision::Allow,
            "the item after {name}"
        );
    }
}

/// A context the task type refuses says what the schema declares and what the request sent,
/// never the value itself.
#[tokio::test]
async fn context_violations_say_what_was_expected_and_given() {
    let mut app = spawn_app().await;
    let cases = [
        (
            json!({ "amount": "750" }),
            "context.amount",
            "must be a `Long` as the schema's task type declares, got a string",
        ),
        (
            json!({ "colour": "red" }),
            "context.colour",
            "is not an attribute of the task type: it declares `amount`, `currency`, `quarter`, `reason`",
        ),
    ];
    for (task, field, description) in cases {
        let status = app
            .client
            .authorize(with_context(task.clone()))
            .await
            .expect_err("a mistyped context is not decided");
        assert_eq!(status.code(), Code::InvalidArgument, "{task}: {status:?}");
        let bad = status
            .get_details_bad_request()
            .expect("BadRequest details");
        let violations: Vec<(&str, &str)> = bad
            .field_violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(violations, [(field, description)], "{task}");
    }
}

/// Over the 8 MiB the transport decodes, with the rest of the request well-formed.
fn over_transport_limit() -> pb::AuthorizeRequest {
    with_context(json!({ "reason": "x".repeat(9 * 1024 * 1024) }))
}

#[tokio::test]
async fn a_message_over_the_transport_limit_is_never_decided() {
    let mut app = spawn_app().await;

    let single = app.client.authorize(over_transport_limit()).await;
    assert!(single.is_err(), "a 9 MiB message was decided: {single:?}");
    let batch = app
        .client
        .batch_authorize(pb::BatchAuthorizeRequest {
            requests: vec![good(), over_transport_limit()],
        })
        .await;
    assert!(batch.is_err(), "a 9 MiB batch was decided: {batch:?}");

    // The connection is still usable.
    let response = app
        .client
        .authorize(good())
        .await
        .expect("a decision")
        .into_inner();
    assert_eq!(response.decision(), Decision::Allow);
}

/// Tonic refuses a message over the decoding limit before any handler sees it, with
/// `OUT_OF_RANGE`; the README documents this code.
#[tokio::test]
async fn a_message_over_the_transport_limit_is_refused_before_decoding() {
    let mut app = spawn_app().await;

    let status = app
        .client
        .authorize(over_transport_limit())
        .await
        .expect_err("a 9 MiB message is never decided");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    let status = app
        .client
        .batch_authorize(pb::BatchAuthorizeRequest {
            requests: vec![good(), over_transport_limit()],
        })
        .await
        .expect_err("a 9 MiB batch is never decided, not even its good items");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}
