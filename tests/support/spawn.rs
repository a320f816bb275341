//! Starts the real application for one test: `Application::build` over a config the test
//! shapes, serving on ports the system chooses, with its store in a directory of its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton::app::{Application, Config, RunError};
use baton::pipeline::Pipeline;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the server to finish a graceful shutdown before failing.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// The test servers' drain limit: long enough for any in-flight call here, well under the
/// deadline above, so a stream that never ends shows as a bounded drain rather than a hang.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The shipped bundle.
pub fn shipped_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A fresh directory for one server's store and audit files.
pub fn server_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// The shipped bundle, served from a store in `dir`, with the test drain limit.
pub fn config_in(dir: &Path) -> Config {
    let mut config = Config::new(shipped_bundle(), dir.join("store"));
    config.drain_timeout = DRAIN_TIMEOUT;
    config
}

/// A running application, stopped when dropped.
pub struct Running {
    pub decision_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub console_addr: Option<SocketAddr>,
    pub pipeline: Arc<Pipeline>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), RunError>>>,
}

/// Builds the application `config` describes and serves it in the background.
pub async fn start(config: Config) -> Running {
    let app = Application::build(config)
        .await
        .unwrap_or_else(|e| panic!("the application builds: {e:?}"));
    let (shutdown, signal) = oneshot::channel::<()>();
    let running = Running {
        decision_addr: app.decision_addr(),
        http_addr: app.http_addr(),
        admin_addr: app.admin_addr(),
        console_addr: app.console_addr(),
        pipeline: Arc::clone(app.pipeline()),
        shutdown: Some(shutdown),
        server: None,
    };
    // Bound before the server task starts, so connecting right away cannot race it.
    let server = tokio::spawn(app.run_until_stopped(async {
        // A dropped sender also shuts down, so a test that forgets cannot leak a server.
        let _ = signal.await;
    }));
    Running {
        server: Some(server),
        ..running
    }
}

impl Running {
    /// `http://` URL of the decision port.
    pub fn url(&self) -> String {
        format!("http://{}", self.decision_addr)
    }

    /// `http://` URL of the admin port.
    pub fn admin_url(&self) -> String {
        format!(
            "http://{}",
            self.admin_addr.expect("the admin port is served")
        )
    }

    /// Starts the graceful shutdown and waits for the server to return.
    pub async fn stop(mut self) -> Result<(), RunError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = self.server.take().expect("the server runs once");
        tokio::time::timeout(SHUTDOWN_DEADLINE, server)
            .await
            .expect("the server drains and stops in time")
            .expect("the server task does not panic")
    }
}
