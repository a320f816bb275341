//! One use per verdict: the `jti`s a minter has already redeemed, remembered until the verdict
//! could no longer be redeemed anyway. In memory for a single minter; in Redis when several
//! minter processes redeem the same verdicts.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The default prefix of the Redis keys, so that one Redis can serve other things too.
pub const DEFAULT_REDIS_PREFIX: &str = "baton-minter:";

/// How long a Redis command or connection attempt may take before the mint is refused. A
/// minter that cannot tell whether a verdict was used must not mint from it, and should say so
/// quickly rather than hold its caller.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the replay store could not answer; the mint is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayStoreError {
    #[error("cannot connect to Redis at `{url}`")]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("the Redis command failed")]
    Command(#[source] redis::RedisError),
}

/// Remembers used `jti`s: in this process, or shared through Redis.
#[derive(Debug)]
pub enum ReplayGuard {
    Memory(MemoryReplayGuard),
    Redis(RedisReplayGuard),
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::Memory(MemoryReplayGuard::default())
    }
}

impl ReplayGuard {
    /// Records `jti` as used until `until` (seconds since the epoch) and says whether this was
    /// its first use. An error means the answer is unknown, and the caller must refuse.
    pub async fn first_use(
        &self,
        jti: &str,
        until: u64,
        now: u64,
    ) -> Result<bool, ReplayStoreError> {
        match self {
            Self::Memory(guard) => Ok(guard.first_use(jti, until, now)),
            Self::Redis(guard) => guard.first_use(jti, until, now).await,
        }
    }
}

/// The used `jti`s of this process, each with the instant after which it is forgotten.
#[derive(Debug, Default)]
pub struct MemoryReplayGuard {
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    until: HashMap<String, u64>,
    /// The same entries ordered by expiry, so that purging touches only expired ones.
    by_expiry: BTreeSet<(u64, String)>,
}

impl MemoryReplayGuard {
    pub fn first_use(&self, jti: &str, until: u64, now: u64) -> bool {
        // A poisoned lock still holds every recorded `jti`: refusing to read it would only
        // turn one panic into a minter that refuses everything.
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.purge(now);
        if used.until.contains_key(jti) {
            return false;
        }
        used.until.insert(jti.to_owned(), until);
        used.by_expiry.insert((until, jti.to_owned()));
        true
    }

    /// How many `jti`s are remembered.
    pub fn len(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .until
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Used {
    /// Forgets the entries that expired at or before `now`.
    fn purge(&mut self, now: u64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, jti)) = self.by_expiry.pop_first() {
                self.until.remove(&jti);
            }
        }
    }
}

/// Used `jti`s shared by every minter that points at the same Redis and prefix.
pub struct RedisReplayGuard {
    connection: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayGuard")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayGuard {
    /// Connects to the Redis at `url` (`redis://host:port/db`); keys are `<prefix>jti:<jti>`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ReplayStoreError> {
        let connect_error = |source| ReplayStoreError::Connect {
            url: url.to_owned(),
            source,
        };
        let client = redis::Client::open(url).map_err(connect_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(connect_error)?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
        })
    }

    /// `SET <prefix>jti:<jti> 1 NX EX <seconds>`: atomic, so of two minters racing on the
    /// same verdict exactly one gets `OK`.
    pub async fn first_use(
        &self,
        jti: &str,
        until: u64,
        now: u64,
    ) -> Result<bool, ReplayStoreError> {
        // `EX` must be positive; a verdict at the edge of its validity is kept for a second.
        let seconds = until.saturating_sub(now).max(1);
        let mut connection = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(format!("{}jti:{jti}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(seconds)
            .query_async(&mut connection)
            .await
            .map_err(ReplayStoreError::Command)?;
        Ok(reply.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_used_once_until_it_expires() {
        let guard = MemoryReplayGuard::default();
        assert!(guard.first_use("a", 100, 10));
        assert!(!guard.first_use("a", 100, 99));
        assert!(guard.first_use("b", 50, 10));
        assert_eq!(guard.len(), 2);
        // Once the verdict can no longer be redeemed, remembering it is pointless.
        assert!(guard.first_use("c", 200, 100));
        assert_eq!(guard.len(), 1);
        assert!(guard.first_use("a", 300, 100));
    }

    #[test]
    fn expired_entries_are_purged_as_the_guard_goes() {
        let guard = MemoryReplayGuard::default();
        for i in 1..=1000 {
            assert!(guard.first_use(&format!("j{i}"), i, 0));
        }
        assert_eq!(guard.len(), 1000);
        assert!(guard.first_use("late", 5000, 1000));
        assert_eq!(guard.len(), 1);
        assert!(!guard.is_empty());
    }
}
