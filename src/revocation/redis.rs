//! Revocations in Redis: the hash `{prefix}:revocations`, target key → the revocation as JSON,
//! with a doorbell on `{prefix}:events` after every change.

use std::sync::Arc;

use super::store::RevocationStore;
use super::{NOTICE, Revocation, RevocationError, Target};
use crate::fleet::Fleet;

/// Revocations in the fleet's Redis, shared by every replica.
pub struct RedisRevocations {
    fleet: Arc<Fleet>,
}

impl RedisRevocations {
    /// Revocations kept under the fleet's key prefix.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self { fleet }
    }

    fn hash(&self) -> String {
        self.fleet.key("revocations")
    }
}

#[async_trait::async_trait]
impl RevocationStore for RedisRevocations {
    async fn put(&self, revocation: &Revocation) -> Result<(), RevocationError> {
        let value = serde_json::to_string(revocation).map_err(|_| RevocationError::Unavailable)?;
        let cmd = ::redis::cmd("HSET")
            .arg(self.hash())
            .arg(revocation.target.key())
            .arg(value)
            .clone();
        self.fleet
            .query::<i64>("HSET revocation", &cmd)
            .await
            .ok_or(RevocationError::Unavailable)?;
        self.fleet.ring(NOTICE).await;
        Ok(())
    }

    async fn remove(&self, target: &Target) -> Result<(), RevocationError> {
        let cmd = ::redis::cmd("HDEL")
            .arg(self.hash())
            .arg(target.key())
            .clone();
        self.fleet
            .query::<i64>("HDEL revocation", &cmd)
            .await
            .ok_or(RevocationError::Unavailable)?;
        self.fleet.ring(NOTICE).await;
        Ok(())
    }

    async fn load(&self) -> Result<Vec<Revocation>, RevocationError> {
        let cmd = ::redis::cmd("HGETALL").arg(self.hash()).clone();
        let fields = self
            .fleet
            .query::<Vec<(String, String)>>("HGETALL revocations", &cmd)
            .await
            .ok_or(RevocationError::Unavailable)?;
        Ok(fields
            .iter()
            .filter_map(|(field, value)| {
                let parsed = serde_json::from_str::<Revocation>(value).ok();
                if parsed.is_none() {
                    tracing::warn!(
                        field,
                        "ignoring a revocation Redis holds in a form this release cannot read"
                    );
                }
                parsed
            })
            .collect())
    }

    async fn forget(&self, lapsed: &[Target]) {
        if lapsed.is_empty() {
            return;
        }
        // Any replica may tidy up; HDEL of a field already gone is harmless.
        let keys: Vec<String> = lapsed.iter().map(Target::key).collect();
        let cmd = ::redis::cmd("HDEL").arg(self.hash()).arg(&keys).clone();
        let _ = self
            .fleet
            .query::<i64>("HDEL lapsed revocations", &cmd)
            .await;
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.fleet.notices())
    }

    fn is_shared(&self) -> bool {
        true
    }
}
