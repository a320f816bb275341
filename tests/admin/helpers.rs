//! Starts a server with the admin API on ephemeral ports, and builds the bundles tests push.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use baton::decision::{DecisionSettings, Limits};
use baton::delegation::trust::AssertedChains;
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::governance_client::GovernanceClient;
use baton::pb::policy_admin_client::PolicyAdminClient;
use baton::pb::{self};
use baton::policy_store::replica::{self, Replica};
use baton::policy_store::{BundleLimits, BundleStore, DirStore};
use baton::state::{Delegation, State};
use baton::transport::AdminTokens;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

pub const TOKEN: &str = "alice-0123456789abcdef";

/// A server of its own with a directory store, and clients for both of its APIs.
pub struct AdminApp {
    pub decisions: DecisionServiceClient<Channel>,
    pub admin: PolicyAdminClient<Channel>,
    pub governance: GovernanceClient<Channel>,
    pub state: Arc<State>,
    _store: Option<tempfile::TempDir>,
    _stop: watch::Sender<bool>,
}

pub async fn spawn_admin_app() -> AdminApp {
    spawn_admin_app_with(BundleLimits::default()).await
}

pub async fn spawn_admin_app_with(limits: BundleLimits) -> AdminApp {
    spawn_admin_app_on(limits, |state| state).await
}

/// Like [`spawn_admin_app_with`], with the state adjusted by `adjust` before serving.
pub async fn spawn_admin_app_on(
    limits: BundleLimits,
    adjust: impl FnOnce(State) -> State,
) -> AdminApp {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BundleStore> = Arc::new(DirStore::open(dir.path()).unwrap());
    let mut app = spawn_admin_app_over(store, limits, adjust).await;
    app._store = Some(dir);
    app
}

/// A server over `store`, seeded with the shipped bundle if it holds none.
pub async fn spawn_admin_app_over(
    store: Arc<dyn BundleStore>,
    limits: BundleLimits,
    adjust: impl FnOnce(State) -> State,
) -> AdminApp {
    let settings = DecisionSettings::default();
    // The shipped bundle starts the server whatever limits later pushes face.
    let initial = replica::initial(
        store.as_ref(),
        None,
        &shipped_dir(),
        &settings,
        &BundleLimits::default(),
    )
    .await
    .unwrap();
    let mut delegation = Delegation::ephemeral();
    delegation.asserted_chains = AssertedChains::Any;
    let state = Arc::new(adjust(State::with_delegation(
        initial.admitted.bundle,
        settings,
        Limits::default(),
        delegation,
    )));
    let replica = Arc::new(Replica::new(
        state.clone(),
        store,
        None,
        limits,
        initial.record,
    ));
    let (stop, stopping) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, admin_addr) = (
        listener.local_addr().unwrap(),
        admin_listener.local_addr().unwrap(),
    );
    tokio::spawn(baton::server::run(
        listener,
        state.clone(),
        stopped(stopping.clone()),
    ));
    tokio::spawn(baton::server::run_admin(
        admin_listener,
        replica,
        AdminTokens::single(TOKEN).unwrap(),
        stopped(stopping),
    ));
    let admin_channel = connect(&format!("http://{admin_addr}")).await;
    AdminApp {
        decisions: DecisionServiceClient::new(connect(&format!("http://{addr}")).await),
        admin: PolicyAdminClient::new(admin_channel.clone()).max_encoding_message_size(usize::MAX),
        governance: GovernanceClient::new(admin_channel),
        state,
        _store: None,
        _stop: stop,
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
        }))
        .await
        .map(tonic::Response::into_inner)
}
