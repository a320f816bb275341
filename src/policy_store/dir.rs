//! The embedded default store: revisions and activations as JSON files in a local directory.
//!
//! ```text
//! <dir>/revisions/0000000007.json       the record of revision 7
//! <dir>/revisions/0000000007.files.json its files
//! <dir>/activations.json                every activation, oldest first; the last is active
//! <dir>/shadow.json                     the shadowed revision and since when, if any
//! ```
//!
//! Every file is written whole to a temporary name and renamed into place, so a crash leaves
//! either the old file or the new one. One process owns the directory.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use super::{BundleRecord, BundleStore, Draft, ShadowPointer, StoreError, StoredBundle, now_unix};
use crate::bundle::SourceFile;

/// Revisions and activations as JSON files in a local directory: the store of a single replica.
pub struct DirStore {
    dir: PathBuf,
    /// Serializes writers, so revision numbers and activations never interleave.
    lock: Mutex<()>,
}

impl DirStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir.join("revisions")).map_err(|e| unavailable(dir, &e))?;
        Ok(Self {
            dir: dir.to_owned(),
            lock: Mutex::new(()),
        })
    }

    fn record_path(&self, revision: u64) -> PathBuf {
        self.dir
            .join("revisions")
            .join(format!("{revision:010}.json"))
    }

    fn files_path(&self, revision: u64) -> PathBuf {
        self.dir
            .join("revisions")
            .join(format!("{revision:010}.files.json"))
    }

    fn activations_path(&self) -> PathBuf {
        self.dir.join("activations.json")
    }

    /// Every stored revision number, ascending.
    async fn revisions(&self) -> Result<Vec<u64>, StoreError> {
        let dir = self.dir.join("revisions");
        blocking(move || {
            let mut revisions = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| unavailable(&dir, &e))? {
                let entry = entry.map_err(|e| unavailable(&dir, &e))?;
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                if let Ok(n) = stem.parse::<u64>() {
                    revisions.push(n);
                }
            }
            revisions.sort_unstable();
            Ok(revisions)
        })
        .await
    }

    async fn write_activations(&self, activations: Vec<u64>) -> Result<(), StoreError> {
        write_json(self.activations_path(), activations).await
    }

    fn shadow_path(&self) -> PathBuf {
        self.dir.join("shadow.json")
    }

    /// Stores `draft` as the next revision, its files before the record that makes it visible.
    async fn store(&self, draft: Draft) -> Result<BundleRecord, StoreError> {
        let revision = self.revisions().await?.last().map_or(1, |last| last + 1);
        let record = draft.record(revision);
        write_json(self.files_path(revision), draft.files).await?;
        write_json(self.record_path(revision), record.clone()).await?;
        Ok(record)
    }
}

#[async_trait::async_trait]
impl BundleStore for DirStore {
    async fn push(&self, draft: Draft) -> Result<BundleRecord, StoreError> {
        let _guard = self.lock.lock().await;
        // The revision first, then the pointer.
        let record = self.store(draft).await?;
        let mut activations = self.activations().await?;
        activations.push(record.revision);
        self.write_activations(activations).await?;
        Ok(record)
    }

    async fn push_shadow(&self, draft: Draft) -> Result<(BundleRecord, ShadowPointer), StoreError> {
        let _guard = self.lock.lock().await;
        let record = self.store(draft).await?;
        let pointer = ShadowPointer {
            revision: record.revision,
            since: now_unix(),
        };
        write_json(self.shadow_path(), pointer).await?;
        Ok((record, pointer))
    }

    async fn shadow(&self) -> Result<Option<ShadowPointer>, StoreError> {
        read_json(self.shadow_path()).await
    }

