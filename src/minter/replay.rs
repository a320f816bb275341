//! One use per verdict: the `jti`s a minter has already redeemed, remembered until the verdict
//! could no longer be redeemed anyway. [`MemoryReplayGuard`] for a single minter;
//! [`RedisReplayGuard`], over the [`Fleet`]'s connection, when several minter processes redeem
//! the same verdicts.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::fleet::{CommandError, Fleet};

/// The default prefix of the Redis keys, so that one Redis can serve other things too.
pub const DEFAULT_REDIS_PREFIX: &str = "baton-minter:";

/// How long a Redis command may take before the mint is refused. A minter that cannot tell
/// whether a verdict was used must not mint from it, and should say so quickly rather than
/// hold its caller.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the replay store could not answer; the mint is refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayStoreError {
    /// Redis did not answer the `PING` a Redis guard starts with.
    #[error("cannot connect to Redis at `{url}`")]
    Connect {
        /// The Redis URLs, comma-separated.
        url: String,
        /// Why the `PING` got no answer.
        #[source]
        source: CommandError,
    },
    /// Redis failed or timed out on recording a `jti`.
    #[error("the Redis command failed")]
    Command(#[source] CommandError),
    /// The replay file cannot be opened, locked, read or written.
    #[error("cannot use the replay file")]
    File(#[source] std::io::Error),
}

/// Remembers used `jti`s, so that each verdict is redeemed at most once.
#[async_trait::async_trait]
pub trait ReplayGuard: Send + Sync + std::fmt::Debug {
    /// Records `jti` as used until `until` (seconds since the epoch) and says whether this was
    /// its first use. An error means the answer is unknown, and the caller must refuse.
    async fn first_use(&self, jti: &str, until: u64, now: u64) -> Result<bool, ReplayStoreError>;
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
    /// Records `jti` as used until `until` and says whether this was its first use; never
    /// fails, and never waits.
    pub fn use_once(&self, jti: &str, until: u64, now: u64) -> bool {
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

    /// Whether no `jti` is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl ReplayGuard for MemoryReplayGuard {
    async fn first_use(&self, jti: &str, until: u64, now: u64) -> Result<bool, ReplayStoreError> {
        Ok(self.use_once(jti, until, now))
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

/// Used `jti`s shared by every minter that points at the same Redis and prefix. The keys are
/// `<prefix>jti:<jti>`, named by the minter's own prefix rather than the fleet's, so they stay
/// what they were before the guard shared the fleet's connection.
pub struct RedisReplayGuard {
    fleet: Arc<Fleet>,
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
    /// A guard over `fleet`'s connection, once Redis has answered a `PING`: a minter told to
    /// use Redis refuses to start without it rather than refuse every verdict later.
    pub async fn connect(fleet: Arc<Fleet>, prefix: &str) -> Result<Self, ReplayStoreError> {
        let ping = redis::cmd("PING");
        if let Err(source) = fleet.command::<()>("PING", &ping, REDIS_TIMEOUT).await {
            return Err(ReplayStoreError::Connect {
                url: fleet.settings().urls.join(","),
                source,
            });
        }
        Ok(Self {
            fleet,
            prefix: prefix.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl ReplayGuard for RedisReplayGuard {
    /// `SET <prefix>jti:<jti> 1 NX EX <seconds>`: atomic, so of two minters racing on the
    /// same verdict exactly one gets `OK`.
    async fn first_use(&self, jti: &str, until: u64, now: u64) -> Result<bool, ReplayStoreError> {
        // `EX` must be positive; a verdict at the edge of its validity is kept for a second.
        let seconds = until.saturating_sub(now).max(1);
        let set = redis::cmd("SET")
            .arg(format!("{}jti:{jti}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(seconds)
            .clone();
        let reply: Option<String> = self
            .fleet
            .command("SET jti", &set, REDIS_TIMEOUT)
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
        assert!(guard.use_once("a", 100, 10));
        assert!(!guard.use_once("a", 100, 99));
        assert!(guard.use_once("b", 50, 10));
        assert_eq!(guard.len(), 2);
        // Once the verdict can no longer be redeemed, remembering it is pointless.
        assert!(guard.use_once("c", 200, 100));
        assert_eq!(guard.len(), 1);
        assert!(guard.use_once("a", 300, 100));
    }

    #[test]
    fn expired_entries_are_purged_as_the_guard_goes() {
        let guard = MemoryReplayGuard::default();
        for i in 1..=1000 {
            assert!(guard.use_once(&format!("j{i}"), i, 0));
        }
        assert_eq!(guard.len(), 1000);
        assert!(guard.use_once("late", 5000, 1000));
        assert_eq!(guard.len(), 1);
        assert!(!guard.is_empty());
    }
}
