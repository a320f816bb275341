//! Tokens and context values never reach the logs or the exported spans, at any level: a full
//! run at `trace` with planted secrets, in both log formats.

use baton::pb;
use baton::transport::convert::struct_from_json;
use tonic::metadata::MetadataValue;

use crate::otlp::Receiver;
use crate::process::Baton;

const GATEWAY_TOKEN: &str = "gw-planted-3f9a1c7e5b2d4f60";
const CONTEXT_VALUE: &str = "ctx-planted-8e1d2c3b4a59";
const SUBJECT_SECRET: &str = "sub-planted-51c0ffee9d7e";

fn entity(kind: &str, id: &str) -> Option<pb::EntityRef> {
    Some(pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    })
}

fn as_gateway<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let bearer = MetadataValue::try_from(format!("Bearer {GATEWAY_TOKEN}")).unwrap();
    request.metadata_mut().insert("authorization", bearer);
    request
}

/// Every kind of call that carries a secret, answered or refused. Returns the tokens Baton
/// issued, which must stay out of the logs too.
async fn calls_with_secrets(baton: &Baton) -> Vec<String> {
    let mut client = baton.client().await;
    let context = serde_json::json!({ "reason": CONTEXT_VALUE, "amount": 5 });
    let first = client
        .authorize(as_gateway(pb::AuthorizeRequest {
            caller: entity("User", "alice"),
            callee: entity("Agent", "user-assistant"),
            principal: entity("User", "alice"),
            scopes: vec!["reports.generate".to_owned(), "finance.read".to_owned()],
            context: Some(struct_from_json(context.as_object().unwrap().clone())),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.decision(), pb::Decision::Allow, "{first:?}");
    assert!(!first.verdict.is_empty());

    // The schema declares no `note`: a refusal that names the context.
    let undeclared = serde_json::json!({ "note": CONTEXT_VALUE });
    let refused = client
        .authorize(as_gateway(pb::AuthorizeRequest {
            caller: entity("User", "alice"),
            callee: entity("Agent", "user-assistant"),
            principal: entity("User", "alice"),
            scopes: vec!["reports.generate".to_owned()],
            context: Some(struct_from_json(undeclared.as_object().unwrap().clone())),
            ..Default::default()
        }))
        .await
        .expect_err("an undeclared context attribute is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let forged = format!("eyJhbGciOiJFZERTQSJ9.{SUBJECT_SECRET}.c2ln");
    let refused = client
        .authorize(as_gateway(pb::AuthorizeRequest {
            caller: entity("Agent", "user-assistant"),
            callee: entity("Agent", "data-analyst"),
            scopes: vec!["finance.read".to_owned()],
            subject_token: forged,
            ..Default::default()
        }))
        .await
        .expect_err("a forged subject token is refused");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let second = client
        .authorize(as_gateway(pb::AuthorizeRequest {
            caller: entity("Agent", "user-assistant"),
            callee: entity("Agent", "data-analyst"),
            scopes: vec!["finance.read".to_owned()],
            subject_token: first.verdict.clone(),
            context: Some(struct_from_json(
                serde_json::json!({ "reason": CONTEXT_VALUE })
                    .as_object()
                    .unwrap()
                    .clone(),
            )),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.decision(), pb::Decision::Allow, "{second:?}");

    let exchanged = client
        .exchange(pb::ExchangeRequest {
            subject_token: second.verdict.clone(),
            audience: "Agent:database-agent".to_owned(),
            scope: "finance.read".to_owned(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner);
    let mut issued = vec![first.verdict, second.verdict];
    if let Ok(exchanged) = exchanged {
        issued.push(exchanged.issued_token);
    }
    issued
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_never_reach_the_logs_or_the_spans() {
    let dir = tempfile::tempdir().unwrap();
    let gateways = dir.path().join("gateways");
    std::fs::write(&gateways, format!("edge {GATEWAY_TOKEN}\n")).unwrap();
    let gateways = gateways.to_str().unwrap();

    for format in ["human", "json"] {
        let receiver = Receiver::start().await;
        let endpoint = receiver.endpoint();
        let mut baton = Baton::start(
            &["--gateway-tokens", gateways, "--log-format", format],
            &[
                ("BATON_LOG", "trace"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                // The calls start their traces at Baton: record every one.
                ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
            ],
        );
        let issued = calls_with_secrets(&baton).await;
        baton.terminate();
        receiver
            .wait_for("the spans of the calls", |spans| spans.len() >= 4)
            .await;

        let logs = baton.logs();
        assert!(
            logs.lines().count() > 100 && logs.contains("TRACE"),
            "the {format} logs are not at trace level:\n{logs}"
        );
        let exported = receiver.raw();
        let secrets = [GATEWAY_TOKEN, CONTEXT_VALUE, SUBJECT_SECRET];
        for secret in secrets
            .iter()
            .copied()
            .chain(issued.iter().map(String::as_str))
        {
            assert!(!logs.contains(secret), "the {format} logs hold `{secret}`");
            assert!(!exported.contains(secret), "the spans hold `{secret}`");
        }
    }
}
