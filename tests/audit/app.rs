//! Servers with an audit trail of their own: a JSON Lines file in a fresh directory, or a
//! Redis of the test's own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baton::audit::{Audit, AuditMode, AuditRecord, AuditSettings};
use baton::fleet::{Fleet, RedisSettings};
use tempfile::TempDir;

use crate::helpers::{TestApp, spawn_app_on, test_state_with};

/// Bounds every wait for something that happens in the background.
pub const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

/// A server and the directory its audit files live in.
pub struct Audited {
    pub app: TestApp,
    pub dir: TempDir,
}

impl Audited {
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// Every record the file holds, once everything queued has been written.
    pub async fn file_records(&self) -> Vec<AuditRecord> {
        self.app.state.audit.flush().await;
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
    Audited { app, dir }
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
    Audited { app, dir }
}

pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
