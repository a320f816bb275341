//! Starts the real server for one test, and builds the requests the tests send.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use baton::app::{Config, RunError};
use baton::decision::DecisionSettings;
use baton::delegation::trust::AssertedChains;
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::{self, batch_authorize_result::Result as ItemResult};
use baton::pipeline::Pipeline;
use baton::transport::convert::struct_from_json;
use prost_types::Struct;
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

use crate::spawn::{Running, config_in, server_dir, start};

/// A running server of its own, and a client connected to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// For the health and reflection clients; the connection `client` uses too.
    pub channel: Channel,
    pub client: DecisionServiceClient<Channel>,
    /// The server's pipeline, to look at what the test cannot see over gRPC (cache counters).
    pub pipeline: Arc<Pipeline>,
    pub running: Running,
    /// The server's store and audit files.
    _dir: tempfile::TempDir,
}

/// Serves the shipped bundle with the default settings and limits.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(DecisionSettings::default()).await
}

/// Serves the shipped bundle with `settings`.
pub async fn spawn_app_with(settings: DecisionSettings) -> TestApp {
    spawn_configured(|config| config.settings = settings).await
}

/// The config these tests start from: the shipped bundle and chains a trusted gateway asserts,
/// hop by hop. The delegation tests cover the default, where hops after the first present a
/// subject token instead.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = config_in(dir);
    config.delegation.asserted_chains = AssertedChains::Any;
    config
}

/// Serves the test config as `adjust` changes it.
pub async fn spawn_configured(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = server_dir();
    let mut config = test_config(dir.path());
    adjust(&mut config);
    spawn_in(config, dir).await
}

/// Serves `config`, whose files live in `dir`.
pub async fn spawn_in(config: Config, dir: tempfile::TempDir) -> TestApp {
    let running = start(config).await;
    let channel = Endpoint::from_shared(running.url())
        .expect("a valid URI")
        .connect()
        .await
        .expect("connect to the test server");
    TestApp {
        addr: running.decision_addr,
        client: DecisionServiceClient::new(channel.clone()),
        pipeline: Arc::clone(&running.pipeline),
        channel,
        running,
        _dir: dir,
    }
}

impl TestApp {
    /// Starts the graceful shutdown and waits for the server to return.
    pub async fn shutdown(self) -> Result<(), RunError> {
        self.running.stop().await
    }
}

pub fn bundle_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// `"Agent:data-analyst"` as an entity reference.
pub fn entity(typed: &str) -> pb::EntityRef {
    let (kind, id) = typed
        .split_once(':')
        .unwrap_or_else(|| panic!("`{typed}` is not `Type:id`"));
    pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    }
}

/// A first hop: `caller` calls `callee` for `principal`, asking for `scopes`.
pub fn hop(caller: &str, callee: &str, principal: &str, scopes: &[&str]) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: Some(entity(caller)),
        callee: Some(entity(callee)),
        principal: Some(entity(principal)),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

/// Scenario 1: alice's assistant asks the data analyst for a report.
pub fn report_request(principal: &str, scopes: &[&str]) -> pb::AuthorizeRequest {
    hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        principal,
        scopes,
    )
}

/// Scenario 4: bob's support assistant asks the refund agent to pay back `amount`.
pub fn refund_request(amount: i64) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        context: Some(context(serde_json::json!({ "amount": amount }))),
        ..hop(
            "Agent:support-assistant",
            "Agent:refund-agent",
            "User:bob",
            &["refunds.issue"],
        )
    }
}

/// A JSON object as a protobuf `Struct`, nulls and fractions included, so tests can send what
/// the server must refuse.
pub fn context(object: Value) -> Struct {
    match object {
        Value::Object(map) => struct_from_json(map),
        other => panic!("a context must be a JSON object, not {other}"),
    }
}

/// The fields named by the status's `BadRequest` details, in order.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"));
    for v in &bad.field_violations {
        assert!(
            !v.description.is_empty(),
            "`{}` has no description",
            v.field
        );
    }
    bad.field_violations.into_iter().map(|v| v.field).collect()
}

/// Entity references as `Type id`, the way the audit trail prints them.
pub fn chain_names(chain: &[pb::EntityRef]) -> Vec<String> {
    chain
        .iter()
        .map(|e| format!("{} {}", e.r#type, e.id))
        .collect()
}

/// The answer to one batch item, which must be a decision.
pub fn item_response(result: &pb::BatchAuthorizeResult) -> &pb::AuthorizeResponse {
    match &result.result {
        Some(ItemResult::Response(r)) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

/// The answer to one batch item, which must be an error.
pub fn item_error(result: &pb::BatchAuthorizeResult) -> &pb::ItemError {
    match &result.result {
        Some(ItemResult::Error(e)) => e,
        other => panic!("expected an item error, got {other:?}"),
    }
}

/// The fields an item error names, in order.
pub fn item_fields(error: &pb::ItemError) -> Vec<&str> {
    error
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect()
}
