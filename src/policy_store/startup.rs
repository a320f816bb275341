//! Which bundle a replica serves at start, and from where. The live policy must never change
//! unseen: a store that holds bundles but cannot give its active one (a corrupt or missing file)
//! stops the start rather than fall back to `--bundle`, unless the operator says
//! `--recover-store`; and a `--bundle` that differs from the store's active revision is
//! reported, since after the first start it is not what is served.

use std::fmt;
use std::path::Path;

use super::last_good::LastGood;
use super::replica::{
    ReplicaError, admit_blocking, draft, fetch_and_admit, read_dir_files, save_last_good, stored,
};
use super::{BundleRecord, BundleStore, StoreError};
use crate::admission::{Admitted, BundleLimits};
use crate::bundle::content_hash;
use crate::decision::DecisionSettings;

/// Where the bundle a replica starts with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedFrom {
    /// The store's active revision.
    Store,
    /// This replica's last good copy, the store being unreachable or emptied.
    LastGood,
    /// `--bundle`, which seeded an empty store.
    SeededBundle,
    /// `--bundle`, not in any store: the store was unreachable and there was no copy, or it
    /// was unreadable and `--recover-store` was given.
    Bundle,
}

impl fmt::Display for ServedFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Store => "the store's active revision",
            Self::LastGood => "the last good copy on local disk",
            Self::SeededBundle => "--bundle, which seeded the empty store",
            Self::Bundle => "--bundle",
        })
    }
}

/// The bundle a replica starts with, the revision it is when known, and where it came from.
pub struct Initial {
    /// The bundle, admitted.
    pub admitted: Admitted,
    /// Its revision; `None` when it was read from the fallback directory, not the store.
    pub record: Option<BundleRecord>,
    /// Where it came from.
    pub source: ServedFrom,
}

