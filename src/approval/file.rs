//! Approvals in the store directory, one `{dir}/{id}.json` each: the store of a Baton without
//! Redis, so an approval asked for before a restart can be given and used after it.
//!
//! Each record is written whole and durably ([`crate::store_dir::replace_file`]). The stored
//! JSON is its own version, as in Redis: a compare-and-set replaces a record only while it is
//! byte for byte what was read, and compare-and-sets take turns behind a mutex. That is enough
//! because one process owns the store directory (`Application::build` locks it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::{ApprovalError, ApprovalStore, Listing, Versioned, kept};
use crate::decision::Approval;

/// How often, at most, creating an approval first drops the records past keeping.
const PURGE_INTERVAL_SECS: u64 = 60;

/// The longest approval id a file is named after; Baton's own are UUIDs.
const MAX_ID_LEN: usize = 128;

/// Why a directory of approvals cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot keep approvals in `{path}`")]
pub struct ApprovalDirError {
    pub(super) path: PathBuf,
    pub(super) source: std::io::Error,
}

/// A directory of approvals, one JSON file each, named after its id. Blocking.
#[derive(Debug, Clone)]
pub(super) struct ApprovalFiles {
    dir: PathBuf,
}

impl ApprovalFiles {
    /// The approvals in `dir`, created if needed.
    pub(super) fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `id`, or `None` for an id no approval can have: ids come from requests,
    /// and one such as `../x` must not name a file outside the directory.
    fn path(&self, id: &str) -> Option<PathBuf> {
        let plain = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        plain.then(|| self.dir.join(format!("{id}.json")))
    }

