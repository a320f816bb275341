//! Starts a server with the admin API on ephemeral ports, and builds the bundles tests push.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton::admission::BundleLimits;
use baton::app::Config;
use baton::delegation::trust::AssertedChains;
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::governance_client::GovernanceClient;
use baton::pb::policy_admin_client::PolicyAdminClient;
use baton::pb::{self};
use baton::pipeline::Pipeline;
use baton::transport::AdminTokens;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::spawn::{Running, config_in, server_dir, start};

pub const TOKEN: &str = "alice-0123456789abcdef";

/// A server of its own with a directory store, and clients for both of its APIs.
pub struct AdminApp {
    pub decisions: DecisionServiceClient<Channel>,
    pub admin: PolicyAdminClient<Channel>,
    pub governance: GovernanceClient<Channel>,
    pub pipeline: Arc<Pipeline>,
    /// The decision port's URL.
    pub url: String,
    /// The admin port's URL.
    pub admin_url: String,
    /// Stops the server when the app is dropped.
    running: Running,
    /// The server's directory, unless the test keeps it to start another server on it.
    _dir: Option<tempfile::TempDir>,
}

impl AdminApp {
    /// Shuts the server down gracefully and waits until it has stopped, releasing its store
    /// directory for the next server.
    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

pub async fn spawn_admin_app() -> AdminApp {
    spawn_admin_app_configured(|_| {}).await
}

pub async fn spawn_admin_app_with(limits: BundleLimits) -> AdminApp {
    spawn_admin_app_configured(|config| config.bundle_limits = limits).await
}

/// A server with the admin API behind [`TOKEN`] and chains a trusted gateway asserts, as
/// `adjust` changes its config, with its store in a fresh directory.
pub async fn spawn_admin_app_configured(adjust: impl FnOnce(&mut Config)) -> AdminApp {
    let dir = server_dir();
    let mut app = spawn_admin_app_in(dir.path(), adjust).await;
    app._dir = Some(dir);
    app
}

/// As [`spawn_admin_app_configured`], with the store in `dir`, which the test keeps: a server
/// started again on it finds what the last one left.
pub async fn spawn_admin_app_in(dir: &Path, adjust: impl FnOnce(&mut Config)) -> AdminApp {
    let mut config = config_in(dir);
    config.delegation.asserted_chains = AssertedChains::Any;
    config.admin_tokens = Some(AdminTokens::single(TOKEN).unwrap());
    adjust(&mut config);
    let running = start(config).await;
    let admin_channel = connect(&running.admin_url()).await;
    AdminApp {
        decisions: DecisionServiceClient::new(connect(&running.url()).await),
        admin: PolicyAdminClient::new(admin_channel.clone()).max_encoding_message_size(usize::MAX),
        governance: GovernanceClient::new(admin_channel),
        pipeline: Arc::clone(&running.pipeline),
        url: running.url(),
        admin_url: running.admin_url(),
        running,
        _dir: None,
    }
}

pub async fn connect(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `message` with `authorization: Bearer <token>`.
pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    request
}

pub fn authed<T>(message: T) -> tonic::Request<T> {
    with_token(TOKEN, message)
}

pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// The shipped bundle's files, tests included.
pub fn shipped_files() -> Vec<pb::BundleFile> {
    baton::bundle::read_dir(&shipped_dir())
        .unwrap()
        .into_iter()
        .map(|f| pb::BundleFile {
            name: f.name,
            content: f.text,
        })
        .collect()
}

/// The shipped bundle with the assistant's permit to invoke the analyst turned into a forbid,
/// so alice's report request is denied.
pub fn forbidding_files(with_tests: bool) -> Vec<pb::BundleFile> {
    shipped_files()
        .into_iter()
        .filter(|f| with_tests || f.name != "tests.json")
        .map(|mut f| {
            if f.name == "reporting.cedar" {
                let before = f.content.clone();
                f.content = f.content.replace(
                    "@id(\"assistant-invokes-analyst\")\npermit",
                    "@id(\"assistant-invokes-analyst\")\nforbid",
                );
                assert_ne!(before, f.content, "the shipped policy changed shape");
            }
            f
        })
        .collect()
}

/// alice's assistant asks the analyst for her report.
pub fn report_request() -> pb::AuthorizeRequest {
    let entity = |t: &str, id: &str| {
        Some(pb::EntityRef {
            r#type: t.into(),
            id: id.into(),
        })
    };
    pb::AuthorizeRequest {
        caller: entity("Agent", "user-assistant"),
        callee: entity("Agent", "data-analyst"),
        principal: entity("User", "alice"),
        scopes: vec!["reports.generate".into(), "finance.read".into()],
        ..Default::default()
    }
}

pub async fn report(client: &mut DecisionServiceClient<Channel>) -> pb::AuthorizeResponse {
    client
        .authorize(report_request())
        .await
        .unwrap()
        .into_inner()
}

pub async fn push(
    app: &mut AdminApp,
    files: Vec<pb::BundleFile>,
    message: &str,
) -> Result<pb::PushBundleResponse, tonic::Status> {
    push_to(&mut app.admin, files, message).await
}

/// Pushes `files` through `admin` with the test token.
pub async fn push_to(
    admin: &mut PolicyAdminClient<Channel>,
    files: Vec<pb::BundleFile>,
    message: &str,
) -> Result<pb::PushBundleResponse, tonic::Status> {
    admin
        .push_bundle(authed(pb::PushBundleRequest {
            files,
            message: message.into(),
            shadow: false,
        }))
        .await
        .map(tonic::Response::into_inner)
}
