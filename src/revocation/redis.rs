//! Revocations in Redis: the hash `{prefix}:revocations`, target key → the revocation as JSON,
//! with a doorbell on `{prefix}:events` after every change. The field [`GENERATION_FIELD`]
//! marks a hash that was seeded: Redis loses it with the revocations (`FLUSHALL`, a restart
//! without persistence), so its absence tells a replica to re-seed rather than lift.

use std::sync::Arc;

use super::store::{Loaded, RevocationStore};
use super::{NOTICE, Revocation, RevocationError, Target};
use crate::fleet::Fleet;

/// The hash field holding the generation; no target key starts with `!`.
pub const GENERATION_FIELD: &str = "!generation";

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

    async fn load(&self) -> Result<Loaded, RevocationError> {
        let cmd = ::redis::cmd("HGETALL").arg(self.hash()).clone();
        let fields = self
            .fleet
            .query::<Vec<(String, String)>>("HGETALL revocations", &cmd)
            .await
            .ok_or(RevocationError::Unavailable)?;
        let mut loaded = Loaded::default();
        for (field, value) in fields {
            if field == GENERATION_FIELD {
                loaded.generation = Some(value);
                continue;
            }
            match serde_json::from_str::<Revocation>(&value) {
                Ok(revocation) => loaded.revocations.push(revocation),
                Err(_) => tracing::warn!(
                    field,
                    "ignoring a revocation Redis holds in a form this release cannot read"
                ),
            }
        }
        Ok(loaded)
    }

    async fn reseed(
        &self,
        generation: &str,
        missing: &[Revocation],
    ) -> Result<(), RevocationError> {
        // One HSET: the marker never lands without the revocations it vouches for.
        let mut cmd = ::redis::cmd("HSET");
        cmd.arg(self.hash()).arg(GENERATION_FIELD).arg(generation);
        for revocation in missing {
            let value =
                serde_json::to_string(revocation).map_err(|_| RevocationError::Unavailable)?;
            cmd.arg(revocation.target.key()).arg(value);
        }
        self.fleet
            .query::<i64>("HSET revocations re-seed", &cmd)
            .await
            .ok_or(RevocationError::Unavailable)?;
        self.fleet.ring(NOTICE).await;
        Ok(())
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
