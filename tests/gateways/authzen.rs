//! The AuthZEN door with the shipped bundle: agent chains carried in `context.baton`, revocation,
//! batches and their semantics, PEP authentication, and bad input answered with a 4xx that
//! names the problem.

use baton::delegation::trust::Gateways;
use baton::revocation::Target;
use serde_json::{Value, json};

use crate::helpers::{Baton, Options, spawn_baton, spawn_baton_with};
use crate::http::{Http, Reply};

const ONE: &str = "/access/v1/evaluation";
const MANY: &str = "/access/v1/evaluations";

fn reference(typed: &str) -> Value {
    let (kind, id) = typed.split_once(':').unwrap();
    json!({ "type": kind, "id": id })
}

/// `subject` asks to do `action` at `resource`, with `baton` as Baton's own context members.
fn evaluation(subject: &str, action: &str, resource: &str, baton: Value) -> Value {
    json!({
        "subject": reference(subject),
        "action": { "name": action },
        "resource": reference(resource),
        "context": { "baton": baton },
    })
}

async fn decided(http: &Http, body: &Value) -> Value {
    let reply = http.post_json(ONE, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn door(baton: &Baton) -> Http {
    Http::new(baton.http_addr)
}

/// The db.read chain of the shipped bundle, hop by hop over AuthZEN, each hop presenting the
/// previous hop's verdict: alice → user-assistant → data-analyst → database-agent →
/// Tool:sql-query. Returns each hop's answer.
async fn db_chain(http: &Http) -> Vec<Value> {
    let hops = [
        ("User:alice", "Agent:user-assistant"),
        ("Agent:user-assistant", "Agent:data-analyst"),
        ("Agent:data-analyst", "Agent:database-agent"),
        ("Agent:database-agent", "Tool:sql-query"),
    ];
    let mut answers: Vec<Value> = Vec::new();
    for (subject, resource) in hops {
        let baton = match answers.last() {
            None => json!({}),
            Some(previous) => json!({ "subject_token": previous["context"]["verdict"] }),
        };
        let answer = decided(http, &evaluation(subject, "db.read", resource, baton)).await;
        assert_eq!(answer["decision"], true, "{subject} → {resource}: {answer}");
        answers.push(answer);
    }
    answers
}

#[tokio::test]
async fn an_agent_chain_is_decided_hop_by_hop_with_each_hops_verdict() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let answers = db_chain(&http).await;
    let last = &answers[3]["context"];
    assert!(
        last["verdict"]
            .as_str()
            .is_some_and(|v| v.split('.').count() == 3)
    );
    assert!(last["ttl_secs"].as_u64().is_some_and(|t| t > 0));
    // One task: every hop carries the first hop's transaction.
    let first = &answers[0]["context"]["transaction_id"];
    assert!(
        answers
            .iter()
            .all(|a| &a["context"]["transaction_id"] == first)
    );

    // A chain cannot be shortened: the database agent presenting the assistant's verdict is
    // not its holder.
    let shortened = decided(
        &http,
        &evaluation(
            "Agent:database-agent",
            "db.read",
            "Tool:sql-query",
            json!({ "subject_token": answers[0]["context"]["verdict"] }),
        ),
    )
    .await;
    assert_eq!(shortened["decision"], false);
    assert_eq!(shortened["context"]["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(
        shortened["context"]["error"]["reason"],
        "CALLER_NOT_TOKEN_HOLDER"
    );

    // Nor widened: the analyst may not ask for what the assistant's grant did not hold.
    let widened = decided(
        &http,
        &evaluation(
            "Agent:data-analyst",
            "finance.write",
            "Agent:database-agent",
            json!({ "subject_token": answers[1]["context"]["verdict"] }),
        ),
    )
    .await;
    assert_eq!(widened["decision"], false, "{widened}");

    // A forged token is no credential at all.
    let forged = decided(
        &http,
        &evaluation(
            "Agent:user-assistant",
            "db.read",
            "Agent:data-analyst",
            json!({ "subject_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9." }),
        ),
    )
    .await;
    assert_eq!(forged["decision"], false);
    assert_eq!(forged["context"]["error"]["code"], "UNAUTHENTICATED");

    // A tool never calls onwards.
    let onwards = http
        .post_json(
            ONE,
            &evaluation(
                "Tool:sql-query",
                "db.read",
                "Agent:data-analyst",
                json!({ "subject_token": answers[3]["context"]["verdict"] }),
            ),
        )
        .await;
    assert_eq!(onwards.status, 400, "{}", onwards.text());
    assert!(
        onwards.text().contains("subject.type"),
        "{}",
        onwards.text()
    );
}

#[tokio::test]
async fn a_first_hop_may_name_its_principal_and_the_confused_deputy_rule_holds() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let for_alice = evaluation(
        "Agent:user-assistant",
        "reports.generate",
        "Agent:data-analyst",
        json!({ "principal": { "type": "user", "id": "alice" } }),
    );
    assert_eq!(decided(&http, &for_alice).await["decision"], true);
    // carol is a contractor: the assistant may not read finance data for her.
    let for_carol = evaluation(
        "Agent:user-assistant",
        "finance.read",
        "Agent:data-analyst",
        json!({ "principal": { "type": "user", "id": "carol" } }),
    );
    let answer = decided(&http, &for_carol).await;
    assert_eq!(answer["decision"], false);
    assert_eq!(
        answer["context"]["refused"][0]["reason"],
        "FORBIDDEN_BY_POLICY"
    );
    assert!(answer["context"]["reason_admin"]["en"].is_string());
    assert!(answer["context"].get("verdict").is_none());
}

#[tokio::test]
async fn a_revoked_agent_is_denied_through_this_door() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let answers = db_chain(&http).await;
    baton.revoke(Target::Agent("data-analyst".to_owned())).await;
    let after = decided(
        &http,
        &evaluation(
            "Agent:data-analyst",
            "db.read",
            "Agent:database-agent",
            json!({ "subject_token": answers[1]["context"]["verdict"] }),
        ),
    )
    .await;
    assert_eq!(after["decision"], false);
    assert_eq!(after["context"]["denial"]["code"], "REVOKED");
    // Further down the chain too: the revoked agent is in every later hop's chain.
    let below = decided(
        &http,
        &evaluation(
            "Agent:database-agent",
            "db.read",
            "Tool:sql-query",
            json!({ "subject_token": answers[2]["context"]["verdict"] }),
        ),
    )
    .await;
    assert_eq!(below["decision"], false);
    assert_eq!(below["context"]["denial"]["code"], "REVOKED");
}

