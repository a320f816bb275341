//! Starts the real server for one test, and builds the requests the tests send.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use baton::bundle::PolicyBundle;
use baton::decision::{DecisionSettings, Limits};
use baton::delegation::trust::AssertedChains;
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::{self, batch_authorize_result::Result as ItemResult};
use baton::server::{self, ServeError};
use baton::state::{Delegation, State};
use baton::transport::convert::struct_from_json;
use prost_types::Struct;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

/// How long a test waits for the server to finish a graceful shutdown before failing.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// The test servers' drain limit: long enough for any in-flight call here, well under the
/// deadline above, so a stream that never ends shows as a bounded drain rather than a hang.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A running server of its own, and a client connected to it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// For the health and reflection clients; the connection `client` uses too.
    pub channel: Channel,
    pub client: DecisionServiceClient<Channel>,
    /// The server's state, to look at what the test cannot see over gRPC (cache counters).
    pub state: Arc<State>,
    /// Dropping the sender (with the app) also starts the shutdown.
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServeError>>,
}

/// Serves the shipped bundle with the default settings and limits.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(DecisionSettings::default()).await
}

/// Serves the shipped bundle with `settings`.
pub async fn spawn_app_with(settings: DecisionSettings) -> TestApp {
    spawn_app_on(test_state_with(settings)).await
}

/// The shipped bundle and `settings`, with an ephemeral key.
pub fn test_state_with(settings: DecisionSettings) -> State {
    let bundle = PolicyBundle::load(&bundle_dir()).expect("the shipped bundle is valid");
    // These tests exercise chains a trusted gateway asserts, hop by hop; the delegation tests
    // cover the default, where hops after the first present a subject token instead.
    let mut delegation = Delegation::ephemeral();
    delegation.asserted_chains = AssertedChains::Any;
    State::with_delegation(bundle, settings, Limits::default(), delegation)
}

/// Serves `state`.
pub async fn spawn_app_on(state: State) -> TestApp {
    let state = Arc::new(state);
    // Bound before the server task starts, so connecting right away cannot race it.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("the listener has an address");
    let (shutdown, signal) = oneshot::channel::<()>();
    let signal = async {
        // A dropped sender also shuts down, so a test that forgets cannot leak a server.
        let _ = signal.await;
    };
    let server = tokio::spawn(server::run_with_drain(
        listener,
        state.clone(),
        signal,
        DRAIN_TIMEOUT,
    ));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("connect to the test server");
    TestApp {
        addr,
        client: DecisionServiceClient::new(channel.clone()),
        state,
        channel,
        shutdown,
        server,
    }
}

impl TestApp {
    /// Starts the graceful shutdown and waits for the server future to return.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let Self {
            shutdown, server, ..
        } = self;
        shutdown
            .send(())
            .expect("the server is still waiting for the signal");
        tokio::time::timeout(SHUTDOWN_DEADLINE, server)
            .await
            .expect("the server drains and stops in time")
            .expect("the server task does not panic")
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
