//! Every public AuthZEN interop decision (`../shared/authzen/`, as published by the OpenID
//! AuthZEN working group) asked of the real HTTP server serving the example bundles under
//! `examples/authzen/`: 100% must pass.

use std::path::{Path, PathBuf};

use baton::mapping::GatewayMapping;
use serde_json::{Value, json};

use crate::helpers::{Baton, Options, spawn_baton_with};
use crate::http::Http;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The interop data, vendored unchanged under `tests/data/authzen/`.
fn decisions(file: &str) -> Value {
    let path = repo("tests/data/authzen").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the interop decisions at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("interop decisions are JSON")
}

async fn baton_for(example: &str) -> (Baton, Http) {
    let dir = repo("examples/authzen").join(example);
    let mapping = GatewayMapping::from_file(&dir.join("gateway-mapping.toml"))
        .expect("the example's gateway mapping is valid");
    let baton = spawn_baton_with(Options {
        bundle: Some(dir),
        mapping: Some(mapping),
        ..Options::default()
    })
    .await;
    let http = Http::new(baton.http_addr);
    (baton, http)
}

/// Asks every single evaluation of `cases` one by one, then all of them as one batch; returns
/// how many passed of how many asked, with a line for each failure.
async fn run_singles(http: &Http, cases: &[Value]) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let reply = http
            .post_json("/access/v1/evaluation", &case["request"])
            .await;
        let got = (reply.status == 200).then(|| reply.json()["decision"].clone());
        if got.as_ref() != Some(&case["expected"]) {
            failures.push(format!(
                "case {i} {}: expected {}, got {} {}",
                case["request"],
                case["expected"],
                reply.status,
                reply.text()
            ));
        }
    }
    let batch = json!({
        "evaluations": cases.iter().map(|c| c["request"].clone()).collect::<Vec<_>>(),
    });
    let reply = http.post_json("/access/v1/evaluations", &batch).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answers = reply.json()["evaluations"].as_array().cloned().unwrap();
    assert_eq!(answers.len(), cases.len(), "one answer per item");
    for (i, (case, answer)) in cases.iter().zip(&answers).enumerate() {
        if answer["decision"] != case["expected"] {
            failures.push(format!(
                "batch item {i}: expected {}, got {answer}",
                case["expected"]
            ));
        }
    }
    (cases.len() * 2, failures)
}

fn report(name: &str, asked: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{name}: {} of {asked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_todo_decision_of_the_final_interop_file_passes() {
    let (_baton, http) = baton_for("todo").await;
    let file = decisions("todo/decisions-authorization-api-1_0-02.json");
    let singles = file["evaluation"].as_array().unwrap();
    assert_eq!(singles.len(), 40);
    let (asked, mut failures) = run_singles(&http, singles).await;

    let batches = file["evaluations"].as_array().unwrap();
    assert_eq!(batches.len(), 3);
    for (i, case) in batches.iter().enumerate() {
        let reply = http
            .post_json("/access/v1/evaluations", &case["request"])
            .await;
        let expected: Vec<&Value> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["decision"])
            .collect();
        let got: Vec<Value> = if reply.status == 200 {
            reply.json()["evaluations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["decision"].clone())
                .collect()
        } else {
            Vec::new()
        };
        if got.iter().collect::<Vec<_>>() != expected {
            failures.push(format!(
                "batch {i}: expected {expected:?}, got {} {}",
                reply.status,
                reply.text()
            ));
        }
    }
    report("todo 1.0-02", asked + batches.len(), &failures);
}

#[tokio::test]
async fn every_todo_decision_of_the_earlier_interop_file_passes_unknown_members_and_all() {
    let (_baton, http) = baton_for("todo").await;
    let file = decisions("todo/decisions-authorization-api-1_0-01.json");
    let singles = file["evaluation"].as_array().unwrap();
    assert_eq!(singles.len(), 40);
    assert!(
        singles
            .iter()
            .any(|c| c["request"]["subject"].get("_note").is_some()),
        "the file still carries the unknown member this test is about"
    );
    let (asked, failures) = run_singles(&http, singles).await;
    report("todo 1.0-01", asked, &failures);
}

#[tokio::test]
async fn every_api_gateway_decision_passes() {
    let (_baton, http) = baton_for("api-gateway").await;
    let file = decisions("api-gateway/decisions.json");
    let singles = file["evaluation"].as_array().unwrap();
    assert_eq!(singles.len(), 25);
    let (asked, failures) = run_singles(&http, singles).await;
    report("api-gateway", asked, &failures);
}