#[tokio::test]
async fn an_allow_awaiting_a_human_is_false_with_the_approval_to_wait_for() {
    let baton = spawn_baton().await;
    let mut refund = evaluation(
        "Agent:support-assistant",
        "refunds.issue",
        "Agent:refund-agent",
        json!({ "principal": { "type": "User", "id": "bob" } }),
    );
    refund["context"]["amount"] = json!(750);
    let answer = decided(&door(&baton), &refund).await;
    assert_eq!(answer["decision"], false, "{answer}");
    assert!(answer["context"]["approval_id"].is_string(), "{answer}");
    assert_eq!(answer["context"]["approval_status"], "pending");
}

fn batch_items() -> Vec<Value> {
    vec![
        json!({ "resource": reference("Agent:user-assistant"), "action": { "name": "reports.generate" } }),
        json!({ "resource": reference("Agent:user-assistant"), "action": { "name": "no.such.scope" } }),
        json!({ "resource": { "type": "Ticket", "id": "1" } }),
        json!({ "resource": reference("Agent:user-assistant"), "action": { "name": "finance.read" } }),
    ]
}

#[tokio::test]
async fn a_batch_takes_defaults_and_a_bad_item_fails_alone() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let body = json!({
        "subject": reference("User:alice"),
        "action": { "name": "reports.generate" },
        "evaluations": batch_items(),
    });
    let reply = http.post_json(MANY, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answers = reply.json()["evaluations"].as_array().cloned().unwrap();
    let decisions: Vec<&Value> = answers.iter().map(|a| &a["decision"]).collect();
    assert_eq!(
        decisions,
        [&json!(true), &json!(false), &json!(false), &json!(true)]
    );
    assert_eq!(
        answers[1]["context"]["refused"][0]["reason"],
        "UNKNOWN_SCOPE"
    );
    let error = &answers[2]["context"]["error"];
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert_eq!(error["fields"][0]["field"], "evaluations[2].resource.type");
}

