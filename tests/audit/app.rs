//! Servers with an audit trail of their own: a JSON Lines file in a fresh directory, or a
//! Redis of the test's own. Each also serves the admin API, where the trail is queried.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton::audit::{Audit, AuditMode, AuditRecord, AuditSettings};
use baton::fleet::{Fleet, RedisSettings};
use baton::policy_store::replica::Replica;
use baton::policy_store::{BundleLimits, BundleStore, DirStore};
use baton::transport::AdminTokens;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::admin_helpers::{TOKEN, connect};
use crate::eventually::eventually;
use crate::helpers::{TestApp, spawn_app_on, test_state_with};

/// Bounds every wait for something that happens in the background.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A server, its admin API over the same state, and the directory its audit files live in.
pub struct Audited {
    pub app: TestApp,
    /// The admin API, where `QueryAudit` is served to holders of [`TOKEN`].
    pub admin_addr: SocketAddr,
    pub admin: Channel,
    /// Dropping it (with the rest) stops the admin server.
    _admin_stop: oneshot::Sender<()>,
    pub dir: TempDir,
}

impl Audited {
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// Every record the file holds, once everything queued has been written.
    pub async fn file_records(&self) -> Vec<AuditRecord> {
        self.app.pipeline.audit().flush().await;
        std::fs::read_to_string(self.file())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

fn settings(dir: &TempDir, mode: AuditMode) -> AuditSettings {
    AuditSettings {
        mode,
        file: dir.path().join("audit.jsonl"),
        spool: dir.path().join("spool.jsonl"),
        ..AuditSettings::default()
    }
}

/// A server writing its trail to a JSON Lines file.
pub async fn with_file() -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::start(&settings(&dir, AuditMode::File), None).unwrap();
    let app = spawn_app_on(test_state_with(Default::default()).with_audit(audit)).await;
    with_admin(app, dir).await
}

/// A server writing its trail to Redis at `url`, under `prefix`, once Redis answers.
pub async fn with_redis(url: &str, prefix: &str) -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(RedisSettings {
        prefix: prefix.to_owned(),
        ..RedisSettings::new(vec![url.to_owned()])
    })
    .unwrap();
    eventually("Redis is up", || fleet.is_up()).await;
    let audit = Audit::start(&settings(&dir, AuditMode::Redis), Some(Arc::clone(&fleet))).unwrap();
    let state = test_state_with(Default::default())
        .with_cache(Default::default(), Some(fleet))
        .with_audit(audit);
    let app = spawn_app_on(state).await;
    with_admin(app, dir).await
}

/// Serves the admin API over `app`'s state, as `baton serve` does with an admin token, with
/// [`TOKEN`] its only token.
async fn with_admin(app: TestApp, dir: TempDir) -> Audited {
    let store: Arc<dyn BundleStore> = Arc::new(DirStore::open(&dir.path().join("store")).unwrap());
    let replica = Replica::new(
        app.state.clone(),
        store,
        None,
        BundleLimits::default(),
        None,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(baton::server::run_admin(
        listener,
        Arc::new(replica),
        AdminTokens::single(TOKEN).unwrap(),
        async {
            let _ = stopped.await;
        },
    ));
    let admin = connect(&format!("http://{admin_addr}")).await;
    Audited {
        app,
        admin_addr,
        admin,
        _admin_stop: stop,
        dir,
    }
}
