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
//!
//! A shared store carries a generation ([`Loaded::generation`]). A replica adopts what the
//! store holds only under the generation it knows (kept beside its copy), so lifts made
//! elsewhere take effect. A store without one lost its data: the replica keeps enforcing what
//! it holds and re-seeds the store from it. A store under a generation the replica does not know
//! was re-seeded by another: the replica adds what the store lacks. Either way a revocation is
//! never dropped because Redis forgot it; at worst one lifted while Redis was losing its data
//! comes back, which fails closed.

mod redis;
mod set;
mod store;

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use self::redis::{GENERATION_FIELD, RedisRevocations};
pub use self::set::{Presented, Revocation, RevocationSet, Target, revoked_outcome};
pub use self::store::{FileRevocations, Loaded, RevocationStore};
use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;

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
    /// The store generation the snapshot was last adopted under.
    known: std::sync::Mutex<Option<String>>,
    /// Where re-seeds are counted.
    metrics: Option<Arc<Metrics>>,
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
            known: std::sync::Mutex::new(Some(store::LOCAL_GENERATION.to_owned())),
            metrics: None,
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
            known: std::sync::Mutex::new(Some(store::LOCAL_GENERATION.to_owned())),
            metrics: None,
        }))
    }

    /// Follows a shared `store`, starting from the local `copy` of the last set seen, and
    /// reloading on every doorbell and every [`FOLLOW_INTERVAL`]. Re-seeds are counted in
    /// `metrics`. Must be called within a Tokio runtime.
    pub fn shared(
        store: Arc<dyn RevocationStore>,
        copy: Option<PathBuf>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, RevocationError> {
        let (initial, known) = match &copy {
            Some(path) => (store::read_file(path)?, store::read_generation(path)),
            None => (Vec::new(), None),
        };
        let notices = store.notices();
        let revocations = Arc::new(Self {
            current: ArcSwap::from_pointee(RevocationSet::new(initial)),
            store,
            copy,
            clock,
            changing: tokio::sync::Mutex::new(()),
            known: std::sync::Mutex::new(known),
            metrics: Some(metrics),
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

    /// Reads the whole set from the store now; false if it did not answer (or did not take a
    /// re-seed), in which case what was in force stays.
    pub async fn reload(&self) -> bool {
        let Ok(loaded) = self.store.load().await else {
            return false;
        };
        let _one = self.changing.lock().await;
        let now = self.clock.unix();
        let lapsed: Vec<Target> = loaded
            .revocations
            .iter()
            .filter(|r| !r.in_force(now))
            .map(|r| r.target.clone())
            .collect();
        self.store.forget(&lapsed).await;
        let known = self.known();
        let all = match loaded.generation {
            Some(generation) if known.as_deref() == Some(generation.as_str()) => loaded.revocations,
            generation => match self.reseed(generation, known, loaded.revocations).await {
                Some(all) => all,
                None => return false,
            },
        };
        if RevocationSet::new(all.clone()) != **self.current.load()
            && let Err(e) = self.install(all)
        {
            tracing::warn!(error = %crate::telemetry::chain(&e), "revocations are in force but not kept on disk");
        }
        true
    }

    /// Gives a store that lost its data (`generation` None) or was re-seeded by another
    /// replica what this one holds and it lacks; returns the union, or None if the store did
    /// not take it.
    async fn reseed(
        &self,
        generation: Option<String>,
        known: Option<String>,
        stored: Vec<Revocation>,
    ) -> Option<Vec<Revocation>> {
        let lost = generation.is_none();
        if lost && known.is_none() && self.copy.is_none() {
            // A process without a copy that never saw a generation (the minter, just started)
            // knows nothing the store forgot: it takes what the store holds, and leaves the
            // marking to a replica with a copy, since a marker would vouch for this set.
            tracing::debug!("the shared revocations have no generation yet");
            return Some(stored);
        }
        let missing: Vec<Revocation> = self
            .current
            .load()
            .all()
            .filter(|held| stored.iter().all(|r| r.target != held.target))
            .cloned()
            .collect();
        let generation = generation.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if (lost || !missing.is_empty())
            && let Err(e) = self.store.reseed(&generation, &missing).await
        {
            tracing::debug!(error = %e, "cannot re-seed the shared revocations");
            return None;
        }
        if lost {
            tracing::warn!(
                revocations = missing.len(),
                generation,
                "the shared revocations were lost (Redis emptied or flushed); re-seeded them from this replica's copy"
            );
            if let Some(metrics) = &self.metrics {
                metrics.store_reseeded("revocations");
            }
        } else if !missing.is_empty() {
            tracing::info!(
                revocations = missing.len(),
                generation,
                "added this replica's revocations to the re-seeded shared store"
            );
        }
        self.remember(&generation);
        let mut all = stored;
        all.extend(missing);
        Some(all)
    }

    fn known(&self) -> Option<String> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adopts `generation`, beside the copy too, so a restart does not take lifts made
    /// elsewhere in the meantime for a lost store.
    fn remember(&self, generation: &str) {
        *self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(generation.to_owned());
        if let Some(path) = &self.copy
            && let Err(e) = store::write_generation(path, generation)
        {
            tracing::warn!(error = %crate::telemetry::chain(&e), "cannot keep the revocations' generation on disk");
        }
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