    async fn stop_shadow(&self, only: Option<u64>) -> Result<Option<u64>, StoreError> {
        let _guard = self.lock.lock().await;
        let Some(current) = self.shadow().await? else {
            return Ok(None);
        };
        if only.is_some_and(|r| r != current.revision) {
            return Ok(None);
        }
        let path = self.shadow_path();
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(&path, &e)),
        })
        .await?;
        Ok(Some(current.revision))
    }

    async fn activate(&self, revision: u64) -> Result<(), StoreError> {
        let _guard = self.lock.lock().await;
        if !self.record_path(revision).exists() {
            return Err(StoreError::UnknownRevision(revision));
        }
        let mut activations = self.activations().await?;
        activations.push(revision);
        self.write_activations(activations).await
    }

    async fn rollback(&self, from: u64, to: u64) -> Result<(), StoreError> {
        let _guard = self.lock.lock().await;
        let mut activations = self.activations().await?;
        match activations.as_slice() {
            [.., before, active] if *active == from && *before == to => {}
            [.., active] if *active != from => {
                return Err(StoreError::Conflict { expected: from });
            }
            _ => return Err(StoreError::NothingToRollBack),
        }
        activations.pop();
        self.write_activations(activations).await
    }

    async fn active(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.activations().await?.last().copied())
    }

    async fn activations(&self) -> Result<Vec<u64>, StoreError> {
        Ok(read_json(self.activations_path())
            .await?
            .unwrap_or_default())
    }

    async fn get(&self, revision: u64) -> Result<Option<StoredBundle>, StoreError> {
        let Some(record) = read_json::<BundleRecord>(self.record_path(revision)).await? else {
            return Ok(None);
        };
        let files: Vec<SourceFile> = read_json(self.files_path(revision))
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("revision {revision} has no files")))?;
        Ok(Some(StoredBundle { record, files }))
    }

    async fn list(&self, limit: usize) -> Result<Vec<BundleRecord>, StoreError> {
        let mut records = Vec::new();
        for revision in self.revisions().await?.into_iter().rev().take(limit) {
            if let Some(record) = read_json(self.record_path(revision)).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

fn unavailable(path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("`{}`: {e}", path.display()))
}

/// Runs file work off the async workers: bundles can be megabytes.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("file task failed: {e}")))?
}

/// Writes `value` to `path` whole and durably.
pub(super) async fn write_json<T: Serialize + Send + 'static>(
    path: PathBuf,
    value: T,
) -> Result<(), StoreError> {
    blocking(move || {
        let bytes = serde_json::to_vec(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        crate::store_dir::replace_file(&path, &bytes).map_err(|e| unavailable(&path, &e))
    })
    .await
}

/// Reads `path` as JSON; `None` when it does not exist.
pub(super) async fn read_json<T: DeserializeOwned + Send + 'static>(
    path: PathBuf,
) -> Result<Option<T>, StoreError> {
    blocking(move || match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("`{}`: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unavailable(&path, &e)),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(text: &str) -> Draft {
        Draft {
            version: text.into(),
            author: "alice".into(),
            message: "m".into(),
            policies: 1,
            tests: 0,
            files: vec![SourceFile {
                name: "p.cedar".into(),
                text: text.into(),
            }],
        }
    }

    #[tokio::test]
    async fn revisions_grow_and_rollback_undoes_the_latest_activation() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        assert_eq!(store.active().await.unwrap(), None);
        let one = store.push(draft("a")).await.unwrap();
        let two = store.push(draft("b")).await.unwrap();
        assert_eq!((one.revision, two.revision), (1, 2));
        assert_eq!(store.active().await.unwrap(), Some(2));
        assert!(matches!(
            store.rollback(1, 2).await,
            Err(StoreError::Conflict { expected: 1 })
        ));
        store.rollback(2, 1).await.unwrap();
        assert_eq!(store.active().await.unwrap(), Some(1));
        assert!(matches!(
            store.rollback(1, 0).await,
            Err(StoreError::NothingToRollBack)
        ));
        // Reopening sees the same state, and numbering continues.
        let store = DirStore::open(tmp.path()).unwrap();
        assert_eq!(store.push(draft("c")).await.unwrap().revision, 3);
        let listed: Vec<u64> = store
            .list(10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(listed, [3, 2, 1]);
        assert_eq!(store.get(2).await.unwrap().unwrap().files[0].text, "b");
        assert!(matches!(
            store.activate(9).await,
            Err(StoreError::UnknownRevision(9))
        ));
    }

    #[tokio::test]
    async fn a_shadow_is_stored_without_moving_the_active_pointer() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::open(tmp.path()).unwrap();
        store.push(draft("a")).await.unwrap();
        let (record, pointer) = store.push_shadow(draft("b")).await.unwrap();
        assert_eq!((record.revision, pointer.revision), (2, 2));
        assert_eq!(store.active().await.unwrap(), Some(1));
        assert_eq!(store.shadow().await.unwrap(), Some(pointer));
        // Stopping another revision's shadow leaves this one.
        assert_eq!(store.stop_shadow(Some(1)).await.unwrap(), None);
        assert_eq!(store.shadow().await.unwrap(), Some(pointer));
        assert_eq!(store.stop_shadow(Some(2)).await.unwrap(), Some(2));
        assert_eq!(store.shadow().await.unwrap(), None);
        assert_eq!(store.stop_shadow(None).await.unwrap(), None);
        assert_eq!(store.push(draft("c")).await.unwrap().revision, 3);
    }
}
