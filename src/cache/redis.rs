//! The Redis tier, shared by every replica through the fleet.
//!
//! Keys are `{prefix}:decision:{hash}`, the hash covering the [`DecisionKey`] (so the bundle
//! version and the epoch) and a fingerprint of the settings that shape a decision, since
//! replicas sharing a Redis may run with different settings or releases. Values are the
//! outcome as JSON, written only by Baton after evaluating: a caller can choose what to ask but
//! never what is stored under the question. An entry that does not parse, or names another
//! bundle version, is a miss.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, watch};

use super::DecisionKey;
use super::shared::{SharedTier, Unavailable};
use crate::decision::{DecisionSettings, Outcome};
use crate::fleet::Fleet;

/// Bumped whenever the stored form of an outcome changes, so releases never misread each other.
const FORMAT: &str = "baton-outcome-v1";

/// Writes in flight at most; beyond it a write is skipped rather than queued behind a slow Redis.
const MAX_PENDING_WRITES: usize = 256;

/// The decision cache tier in the fleet's Redis, shared by every replica.
pub struct RedisTier {
    fleet: Arc<Fleet>,
    fingerprint: [u8; 32],
    writes: Arc<Semaphore>,
}

impl RedisTier {
    /// `settings` are those every cached outcome is decided under.
    pub fn new(fleet: Arc<Fleet>, settings: &DecisionSettings) -> Self {
        let mut h = Sha256::new();
        h.update(FORMAT);
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(format!("{settings:?}"));
        Self {
            fleet,
            fingerprint: h.finalize().into(),
            writes: Arc::new(Semaphore::new(MAX_PENDING_WRITES)),
        }
    }

    fn redis_key(&self, key: &DecisionKey) -> String {
        let mut h = Sha256::new();
        h.update(self.fingerprint);
        h.update(key.as_bytes());
        let hash: [u8; 32] = h.finalize().into();
        self.fleet
            .key(&format!("decision:{}", const_hex::encode(hash)))
    }
}

#[async_trait::async_trait]
impl SharedTier for RedisTier {
    fn epoch(&self) -> u64 {
        self.fleet.epoch()
    }

    fn watch_epoch(&self) -> watch::Receiver<u64> {
        self.fleet.watch_epoch()
    }

    fn is_up(&self) -> bool {
        self.fleet.is_up()
    }

    fn latency(&self) -> Option<Duration> {
        self.fleet.latency()
    }

    fn errors(&self) -> u64 {
        self.fleet.errors()
    }

    /// `Err` when Redis did not answer in time; `Ok(None)` on a miss.
    async fn get(&self, key: &DecisionKey, version: &str) -> Result<Option<Outcome>, Unavailable> {
        let cmd = redis::cmd("GET").arg(self.redis_key(key)).clone();
        let bytes: Option<Vec<u8>> = self
            .fleet
            .query("GET decision", &cmd)
            .await
            .ok_or(Unavailable)?;
        Ok(bytes
            .and_then(|b| serde_json::from_slice::<Outcome>(&b).ok())
            .filter(|outcome| outcome.bundle_version == version))
    }

    /// Stores in the background; returns false if the write was skipped.
    fn put(&self, key: &DecisionKey, outcome: &Outcome, ttl: Duration) -> bool {
        let Ok(permit) = Arc::clone(&self.writes).try_acquire_owned() else {
            return false;
        };
        let Ok(value) = serde_json::to_vec(outcome) else {
            return false;
        };
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let cmd = redis::cmd("SET")
            .arg(self.redis_key(key))
            .arg(value)
            .arg("PX")
            .arg(millis)
            .clone();
        let fleet = Arc::clone(&self.fleet);
        tokio::spawn(async move {
            let _: Option<()> = fleet.query("SET decision", &cmd).await;
            drop(permit);
        });
        true
    }

    async fn retire(&self) -> bool {
        self.fleet.invalidate().await
    }
}
