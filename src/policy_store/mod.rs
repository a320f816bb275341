//! Where pushed bundles and the active pointer live: a local directory (the embedded default) or
//! Redis, behind [`BundleStore`]. Every revision is kept; only a push, an activation or a
//! rollback moves the active pointer, and every replica follows it (see [`replica`]). Beside the
//! active pointer the store keeps an optional shadow pointer: a stored revision every replica
//! evaluates a sample of live traffic against without serving it (see [`crate::shadow`]).

mod dir;
mod last_good;
mod redis;
pub mod replica;
mod startup;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::bundle::SourceFile;

pub use dir::DirStore;
pub use last_good::LastGood;
pub use redis::RedisStore;

/// What is known about one revision: its content address, who pushed it, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRecord {
    /// Assigned by the store, only ever increasing.
    pub revision: u64,
    /// The content hash of the bundle's files.
    pub version: String,
    /// Who pushed it: the admin token's name, or `baton serve` for a seeded store.
    pub author: String,
    /// Why, as the author wrote it.
    pub message: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// How many policies the bundle holds.
    pub policies: usize,
    /// How many of its own test cases ran, all of which passed.
    pub tests: usize,
}

/// A revision and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBundle {
    /// What is known about the revision.
    pub record: BundleRecord,
    /// The bundle's files, as they were admitted.
    pub files: Vec<SourceFile>,
}

/// The revision every replica shadows, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowPointer {
    /// The shadowed revision.
    pub revision: u64,
    /// Seconds since the Unix epoch when it became the shadow.
    pub since: u64,
}

/// A bundle that passed admission, about to be stored; the store assigns its revision.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The content hash of the bundle's files.
    pub version: String,
    /// Who pushes it: the admin token's name.
    pub author: String,
    /// Why, as the author wrote it.
    pub message: String,
    /// How many policies the bundle holds.
    pub policies: usize,
    /// How many of its own test cases ran.
    pub tests: usize,
    /// The bundle's files.
    pub files: Vec<SourceFile>,
}

impl Draft {
    fn record(&self, revision: u64) -> BundleRecord {
        BundleRecord {
            revision,
            version: self.version.clone(),
            author: self.author.clone(),
            message: self.message.clone(),
            created_at: now_unix(),
            policies: self.policies,
            tests: self.tests,
        }
    }
}

/// Why the bundle store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No revision has this number.
    #[error("no bundle has revision {0}")]
    UnknownRevision(u64),
    /// A rollback was asked for with no activation before the active one.
    #[error("no earlier activation to roll back to")]
    NothingToRollBack,
    /// Another author moved the active pointer meanwhile; the caller may retry.
    #[error("the active bundle changed meanwhile: expected revision {expected}")]
    Conflict {
        /// The revision the operation expected to be active.
        expected: u64,
    },
    /// Redis or the store's directory could not be reached, read or written; nothing changed.
    #[error("the bundle store is unavailable: {0}")]
    Unavailable(String),
    /// The store holds data that does not parse, or a record without its files.
    #[error("the bundle store holds unreadable data: {0}")]
    Corrupt(String),
}

/// The storage of revisions and of the active pointer. Implementations keep each operation
/// atomic: a reader never sees the pointer on a revision that is not fully stored.
#[async_trait::async_trait]
pub trait BundleStore: Send + Sync {
    /// Stores `draft` as the next revision and makes it active.
    async fn push(&self, draft: Draft) -> Result<BundleRecord, StoreError>;
    /// Points at a stored revision and records the activation, so it can be rolled back.
    async fn activate(&self, revision: u64) -> Result<(), StoreError>;
    /// Undoes the latest activation, returning to `to`, provided `from` is still active and
    /// `to` is the activation before it.
    async fn rollback(&self, from: u64, to: u64) -> Result<(), StoreError>;
    /// The active revision, if any bundle was ever activated.
    async fn active(&self) -> Result<Option<u64>, StoreError>;
    /// The activations, oldest first; the last one is active.
    async fn activations(&self) -> Result<Vec<u64>, StoreError>;
    /// The revision and its files, or `None` if no revision has this number.
    async fn get(&self, revision: u64) -> Result<Option<StoredBundle>, StoreError>;
    /// Stores `draft` as the next revision without activating it, and makes it the shadow
    /// (replacing any other), in one step.
    async fn push_shadow(&self, draft: Draft) -> Result<(BundleRecord, ShadowPointer), StoreError>;
    /// The shadowed revision, if any.
    async fn shadow(&self) -> Result<Option<ShadowPointer>, StoreError>;
    /// Stops shadowing: always when `only` is `None`, else only while `only` is the shadow
    /// (an activation promotes its own revision and must not clear a newer shadow). Returns
    /// the revision that stopped being shadowed.
    async fn stop_shadow(&self, only: Option<u64>) -> Result<Option<u64>, StoreError>;
    /// The latest `limit` revisions, newest first.
    async fn list(&self, limit: usize) -> Result<Vec<BundleRecord>, StoreError>;
    /// A stream of "the pointer may have moved" notices from other replicas, when the store
    /// has one. Replicas poll as well, so a lost notice only delays a switch.
    fn subscribe(&self) -> Option<tokio::sync::watch::Receiver<u64>>;
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
