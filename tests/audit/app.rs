//! Servers with an audit trail of their own: a JSON Lines file in a fresh directory, or a
//! Redis of the test's own. Each also serves the admin API, where the trail is queried.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use baton::audit::{AuditContext, AuditMode, AuditRecord, AuditSettings, Rotation};
use baton::fleet::RedisSettings;
use baton::transport::AdminTokens;
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::admin_helpers::{TOKEN, connect};
use crate::eventually::eventually;
use crate::helpers::{TestApp, spawn_in, test_config};

/// Bounds every wait for something that happens in the background.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A server with its admin API, and the directory its audit files live in.
pub struct Audited {
    pub app: TestApp,
    /// The admin API, where `QueryAudit` is served to holders of [`TOKEN`].
    pub admin_addr: SocketAddr,
    pub admin: Channel,
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
    let audit = settings(&dir, AuditMode::File);
    start(dir, |_| {}, audit).await
}

/// A server writing its trail to a JSON Lines file, keeping `context` of each request.
pub async fn with_file_keeping(context: AuditContext) -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditSettings {
        context,
        ..settings(&dir, AuditMode::File)
    };
    start(dir, |_| {}, audit).await
}

/// A server writing its trail to a JSON Lines file rotated after every write, so each record
/// lands in a segment of its own, packed and indexed.
pub async fn with_rotated_file() -> Audited {
    with_rotated_file_keeping(AuditContext::default()).await
}

/// As [`with_rotated_file`], keeping `context` of each request.
pub async fn with_rotated_file_keeping(context: AuditContext) -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditSettings {
        rotation: Rotation {
            max_bytes: 1,
            ..Rotation::default()
        },
        context,
        ..settings(&dir, AuditMode::File)
    };
    start(dir, |_| {}, audit).await
}

/// A server writing its trail to Redis at `url`, under `prefix`, once Redis answers.
pub async fn with_redis(url: &str, prefix: &str) -> Audited {
    with_redis_batches(url, prefix, AuditSettings::default().max_batch).await
}

/// As [`with_redis`], writing at most `max_batch` records a round trip.
pub async fn with_redis_batches(url: &str, prefix: &str, max_batch: usize) -> Audited {
    with_redis_as(url, prefix, max_batch, AuditContext::default()).await
}

/// As [`with_redis`], keeping `context` of each request.
pub async fn with_redis_keeping(url: &str, prefix: &str, context: AuditContext) -> Audited {
    with_redis_as(url, prefix, AuditSettings::default().max_batch, context).await
}

async fn with_redis_as(
    url: &str,
    prefix: &str,
    max_batch: usize,
    context: AuditContext,
) -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditSettings {
        max_batch,
        context,
        ..settings(&dir, AuditMode::Redis)
    };
    let redis = RedisSettings {
        prefix: prefix.to_owned(),
        ..RedisSettings::new(vec![url.to_owned()])
    };
    let audited = start(dir, |config| config.redis = Some(redis), audit).await;
    let pipeline = &audited.app.pipeline;
    eventually("Redis is up", || {
        pipeline.cache().shared_tier().is_some_and(|t| t.is_up())
    })
    .await;
    audited
}

/// Serves the test config with `audit`, and the admin API with [`TOKEN`] its only token, as
/// `baton serve` does with an admin token.
async fn start(
    dir: TempDir,
    adjust: impl FnOnce(&mut baton::app::Config),
    audit: AuditSettings,
) -> Audited {
    let server_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(server_dir.path());
    config.audit = audit;
    config.admin_tokens = Some(AdminTokens::single(TOKEN).unwrap());
    adjust(&mut config);
    let app = spawn_in(config, server_dir).await;
    let admin_addr = app.running.admin_addr.expect("the admin port is served");
    let admin = connect(&format!("http://{admin_addr}")).await;
    Audited {
        app,
        admin_addr,
        admin,
        dir,
    }
}
