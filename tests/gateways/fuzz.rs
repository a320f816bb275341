//! Thousands of mutated requests on both gateway doors, from a fixed seed so a failure
//! reproduces: every answer is a clear 4xx (or a deny), never a 5xx and never an ALLOW. Each
//! base request is one the shipped bundle denies whoever is asking: a contractor reading
//! finance data straight from the analyst, so no single mutation can turn it into an allow.

use proptest::prelude::RngExt as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Value, json};

use crate::ext_authz::{Envoy, Http as EnvoyHttp, spawn};
use crate::helpers::spawn_baton;
use crate::http::Http;

const SEED: [u8; 32] = *b"baton-gateway-fuzz-seed-00000001";

/// Bytes and tokens that tend to break parsers.
const TOKENS: &[&str] = &[
    "null",
    "true",
    "-0",
    "1e400",
    "99999999999999999999999",
    "-9223372036854775809",
    "1.5",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "{}",
    "[]",
    "{\"baton\":{}}",
    "\"__entity\"",
    "{\"__extn\":{\"fn\":\"ip\",\"arg\":\"x\"}}",
];

fn mutate(rng: &mut TestRng, base: &[u8]) -> Vec<u8> {
    let mut body = base.to_vec();
    for _ in 0..rng.random_range(1..4) {
        let len = body.len().max(1);
        let at = rng.random_range(0..len).min(body.len());
        match rng.random_range(0..8) {
            0 if !body.is_empty() => {
                let i = at.min(body.len() - 1);
                body[i] = rng.random();
            }
            1 => {
                let end = (at + rng.random_range(1..16)).min(body.len());
                body.drain(at..end);
            }
            2 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                body.splice(at..at, token.bytes());
            }
            3 => body.truncate(at),
            4 => {
                let end = (at + rng.random_range(1..32)).min(body.len());
                let copy = body[at..end].to_vec();
                body.splice(at..at, copy);
            }
            5 => {
                let depth = rng.random_range(1..300);
                let deep = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                body.splice(at..at, deep.bytes());
            }
            6 => {
                let long = "\"".to_owned() + &"x".repeat(rng.random_range(1..70_000)) + "\"";
                body.splice(at..at, long.bytes());
            }
            _ => {
                let i = at.min(body.len().saturating_sub(1));
                if let Some(b) = body.get_mut(i) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
        }
    }
    body
}

fn denied_evaluation() -> Value {
    json!({
        "subject": { "type": "user", "id": "carol" },
        "action": { "name": "finance.read" },
        "resource": { "type": "agent", "id": "data-analyst", "properties": { "owner": { "__entity": { "type": "Group", "id": "ops" } } } },
        "context": { "quarter": "Q4", "amount": 3, "baton": { "transaction_id": "t-1" } },
    })
}

fn denied_batch() -> Value {
    json!({
        "subject": { "type": "user", "id": "carol" },
        "resource": { "type": "agent", "id": "data-analyst" },
        "options": { "evaluations_semantic": "permit_on_first_permit" },
        "evaluations": [
            { "action": { "name": "finance.read" } },
            { "action": { "name": "finance.write" }, "context": { "reason": "x" } },
            { "action": { "name": "reports.generate" } },
        ],
    })
}

/// Every decision in an AuthZEN answer.
fn decisions(answer: &Value) -> Vec<&Value> {
    match answer.get("evaluations").and_then(Value::as_array) {
        Some(items) => items.iter().map(|a| &a["decision"]).collect(),
        None => vec![&answer["decision"]],
    }
}

#[tokio::test]
async fn mutated_authzen_bodies_get_no_5xx_and_no_allow() {
    let baton = spawn_baton().await;
    let http = Http::new(baton.http_addr);
    let bases = [
        ("/access/v1/evaluation", denied_evaluation().to_string()),
        ("/access/v1/evaluations", denied_batch().to_string()),
    ];
    for (path, base) in &bases {
        let reply = http
            .post_json(path, &serde_json::from_str(base).unwrap())
            .await;
        assert_eq!(
            reply.status,
            200,
            "the base request is answered: {}",
            reply.text()
        );
        assert!(decisions(&reply.json()).iter().all(|d| **d == json!(false)));
    }
    let content_types = [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/problem+json",
        "text/plain",
        "",
    ];
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &SEED);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..3000 {
        let (path, base) = &bases[i % bases.len()];
        let body = mutate(&mut rng, base.as_bytes());
        let content_type = content_types[rng.random_range(0..content_types.len())];
        let headers: Vec<(&str, &str)> = if content_type.is_empty() {
            Vec::new()
        } else {
            vec![("content-type", content_type)]
        };
        let reply = http.send("POST", path, &headers, body.clone()).await;
        *statuses.entry(reply.status).or_default() += 1;
        let shown = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        assert!(
            reply.status < 500,
            "{} for {path} {}: {}",
            reply.status,
            shown(),
            reply.text()
        );
        let answer = reply.json();
        if reply.status == 200 {
            for decision in decisions(&answer) {
                assert_eq!(
                    decision,
                    &json!(false),
                    "an ALLOW for {}: {answer}",
                    shown()
                );
            }
        } else {
            assert!(
                [400, 413, 415].contains(&reply.status),
                "{} for {}",
                reply.status,
                shown()
            );
            assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    // The mutations reached past the parser: some bodies still decoded and were decided.
    assert!(statuses.get(&200).is_some_and(|n| *n > 100), "{statuses:?}");
    assert!(statuses.get(&400).is_some_and(|n| *n > 100), "{statuses:?}");
}

/// A string mutated as a header or field value might be.
fn mutated_text(rng: &mut TestRng, base: &str) -> String {
    let bytes = mutate(rng, base.as_bytes());
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn mutated_envoy_checks_get_no_5xx_and_no_allow() {
    let (_baton, envoy): (_, Envoy) = spawn("", None).await;
    let base = EnvoyHttp::get("analyst.corp.example", "/db/q4")
        .header("x-baton-caller", "User:carol")
        .extension("baton.scopes", "finance.read")
        .extension("baton.callee", "Agent:data-analyst");
    assert!(
        !envoy.check(&base).await.is_ok(),
        "the base check is denied"
    );

    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &SEED);
    let mut denied_by_policy = 0;
    for _ in 0..2000 {
        let mut http = base.clone();
        match rng.random_range(0..7) {
            0 => http.host = mutated_text(&mut rng, &http.host),
            1 => http.path = mutated_text(&mut rng, &http.path),
            2 => http.headers[0].1 = mutated_text(&mut rng, &http.headers[0].1),
            3 => http.extensions[0].1 = mutated_text(&mut rng, &http.extensions[0].1),
            4 => http.extensions[1].1 = mutated_text(&mut rng, &http.extensions[1].1),
            5 => {
                let token = format!(
                    "Bearer {}",
                    mutated_text(
                        &mut rng,
                        "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJ1cm46YmF0b24ifQ.c2ln"
                    )
                );
                http = http.header("authorization", &token);
            }
            _ => {
                http.principal =
                    mutated_text(&mut rng, "spiffe://corp.example/agent/user-assistant")
            }
        }
        let checked = envoy.check(&http).await;
        assert!(!checked.is_ok(), "an ALLOW for {:?}", http.check_request());
        let (status, body) = checked.denied();
        assert!(
            [400, 401, 403].contains(&status),
            "{status} for {:?}: {body}",
            http.check_request()
        );
        if status == 403 {
            denied_by_policy += 1;
        }
    }
    assert!(denied_by_policy > 100, "mutations reached the decision");
}
