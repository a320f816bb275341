//! Writes one request per door, all asking the same question, as the bytes a load generator
//! sends: `authorize.grpc` (a gRPC-framed `AuthorizeRequest`), `check.grpc` (a gRPC-framed
//! Envoy `CheckRequest`) and `evaluation.json` (an AuthZEN evaluation). The question: alice, by
//! herself, asks her assistant for `reports.generate` under the example bundle; each door turns
//! it into the same hop, so all three share one cache entry. `benches/doors.sh` sends them with
//! h2load. It also writes the bodies `benches/compare.sh` sends (see below).
//!
//! cargo run --release --example door_bodies -- <dir>

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use baton::pb;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use prost::Message;

/// A gRPC message frame: uncompressed flag, big-endian length, the message.
fn framed(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn entity(kind: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: kind.into(),
        id: id.into(),
    })
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: door_bodies <dir>"));
    std::fs::create_dir_all(&dir).unwrap();
    let alice = || {
        Some(pb::EntityRef {
            r#type: "User".into(),
            id: "alice".into(),
        })
    };
    let authorize = pb::AuthorizeRequest {
        caller: alice(),
        callee: Some(pb::EntityRef {
            r#type: "Agent".into(),
            id: "user-assistant".into(),
        }),
        principal: alice(),
        scopes: vec!["reports.generate".into()],
        ..Default::default()
    };
    std::fs::write(dir.join("authorize.grpc"), framed(&authorize)).unwrap();

    // The questions `benches/compare.sh` asks: alice's assistant asks the data analyst for
    // two scopes under the example bundle, with a verdict and without; and, under a generated
    // bundle (tests/support/synthetic.rs), agent-3 calls its partner agent-22 for two scopes.
    let human_led = pb::AuthorizeRequest {
        caller: entity("Agent", "user-assistant"),
        callee: entity("Agent", "data-analyst"),
        principal: alice(),
        scopes: vec!["reports.generate".into(), "finance.read".into()],
        ..Default::default()
    };
    std::fs::write(dir.join("human-led.grpc"), framed(&human_led)).unwrap();
    let no_verdict = pb::AuthorizeRequest {
        omit_verdict: true,
        ..human_led
    };
    std::fs::write(dir.join("human-led-no-verdict.grpc"), framed(&no_verdict)).unwrap();
    let synthetic = pb::AuthorizeRequest {
        caller: entity("Agent", "agent-3"),
        callee: entity("Agent", "agent-22"),
        principal: alice(),
        scopes: vec!["read".into(), "write".into()],
        ..Default::default()
    };
    std::fs::write(dir.join("synthetic.grpc"), framed(&synthetic)).unwrap();

    // As Envoy sends it: the route names the hop, the trusted edge header the caller.
    let headers: HashMap<String, String> = [
        (":authority", "assistant.corp.example"),
        (":method", "GET"),
        (":path", "/ask"),
        ("x-baton-caller", "User:alice"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("x-request-id", "6a1e29a4-6c4e-4b8f-9d3e-1f2a3b4c5d6e"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let check = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "8431".into(),
                    method: "GET".into(),
                    headers,
                    path: "/ask".into(),
                    host: "assistant.corp.example".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: [
                ("baton.callee".to_owned(), "Agent:user-assistant".to_owned()),
                ("baton.scopes".to_owned(), "reports.generate".to_owned()),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        }),
    };
    std::fs::write(dir.join("check.grpc"), framed(&check)).unwrap();

    let evaluation = serde_json::json!({
        "subject": { "type": "user", "id": "alice" },
        "action": { "name": "reports.generate" },
        "resource": { "type": "agent", "id": "user-assistant" },
    });
    std::fs::write(dir.join("evaluation.json"), evaluation.to_string()).unwrap();
}