/// Chooses the bundle to serve at startup, without waiting longer than the store's own
/// timeouts: the store's active revision; else, when the store is unreachable or emptied, this
/// replica's last good copy; else the bundle in `fallback_dir`. An empty store is seeded with
/// the fallback bundle, so it can be listed and rolled back to. A store that holds bundles but
/// cannot give its active one refuses the start unless `recover`.
pub async fn initial(
    store: &dyn BundleStore,
    last_good: Option<&LastGood>,
    fallback_dir: &Path,
    settings: &DecisionSettings,
    limits: &BundleLimits,
    recover: bool,
) -> Result<Initial, ReplicaError> {
    let unreadable = |why: String| -> Result<(), ReplicaError> {
        if recover {
            tracing::error!(
                problem = why,
                "recovering the bundle store: serving --bundle"
            );
            Ok(())
        } else {
            Err(ReplicaError::Unrecoverable(why))
        }
    };
    let mut looked_again = false;
    loop {
        match store.active().await {
            Ok(Some(revision)) => match fetch_and_admit(store, revision, settings, limits).await {
                Ok((stored, admitted)) => {
                    save_last_good(last_good, &stored).await;
                    warn_if_bundle_differs(fallback_dir, &stored.record);
                    return Ok(Initial {
                        admitted,
                        record: Some(stored.record),
                        source: ServedFrom::Store,
                    });
                }
                Err(e) => unreadable(format!("active revision {revision}: {e}"))?,
            },
            Ok(None) => {
                if let Some(served) = from_last_good(last_good, settings, limits).await {
                    // The shared store lost its data: this replica keeps serving what it served;
                    // the replica's first sync seeds the store with it.
                    return Ok(served);
                }
                match store.list(1).await {
                    // Another replica seeded the empty store between the two reads (a revision
                    // and its pointer are written together): look once more.
                    Ok(held) if !held.is_empty() && !looked_again => {
                        looked_again = true;
                        continue;
                    }
                    Ok(held) if !held.is_empty() => unreadable(format!(
                        "it holds revision {} but no active pointer",
                        held[0].revision
                    ))?,
                    Err(e) => unreadable(e.to_string())?,
                    Ok(_) => return seed(store, last_good, fallback_dir, settings, limits).await,
                }
            }
            // Redis down: the last good copy says what was live.
            Err(e @ StoreError::Unavailable(_)) if last_good.is_some() => {
                tracing::warn!(error = %e, "the bundle store is unreachable at startup");
                if let Some(served) = from_last_good(last_good, settings, limits).await {
                    return Ok(served);
                }
            }
            Err(e) => unreadable(e.to_string())?,
        }
        break;
    }
    let admitted = admit_blocking(read_dir_files(fallback_dir)?, settings, limits).await?;
    if recover {
        // The repaired store records what is served, so it can be listed and rolled back.
        match store
            .push(draft(
                &admitted,
                "baton serve",
                "recovered with --recover-store",
            ))
            .await
        {
            Ok(record) => {
                tracing::warn!(
                    revision = record.revision,
                    "recorded --bundle in the recovered store"
                );
                save_last_good(last_good, &stored(&admitted, &record)).await;
                return Ok(Initial {
                    admitted,
                    record: Some(record),
                    source: ServedFrom::Bundle,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record --bundle in the store; move the unreadable files aside")
            }
        }
    }
    Ok(Initial {
        admitted,
        record: None,
        source: ServedFrom::Bundle,
    })
}

/// Seeds an empty store with the bundle in `fallback_dir`.
async fn seed(
    store: &dyn BundleStore,
    last_good: Option<&LastGood>,
    fallback_dir: &Path,
    settings: &DecisionSettings,
    limits: &BundleLimits,
) -> Result<Initial, ReplicaError> {
    let admitted = admit_blocking(read_dir_files(fallback_dir)?, settings, limits).await?;
    let record = store
        .push(draft(
            &admitted,
            "baton serve",
            &format!("initial bundle from `{}`", fallback_dir.display()),
        ))
        .await?;
    tracing::info!(
        revision = record.revision,
        version = record.version,
        "seeded the empty bundle store"
    );
    save_last_good(last_good, &stored(&admitted, &record)).await;
    Ok(Initial {
        admitted,
        record: Some(record),
        source: ServedFrom::SeededBundle,
    })
}

async fn from_last_good(
    last_good: Option<&LastGood>,
    settings: &DecisionSettings,
    limits: &BundleLimits,
) -> Option<Initial> {
    match last_good?.load().await {
        Ok(Some(stored)) => match admit_blocking(stored.files, settings, limits).await {
            Ok(admitted) => Some(Initial {
                admitted,
                record: Some(stored.record),
                source: ServedFrom::LastGood,
            }),
            Err(e) => {
                tracing::error!(error = %e, "the last good bundle is no longer valid");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the last good bundle");
            None
        }
    }
}

/// After the first start `--bundle` only seeds an empty store: say so when it differs from
/// what the store serves, since editing it changes nothing.
fn warn_if_bundle_differs(fallback_dir: &Path, active: &BundleRecord) {
    let Ok(files) = crate::bundle::read_dir(fallback_dir) else {
        return;
    };
    let version = content_hash(&files);
    if version != active.version {
        tracing::warn!(
            bundle = %fallback_dir.display(),
            bundle_version = version,
            revision = active.revision,
            version = active.version,
            "--bundle differs from the store's active revision, which is what is served; push it to make it live"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::policy_store::dir::DirStore;
    use crate::policy_store::{Draft, StoredBundle};

    fn shipped() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    }

    /// A store another replica seeds right after this one found it without an active pointer,
    /// as two replicas starting together on an empty Redis do.
    struct SeededMeanwhile {
        inner: DirStore,
        seed: Draft,
        pending: AtomicBool,
    }

    #[async_trait::async_trait]
    impl BundleStore for SeededMeanwhile {
        async fn push(&self, draft: Draft) -> Result<BundleRecord, StoreError> {
            self.inner.push(draft).await
        }
        async fn activate(&self, revision: u64) -> Result<(), StoreError> {
            self.inner.activate(revision).await
        }
        async fn rollback(&self, from: u64, to: u64) -> Result<(), StoreError> {
            self.inner.rollback(from, to).await
        }
        async fn active(&self) -> Result<Option<u64>, StoreError> {
            let active = self.inner.active().await;
            if self.pending.swap(false, Ordering::SeqCst) {
                self.inner.push(self.seed.clone()).await?;
            }
            active
        }
        async fn activations(&self) -> Result<Vec<u64>, StoreError> {
            self.inner.activations().await
        }
        async fn get(&self, revision: u64) -> Result<Option<StoredBundle>, StoreError> {
            self.inner.get(revision).await
        }
        async fn list(&self, limit: usize) -> Result<Vec<BundleRecord>, StoreError> {
            self.inner.list(limit).await
        }
        async fn push_shadow(
            &self,
            draft: Draft,
        ) -> Result<(BundleRecord, crate::policy_store::ShadowPointer), StoreError> {
            self.inner.push_shadow(draft).await
        }
        async fn shadow(&self) -> Result<Option<crate::policy_store::ShadowPointer>, StoreError> {
            self.inner.shadow().await
        }
        async fn stop_shadow(&self, only: Option<u64>) -> Result<Option<u64>, StoreError> {
            self.inner.stop_shadow(only).await
        }
        fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
            None
        }
    }

    #[tokio::test]
    async fn a_store_seeded_by_another_replica_between_two_reads_is_served_not_refused() {
        let settings = DecisionSettings::default();
        let limits = BundleLimits::default();
        let admitted = admit_blocking(read_dir_files(&shipped()).unwrap(), &settings, &limits)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SeededMeanwhile {
            inner: DirStore::open(dir.path()).unwrap(),
            seed: draft(&admitted, "the other replica", "seeded"),
            pending: AtomicBool::new(true),
        };
        let initial = initial(&store, None, &shipped(), &settings, &limits, false)
            .await
            .unwrap();
        assert_eq!(initial.source, ServedFrom::Store);
        assert_eq!(initial.record.unwrap().revision, 1);
    }
}
