//! Where revocations are kept: the trait, and the embedded store, a local file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::{Revocation, RevocationError, Target};

/// Where revocations are kept, so every replica (and every restart) finds them.
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync {
    /// Puts `revocation` in the store, replacing any earlier one of the same target. An error
    /// means it is in force nowhere.
    async fn put(&self, revocation: &Revocation) -> Result<(), RevocationError>;
    /// Removes the revocation of `target`, if any.
    async fn remove(&self, target: &Target) -> Result<(), RevocationError>;
    /// Every revocation the store holds, lapsed or not, and the store's generation.
    async fn load(&self) -> Result<Loaded, RevocationError>;
    /// Marks the store with `generation` and adds `missing`, the revocations this replica holds
    /// that the store lacks. Other entries stay: a re-seed is a union, never a replacement.
    async fn reseed(&self, generation: &str, missing: &[Revocation])
    -> Result<(), RevocationError>;
    /// Forgets revocations that lapsed; best effort, since lapsed ones are not in force anyway.
    async fn forget(&self, lapsed: &[Target]);
    /// Rings when another replica changed the store, for stores other replicas share.
    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<String>>;
    /// Whether other replicas share this store, so this replica must follow it.
    fn is_shared(&self) -> bool;
}

/// What a store holds, and the marker that tells a store that lost its data from one whose
/// revocations were all lifted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Every revocation the store holds, lapsed or not.
    pub revocations: Vec<Revocation>,
    /// Written when the store is first seeded and kept with its data: `None` means the store
    /// lost everything (a flushed or restarted-empty Redis) or was never seeded, so an empty
    /// set proves nothing.
    pub generation: Option<String>,
}

/// The generation of a store that cannot lose its data behind a replica's back.
pub(super) const LOCAL_GENERATION: &str = "local";

/// The embedded store: revocations in a local JSON file, the truth for a single replica
/// (or in memory only, without a file).
#[derive(Debug)]
pub struct FileRevocations {
    path: Option<PathBuf>,
    held: Mutex<Vec<Revocation>>,
}

impl FileRevocations {
    /// Reads the file at `path`, if it exists; a corrupt file refuses to start rather than
    /// lift what it held.
    pub fn open(path: Option<PathBuf>) -> Result<Self, RevocationError> {
        let held = match &path {
            Some(path) => read_file(path)?,
            None => Vec::new(),
        };
        Ok(Self {
            path,
            held: Mutex::new(held),
        })
    }

    /// No file: revocations live as long as the process.
    pub fn default_in_memory() -> Self {
        Self {
            path: None,
            held: Mutex::new(Vec::new()),
        }
    }

    /// What the store holds now.
    pub fn held(&self) -> Vec<Revocation> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn change(&self, change: impl FnOnce(&mut Vec<Revocation>)) -> Result<(), RevocationError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = held.clone();
        change(&mut next);
        if let Some(path) = &self.path {
            write_file(path, &next)?;
        }
        *held = next;
        Ok(())
    }
}

#[async_trait::async_trait]
impl RevocationStore for FileRevocations {
    async fn put(&self, revocation: &Revocation) -> Result<(), RevocationError> {
        self.change(|all| {
            all.retain(|r| r.target != revocation.target);
            all.push(revocation.clone());
        })
    }

    async fn remove(&self, target: &Target) -> Result<(), RevocationError> {
        self.change(|all| all.retain(|r| &r.target != target))
    }

    async fn load(&self) -> Result<Loaded, RevocationError> {
        Ok(Loaded {
            revocations: self.held(),
            generation: Some(LOCAL_GENERATION.to_owned()),
        })
    }

    async fn reseed(
        &self,
        _generation: &str,
        missing: &[Revocation],
    ) -> Result<(), RevocationError> {
        self.change(|all| {
            for revocation in missing {
                if !all.iter().any(|r| r.target == revocation.target) {
                    all.push(revocation.clone());
                }
            }
        })
    }

    async fn forget(&self, lapsed: &[Target]) {
        if let Err(e) = self.change(|all| all.retain(|r| !lapsed.contains(&r.target))) {
            tracing::warn!(error = %crate::telemetry::chain(&e), "cannot forget lapsed revocations on disk");
        }
    }

    fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    fn is_shared(&self) -> bool {
        false
    }
}

/// Reads a revocations file; a missing one holds none.
pub fn read_file(path: &Path) -> Result<Vec<Revocation>, RevocationError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| RevocationError::Corrupt {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(RevocationError::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces the file whole, never half-written.
pub fn write_file(path: &Path, all: &[Revocation]) -> Result<(), RevocationError> {
    let io = |source| RevocationError::File {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec_pretty(all).map_err(|e| io(std::io::Error::other(e)))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, json).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

/// Where the generation of the copy at `copy` is kept.
fn generation_path(copy: &Path) -> PathBuf {
    copy.with_extension("generation")
}

/// The generation the copy at `copy` was taken under; None if unknown.
pub fn read_generation(copy: &Path) -> Option<String> {
    let text = std::fs::read_to_string(generation_path(copy)).ok()?;
    let generation = text.trim();
    (!generation.is_empty()).then(|| generation.to_owned())
}

/// Keeps the generation of the copy at `copy` beside it.
pub fn write_generation(copy: &Path, generation: &str) -> Result<(), RevocationError> {
    let path = generation_path(copy);
    let io = |source| RevocationError::File {
        path: path.clone(),
        source,
    };
    let partial = path.with_extension("generation.partial");
    std::fs::write(&partial, generation).map_err(io)?;
    std::fs::rename(&partial, &path).map_err(io)
}
