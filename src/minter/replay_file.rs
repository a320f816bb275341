//! A replay guard in a local file, for minters without Redis: each `baton-minter mint` is a
//! process of its own, and an in-memory guard let the same verdict be redeemed twice through
//! the documented pipe. The file outlives every process; an exclusive lock on it makes
//! check-and-record one step across processes, and each record is synced before the mint.

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::replay::{ReplayGuard, ReplayStoreError};

/// Used `jti`s as JSON lines `[until, jti]` in one file, shared by every minter process on
/// this host that names it.
#[derive(Debug)]
pub struct FileReplayGuard {
    path: PathBuf,
}

impl FileReplayGuard {
    /// The guard kept in `path`, created (with its directory) if needed.
    pub fn open(path: &Path) -> Result<Self, ReplayStoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(ReplayStoreError::File)?;
        }
        open(path).map_err(ReplayStoreError::File)?;
        Ok(Self {
            path: path.to_owned(),
        })
    }
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// Records `jti` until `until` unless a record of it is still live; true if it was new.
/// Blocking: it waits for the lock of any other minter using the file.
fn use_once(path: &Path, jti: &str, until: u64, now: u64) -> std::io::Result<bool> {
    use fs4::fs_std::FileExt as _;
    let mut file = open(path)?;
    // Released when `file` closes, however this returns.
    file.lock_exclusive()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let used = text
        .lines()
        .filter_map(|line| serde_json::from_str::<(u64, String)>(line).ok())
        .any(|(line_until, line_jti)| line_until > now && line_jti == jti);
    if used {
        return Ok(false);
    }
    let line = serde_json::to_string(&(until, jti)).map_err(std::io::Error::other)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    file.sync_data()?;
    Ok(true)
}

#[async_trait::async_trait]
impl ReplayGuard for FileReplayGuard {
    async fn first_use(&self, jti: &str, until: u64, now: u64) -> Result<bool, ReplayStoreError> {
        let (path, jti) = (self.path.clone(), jti.to_owned());
        tokio::task::spawn_blocking(move || use_once(&path, &jti, until, now))
            .await
            .map_err(|e| ReplayStoreError::File(std::io::Error::other(e)))?
            .map_err(ReplayStoreError::File)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jti_is_used_once_across_guards_on_one_file_until_it_lapses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("minter").join("used.jsonl");
        let first = FileReplayGuard::open(&path).unwrap();
        assert!(first.first_use("j-1", 200, 100).await.unwrap());
        assert!(!first.first_use("j-1", 200, 150).await.unwrap());
        // Another process, as a restarted minter or a second `mint`, reads the same file.
        let second = FileReplayGuard::open(&path).unwrap();
        assert!(!second.first_use("j-1", 200, 150).await.unwrap());
        assert!(second.first_use("j-2", 200, 150).await.unwrap());
        // A lapsed record no longer counts: the verdict itself has expired by then.
        assert!(second.first_use("j-1", 300, 250).await.unwrap());
        // A jti cannot forge lines.
        assert!(
            second
                .first_use("x\n[999,\"j-3\"]", 300, 250)
                .await
                .unwrap()
        );
        assert!(second.first_use("j-3", 300, 250).await.unwrap());
    }
}