    /// Writes `approval` whole and durably, replacing any record of its id.
    pub(super) fn write(&self, approval: &Approval) -> std::io::Result<()> {
        let path = self.path(&approval.id).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{}` cannot name an approval file", approval.id),
            )
        })?;
        let json = serde_json::to_vec(approval).map_err(std::io::Error::other)?;
        crate::store_dir::replace_file(&path, &json)
    }

    /// The record of `id` and its bytes as stored, or `None` if there is none. A record this
    /// release cannot read is of no use to it: as good as absent.
    pub(super) fn read(&self, id: &str) -> std::io::Result<Option<(Approval, Vec<u8>)>> {
        let Some(path) = self.path(id) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)
                .ok()
                .map(|approval| (approval, bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves the record of `id` into `to`, another directory of approvals.
    pub(super) fn move_to(&self, id: &str, to: &ApprovalFiles) -> std::io::Result<()> {
        match (self.path(id), to.path(id)) {
            (Some(from), Some(into)) => crate::store_dir::move_file(&from, &into),
            _ => Ok(()),
        }
    }

    /// Removes the record of `id`, if any.
    pub(super) fn remove(&self, id: &str) -> std::io::Result<()> {
        match self.path(id) {
            Some(path) => crate::store_dir::remove_file(&path),
            None => Ok(()),
        }
    }

    /// Every readable record; an unreadable one is logged and skipped.
    pub(super) fn all(&self) -> std::io::Result<Vec<Approval>> {
        let mut approvals = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Approval>(&bytes).ok())
            {
                Some(approval) => approvals.push(approval),
                None => {
                    tracing::warn!(path = %path.display(), "ignoring an unreadable approval file")
                }
            }
        }
        Ok(approvals)
    }
}

/// Approvals in the store directory, surviving restarts: the embedded default.
#[derive(Debug)]
pub struct FileApprovals {
    files: ApprovalFiles,
    /// Held across each compare-and-set and create, with when records past keeping are next
    /// dropped.
    writing: Arc<Mutex<u64>>,
}

impl FileApprovals {
    /// The approvals kept in `dir`, created if needed.
    pub fn open(dir: &Path) -> Result<Self, ApprovalDirError> {
        let failed = |source| ApprovalDirError {
            path: dir.to_owned(),
            source,
        };
        let files = ApprovalFiles::open(dir).map_err(failed)?;
        let held = files.all().map_err(failed)?.len();
        if held > 0 {
            tracing::info!(approvals = held, dir = %dir.display(), "approvals kept from an earlier run");
        }
        Ok(Self {
            files,
            writing: Arc::new(Mutex::new(0)),
        })
    }

    /// Runs `work` on the files off the async workers: every write is synced to disk.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ApprovalFiles, &Mutex<u64>) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, ApprovalError> {
        let (files, writing) = (self.files.clone(), Arc::clone(&self.writing));
        let dir = files.dir().to_owned();
        let done = tokio::task::spawn_blocking(move || work(&files, &writing))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        done.map_err(|e| {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot use the approvals directory");
            ApprovalError::Unavailable
        })
    }
}

fn lock(writing: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    writing.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait::async_trait]
impl ApprovalStore for FileApprovals {
    async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
        let approval = approval.clone();
        self.blocking(move |files, writing| {
            let mut next_purge = lock(writing);
            if now >= *next_purge {
                for old in files.all()?.iter().filter(|a| !kept(a, now)) {
                    files.remove(&old.id)?;
                }
                *next_purge = now.saturating_add(PURGE_INTERVAL_SECS);
            }
            // Create only, as every store: an id already held is left as it is.
            if files.read(&approval.id)?.is_none() {
                files.write(&approval)?;
            }
            Ok(())
        })
        .await
    }

    async fn read(&self, id: &str) -> Result<Option<Versioned>, ApprovalError> {
        let id = id.to_owned();
        let read = self.blocking(move |files, _| files.read(&id)).await?;
        Ok(read.map(|(approval, bytes)| Versioned {
            approval,
            version: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    }

    async fn replace(
        &self,
        id: &str,
        version: &str,
        next: &Approval,
    ) -> Result<bool, ApprovalError> {
        let (id, version, next) = (id.to_owned(), version.to_owned(), next.clone());
        let replaced = self
            .blocking(move |files, writing| {
                let _turn = lock(writing);
                let Some((_, bytes)) = files.read(&id)? else {
                    return Ok(None);
                };
                if String::from_utf8_lossy(&bytes) != version {
                    return Ok(Some(false));
                }
                files.write(&next)?;
                Ok(Some(true))
            })
            .await?;
        replaced.ok_or(ApprovalError::NotFound)
    }

    async fn list(&self) -> Result<Listing, ApprovalError> {
        let all = self.blocking(|files, _| files.all()).await?;
        Ok(Listing::complete(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::ApprovalStatus;
    use crate::decision::approval::pending;

    #[tokio::test]
    async fn approvals_survive_a_reopen_and_a_stale_version_does_not_replace() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileApprovals::open(dir.path()).unwrap();
        store.create(&pending(200), 100).await.unwrap();
        let first = store.read("a-1").await.unwrap().unwrap();
        drop(store);

        let store = FileApprovals::open(dir.path()).unwrap();
        let again = store.read("a-1").await.unwrap().unwrap();
        assert_eq!(again.approval, first.approval);
        let mut approved = again.approval.clone();
        approved.status = ApprovalStatus::Approved;
        assert!(
            store
                .replace("a-1", &again.version, &approved)
                .await
                .unwrap()
        );
        assert!(
            !store
                .replace("a-1", &again.version, &approved)
                .await
                .unwrap()
        );
        // A second create of the same id (a forward from an outbox) changes nothing.
        store.create(&pending(200), 100).await.unwrap();
        let now = store.read("a-1").await.unwrap().unwrap().approval;
        assert_eq!(now.status, ApprovalStatus::Approved);
        assert!(matches!(
            store.replace("nope", "v", &approved).await,
            Err(ApprovalError::NotFound)
        ));
    }

    #[tokio::test]
    async fn records_are_dropped_a_while_past_their_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileApprovals::open(dir.path()).unwrap();
        store.create(&pending(200), 100).await.unwrap();
        let later = pending(200 + 2 * super::super::KEPT_PAST_EXPIRY_SECS);
        let later = Approval {
            id: "a-2".into(),
            ..later
        };
        // Still kept an instant past expiry, so a late use hears "expired".
        store.create(&later, 201).await.unwrap();
        assert!(store.read("a-1").await.unwrap().is_some());
        let much_later = 200 + super::super::KEPT_PAST_EXPIRY_SECS + PURGE_INTERVAL_SECS;
        let third = Approval {
            id: "a-3".into(),
            ..pending(much_later + 900)
        };
        store.create(&third, much_later).await.unwrap();
        assert!(store.read("a-1").await.unwrap().is_none());
        assert_eq!(store.list().await.unwrap().approvals.len(), 2);
    }

    #[tokio::test]
    async fn an_id_that_is_not_a_plain_name_names_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileApprovals::open(&dir.path().join("approvals")).unwrap();
        let outside = dir.path().join("outside.json");
        std::fs::write(&outside, serde_json::to_vec(&pending(200)).unwrap()).unwrap();
        assert!(store.read("../outside").await.unwrap().is_none());
        let bad = Approval {
            id: "../outside".into(),
            ..pending(200)
        };
        assert!(store.create(&bad, 100).await.is_err());
    }
}