#[tokio::test]
async fn the_three_semantics_stop_where_they_say() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let ask = |semantic: &str| {
        json!({
            "subject": reference("User:alice"),
            "options": { "evaluations_semantic": semantic },
            "evaluations": [
                { "resource": reference("Agent:user-assistant"), "action": { "name": "no.such.scope" } },
                { "resource": reference("Agent:user-assistant"), "action": { "name": "reports.generate" } },
                { "resource": reference("Agent:user-assistant"), "action": { "name": "no.such.scope" } },
            ],
        })
    };
    let decisions = |reply: Reply| -> Vec<bool> {
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["decision"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(
        decisions(http.post_json(MANY, &ask("execute_all")).await),
        [false, true, false]
    );
    assert_eq!(
        decisions(http.post_json(MANY, &ask("deny_on_first_deny")).await),
        [false]
    );
    assert_eq!(
        decisions(http.post_json(MANY, &ask("permit_on_first_permit")).await),
        [false, true]
    );
    let unknown = http.post_json(MANY, &ask("majority")).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text().contains("options.evaluations_semantic"));

    // Without items, the request is one evaluation and is answered as one.
    let single = json!({
        "subject": reference("User:alice"),
        "action": { "name": "reports.generate" },
        "resource": reference("Agent:user-assistant"),
        "evaluations": [],
    });
    let reply = http.post_json(MANY, &single).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["decision"], true);

    let items: Vec<Value> = (0..101).map(|_| batch_items()[0].clone()).collect();
    let too_many = http
        .post_json(
            MANY,
            &json!({ "subject": reference("User:alice"), "evaluations": items }),
        )
        .await;
    assert_eq!(too_many.status, 400);
    assert!(
        too_many.text().contains("over the limit of 100"),
        "{}",
        too_many.text()
    );
}

#[tokio::test]
async fn the_pep_authenticates_as_a_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateways");
    std::fs::write(&path, "pep 0123456789abcdef0123456789\n").unwrap();
    let baton = spawn_baton_with(Options {
        gateways: Some(Gateways::from_file(&path).unwrap()),
        ..Options::default()
    })
    .await;
    let http = door(&baton);
    let body = evaluation(
        "User:alice",
        "reports.generate",
        "Agent:user-assistant",
        json!({}),
    );

    let anonymous = http.post_json(ONE, &body).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.headers["www-authenticate"],
        r#"Bearer realm="baton""#
    );
    let wrong = http
        .post_json_as("0123456789abcdef012345678x", ONE, &body)
        .await;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let batch = http.post_json_as("nope", MANY, &body).await;
    assert_eq!(batch.status, 401);

    let pep = http
        .post_json_as("0123456789abcdef0123456789", ONE, &body)
        .await;
    assert_eq!(pep.status, 200, "{}", pep.text());
    assert_eq!(pep.json()["decision"], true);
}

