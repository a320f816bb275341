//! Revocations: which agents, principals, transactions and verdicts may no longer act, kept
//! where every replica sees them within a second and where a restart finds them again.
//!
//! The store ([`RevocationStore`]) is the truth: a local file for a single replica
//! ([`FileRevocations`], the embedded default), or a Redis hash every replica shares
//! ([`RedisRevocations`]). A change is written to the store first (so a revoke either reaches
//! every replica or fails and can be retried); replicas following a shared store reload on its
//! doorbell and every [`FOLLOW_INTERVAL`], and keep the last set they saw in a local copy, so
//! a replica started while Redis is down still enforces it. Requests read an immutable
//! snapshot ([`RevocationSet`]) and never wait on the store.

mod redis;
mod set;
mod store;

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use self::redis::RedisRevocations;
pub use self::set::{Presented, Revocation, RevocationSet, Target, revoked_outcome};
pub use self::store::{FileRevocations, RevocationStore};
use crate::clock::{Clock, SystemClock};

/// How often a replica re-reads a shared store even without a doorbell.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// The doorbell a change rings.
const NOTICE: &str = "revocations";

/// Why a revocation could not be recorded or the revocations not read.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Redis did not answer, so the change was made nowhere.
    #[error("Redis did not take the change, so it is in force nowhere; retry")]
    Unavailable,
    /// The revocations file, or the local copy, cannot be read or written.
    #[error("cannot keep revocations in `{path}`")]
    File {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read or written.
        source: std::io::Error,
    },
    /// The revocations file, or the local copy, is not the JSON list Baton writes.
    #[error("the revocations file `{path}` is not valid")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the JSON went wrong.
        source: serde_json::Error,
    },
}

/// The revocations in force on this replica, and the store they come from.
pub struct Revocations {
    current: ArcSwap<RevocationSet>,
    store: Arc<dyn RevocationStore>,
    /// With a shared store: the local copy of the last set seen.
    copy: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    /// One change at a time, so the copy and the snapshot never go back in time.
    changing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("in_force", &self.current.load().all().count())
            .field("shared", &self.store.is_shared())
            .field("copy", &self.copy)
            .finish_non_exhaustive()
    }
}

impl Revocations {
    /// None in force and nothing kept: what tests and the library default start from.
    pub fn in_memory() -> Self {
        Self {
            current: ArcSwap::from_pointee(RevocationSet::default()),
            store: Arc::new(FileRevocations::default_in_memory()),
            copy: None,
            clock: Arc::new(SystemClock),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// The revocations of a local file: the store of a single replica.
    pub fn open(
        file: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, RevocationError> {
        let store = FileRevocations::open(file)?;
        let now = clock.unix();
        let initial: Vec<Revocation> = store
            .held()
            .into_iter()
            .filter(|r| r.in_force(now))
            .collect();
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(RevocationSet::new(initial)),
            store: Arc::new(store),
            copy: None,
            clock,
            changing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Follows a shared `store`, starting from the local `copy` of the last set seen, and
    /// reloading on every doorbell and every [`FOLLOW_INTERVAL`]. Must be called within a
    /// Tokio runtime.
    pub fn shared(
        store: Arc<dyn RevocationStore>,
        copy: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, RevocationError> {
        let initial = match &copy {
            Some(path) => store::read_file(path)?,
            None => Vec::new(),
        };
        let notices = store.notices();
        let revocations = Arc::new(Self {
            current: ArcSwap::from_pointee(RevocationSet::new(initial)),
            store,
            copy,
            clock,
            changing: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(follow(Arc::downgrade(&revocations), notices));
        Ok(revocations)
    }

    /// The revocations in force for the length of one request.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RevocationSet>> {
        self.current.load()
    }

    /// Puts `revocation` in force, replacing any earlier one of the same target.
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), RevocationError> {
        let _one = self.changing.lock().await;
        self.store.put(&revocation).await?;
        self.forget_lapsed().await;
        let mut all: Vec<Revocation> = self.current.load().all().cloned().collect();
        all.retain(|r| r.target != revocation.target);
        all.push(revocation);
        self.install(all)
    }

    /// Lifts the revocation of `target`; returns it, or None if there was none.
    pub async fn lift(&self, target: &Target) -> Result<Option<Revocation>, RevocationError> {
        let _one = self.changing.lock().await;
        let lifted = self.current.load().get(target, 0).cloned();
        self.store.remove(target).await?;
        self.forget_lapsed().await;
        let all: Vec<Revocation> = self
            .current
            .load()
            .all()
            .filter(|r| &r.target != target)
            .cloned()
            .collect();
        self.install(all)?;
        Ok(lifted)
    }

    /// Keeps `all` in the local copy, then in force; the lapsed ones are forgotten.
    fn install(&self, mut all: Vec<Revocation>) -> Result<(), RevocationError> {
        let now = self.clock.unix();
        all.retain(|r| r.in_force(now));
        if let Some(path) = &self.copy {
            store::write_file(path, &all)?;
        }
        self.current.store(Arc::new(RevocationSet::new(all)));
        Ok(())
    }

    /// Tells the store to forget what lapsed in the snapshot, so it does not grow forever.
    async fn forget_lapsed(&self) {
        let now = self.clock.unix();
        let lapsed: Vec<Target> = self
            .current
            .load()
            .all()
            .filter(|r| !r.in_force(now))
            .map(|r| r.target.clone())
            .collect();
        if !lapsed.is_empty() {
            self.store.forget(&lapsed).await;
        }
    }

    /// Reads the whole set from the store now; false if it did not answer, in which case
    /// what was in force stays.
    pub async fn reload(&self) -> bool {
        let Ok(all) = self.store.load().await else {
            return false;
        };
        let _one = self.changing.lock().await;
        let now = self.clock.unix();
        let lapsed: Vec<Target> = all
            .iter()
            .filter(|r| !r.in_force(now))
            .map(|r| r.target.clone())
            .collect();
        self.store.forget(&lapsed).await;
        if RevocationSet::new(all.clone()) != **self.current.load()
            && let Err(e) = self.install(all)
        {
            tracing::warn!(error = %crate::telemetry::chain(&e), "revocations are in force but not kept on disk");
        }
        true
    }
}

async fn follow(
    revocations: Weak<Revocations>,
    mut notices: Option<tokio::sync::broadcast::Receiver<String>>,
) {
    loop {
        let Some(strong) = revocations.upgrade() else {
            return;
        };
        let _ = strong.reload().await;
        drop(strong);
        // A doorbell for anything else, or a lagging receiver, also just means: look again.
        let _ = tokio::time::timeout(FOLLOW_INTERVAL, async {
            match notices.as_mut() {
                Some(notices) => {
                    while let Ok(notice) = notices.recv().await {
                        if notice == NOTICE {
                            return;
                        }
                    }
                }
                None => std::future::pending::<()>().await,
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests;