#[tokio::test]
async fn the_metadata_names_the_endpoints_under_the_host_asked() {
    let baton = spawn_baton().await;
    let reply = door(&baton)
        .send(
            "GET",
            "/.well-known/authzen-configuration",
            &[
                ("host", "pdp.corp.example:8081"),
                ("x-request-id", "meta-1"),
            ],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-request-id"], "meta-1");
    let meta = reply.json();
    assert_eq!(
        meta["policy_decision_point"],
        "http://pdp.corp.example:8081"
    );
    assert_eq!(
        meta["access_evaluation_endpoint"],
        "http://pdp.corp.example:8081/access/v1/evaluation"
    );
    assert_eq!(
        meta["access_evaluations_endpoint"],
        "http://pdp.corp.example:8081/access/v1/evaluations"
    );
}

/// A bad request, its status, and what the error must name.
async fn refused(http: &Http, headers: &[(&str, &str)], body: &str, status: u16, names: &str) {
    let reply = http.send("POST", ONE, headers, body.to_owned()).await;
    assert_eq!(reply.status, status, "{body} → {}", reply.text());
    let error = reply.json();
    let text = error.to_string();
    assert!(text.contains(names), "{body} → {text} names no `{names}`");
    assert!(error["error"].is_string(), "{text}");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_problem() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let json = [("content-type", "application/json")];
    let good = evaluation(
        "User:alice",
        "reports.generate",
        "Agent:user-assistant",
        json!({}),
    );
    let with = |path: &str, value: Value| {
        let mut body = good.clone();
        let mut at = &mut body;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = &mut at[*part];
        }
        at[parts[parts.len() - 1]] = value;
        body.to_string()
    };

    refused(&http, &json, "{\"subject\": ", 400, "EOF while parsing").await;
    refused(&http, &json, "[1, 2]", 400, "body").await;
    refused(&http, &json, "{} {}", 400, "trailing characters").await;
    refused(
        &http,
        &json,
        "{\"action\": {\"name\": \"x\"}}",
        400,
        "subject",
    )
    .await;
    refused(
        &http,
        &json,
        &with("subject.type", json!(7)),
        400,
        "subject.type",
    )
    .await;
    refused(
        &http,
        &json,
        &with("subject.type", json!("robot")),
        400,
        "subject.type",
    )
    .await;
    refused(
        &http,
        &json,
        &with("subject.id", json!("")),
        400,
        "subject.id",
    )
    .await;
    refused(
        &http,
        &json,
        &with("resource.type", json!("Ticket")),
        400,
        "resource.type",
    )
    .await;
    refused(
        &http,
        &json,
        &with("resource.type", json!("User")),
        400,
        "resource.type",
    )
    .await;
    refused(
        &http,
        &json,
        &with("action.name", json!("")),
        400,
        "action.name",
    )
    .await;
    refused(&http, &json, &with("context", json!([1])), 400, "context").await;
    refused(
        &http,
        &json,
        &with("context.quarter", Value::Null),
        400,
        "context.quarter",
    )
    .await;
    refused(
        &http,
        &json,
        &with("context.amount", json!(1.5)),
        400,
        "context.amount",
    )
    .await;
    refused(
        &http,
        &json,
        &with("context.amount", json!("x")),
        400,
        "context.amount",
    )
    .await;
    refused(
        &http,
        &json,
        &with("context.baton.principal", json!({"type": "user"})),
        400,
        "context.baton",
    )
    .await;
    refused(
        &http,
        &json,
        &with("context.baton.hops", json!(3)),
        400,
        "context.baton",
    )
    .await;
    refused(
        &http,
        &json,
        &with(
            "resource.properties",
            json!({"x": {"y": {"z": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}}),
        ),
        400,
        "resource.properties",
    )
    .await;
    // Nesting past serde_json's own limit is refused while parsing, never recursed into.
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let nested = with("context.quarter", json!("DEEP")).replace("\"DEEP\"", &deep);
    refused(&http, &json, &nested, 400, "recursion limit").await;

    refused(
        &http,
        &[("content-type", "text/plain")],
        &good.to_string(),
        415,
        "text/plain",
    )
    .await;
    refused(&http, &[], &good.to_string(), 415, "content-type").await;
    // One evaluation is held to the size of one request, a batch to the message limit.
    let large = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    refused(&http, &json, &large, 413, "limit of 65536").await;
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let reply = http.send("POST", MANY, &json, huge).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    let batch = http.send("POST", MANY, &json, large).await;
    assert_eq!(batch.status, 400, "a batch may be larger: {}", batch.text());

    // The request id comes back on errors and answers alike.
    let reply = http
        .send(
            "POST",
            ONE,
            &[
                ("content-type", "application/json"),
                ("x-request-id", "req-42"),
            ],
            "{",
        )
        .await;
    assert_eq!(reply.headers["x-request-id"], "req-42");
    let reply = http
        .send(
            "POST",
            ONE,
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("x-request-id", "req-43"),
            ],
            good.to_string(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-request-id"], "req-43");
    assert_eq!(reply.json()["decision"], true);
}

/// A PEP that only enforces says `context.baton.omit_verdict`: the same decision, no verdict
/// signed; anything but a boolean is refused naming the member.
#[tokio::test]
async fn a_pep_that_only_enforces_gets_no_verdict() {
    let baton = spawn_baton().await;
    let http = door(&baton);
    let ask = |members: Value| {
        evaluation(
            "User:alice",
            "reports.generate",
            "Agent:user-assistant",
            members,
        )
    };

    let signed = decided(&http, &ask(json!({}))).await;
    assert_eq!(signed["decision"], true, "{signed}");
    assert!(signed["context"]["verdict"].is_string(), "{signed}");
    let omitted = decided(&http, &ask(json!({ "omit_verdict": true }))).await;
    assert_eq!(omitted["decision"], true, "{omitted}");
    assert!(omitted["context"].get("verdict").is_none(), "{omitted}");
    assert!(omitted["context"]["decision_id"].is_string(), "{omitted}");
    let asked = decided(&http, &ask(json!({ "omit_verdict": false }))).await;
    assert!(asked["context"]["verdict"].is_string(), "{asked}");

    let json = [("content-type", "application/json")];
    let body = ask(json!({ "omit_verdict": "yes" })).to_string();
    refused(&http, &json, &body, 400, "context.baton").await;
}
