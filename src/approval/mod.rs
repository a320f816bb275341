//! Where approvals are kept: behind [`ApprovalStore`], in the store directory
//! ([`FileApprovals`], the embedded default, which survives restarts), in process
//! ([`MemoryApprovals`], for tests and embedding) or in Redis ([`RedisApprovals`]), shared by
//! every replica so an approval asked for on one replica can be given and used on another. What an approval allows is the
//! decision core's ([`crate::decision::approval`]); this module only keeps them, and every
//! change is a compare-and-set of the whole record, so two replicas can never both use one.

mod file;
mod memory;
mod outbox;
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use self::file::{ApprovalDirError, FileApprovals};
pub use self::memory::MemoryApprovals;
pub use self::outbox::{FORWARD_INTERVAL, LocalFirstApprovals};
pub use self::redis::RedisApprovals;
use crate::decision::{Approval, ApprovalRefused, ApprovalStatus};

/// How long a pending approval waits for an approver, and an approved one for its use.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(900);

/// Attempts at a compare-and-set before giving up on a contended record.
const ATTEMPTS: usize = 5;

/// How long a record is kept past its expiry, so a late use is told "expired" rather than
/// "unknown".
const KEPT_PAST_EXPIRY_SECS: u64 = 3600;

/// Whether a store still keeps `approval` at `now`: until a while past its expiry.
fn kept(approval: &Approval, now: u64) -> bool {
    approval.expires_at.saturating_add(KEPT_PAST_EXPIRY_SECS) > now
}

/// Why an approval could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The store holds no approval with this id: never given, or dropped after it expired.
    #[error("no approval with this id (it may have expired)")]
    NotFound,
    /// An approver decided on an approval already approved, rejected or used.
    #[error("the approval is {0:?}, not pending")]
    NotPending(ApprovalStatus),
    /// An approver decided after the approval lapsed.
    #[error("the approval expired")]
    Expired,
    /// Redis did not answer, or a record could not be encoded for it.
    #[error("the approval store is unreachable")]
    Unavailable,
    /// Every compare-and-set attempt found the record changed since it was read.
    #[error("the approval changed concurrently too often; retry")]
    Contended,
}

impl From<ApprovalRefused> for ApprovalError {
    fn from(e: ApprovalRefused) -> Self {
        match e {
            ApprovalRefused::NotPending(status) => Self::NotPending(status),
            ApprovalRefused::Expired => Self::Expired,
        }
    }
}

/// A record as stored, with the opaque version a compare-and-set must present.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The approval as read.
    pub approval: Approval,
    /// Opaque to callers: a replacement must present it unchanged.
    pub version: String,
}

/// Where approvals live. Implementations make [`ApprovalStore::replace`] atomic.
#[async_trait::async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Keeps a new approval until a while after it expires; an id already held is left as it
    /// is.
    async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError>;
    /// The approval and its version, or `None` if there is none with this id.
    async fn read(&self, id: &str) -> Result<Option<Versioned>, ApprovalError>;
    /// Replaces the approval with `next` only if it is still at `version`; false if it moved.
    async fn replace(
        &self,
        id: &str,
        version: &str,
        next: &Approval,
    ) -> Result<bool, ApprovalError>;
}

/// The approvals of this Baton, and how long a new one lives.
pub struct Approvals {
    store: Arc<dyn ApprovalStore>,
    /// How long a pending approval waits for an approver, and an approved one for its use.
    pub ttl: Duration,
}

impl Approvals {
    /// Approvals kept in `store`, each living `ttl` from when it is asked for.
    pub fn new(store: Arc<dyn ApprovalStore>, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// In process, with the default lifetime.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemoryApprovals::default()), DEFAULT_APPROVAL_TTL)
    }

    /// Keeps a new pending approval; `now` is seconds since the Unix epoch.
    pub async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
        self.store.create(approval, now).await
    }

    /// The approval `id` as it stands, or [`ApprovalError::NotFound`].
    pub async fn get(&self, id: &str) -> Result<Approval, ApprovalError> {
        Ok(self.read(id).await?.approval)
    }

    async fn read(&self, id: &str) -> Result<Versioned, ApprovalError> {
        self.store.read(id).await?.ok_or(ApprovalError::NotFound)
    }

    /// Applies `change` to the approval atomically and returns the result. A change that
    /// fails changes nothing.
    pub async fn update<E: From<ApprovalError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Approval) -> Result<(), E>,
    ) -> Result<Approval, E> {
        for _ in 0..ATTEMPTS {
            let Versioned {
                mut approval,
                version,
            } = self.read(id).await?;
            change(&mut approval)?;
            if self.store.replace(id, &version, &approval).await? {
                return Ok(approval);
            }
        }
        Err(ApprovalError::Contended.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::approval::pending;

    #[tokio::test]
    async fn an_update_that_fails_changes_nothing() {
        let approvals = Approvals::in_memory();
        approvals.create(&pending(200), 100).await.unwrap();
        let refused = approvals
            .update("a-1", |a| {
                a.decide(true, "carol", "late", 300)
                    .map_err(ApprovalError::from)
            })
            .await;
        assert!(matches!(refused, Err(ApprovalError::Expired)));
        assert_eq!(
            approvals.get("a-1").await.unwrap().status,
            ApprovalStatus::Pending
        );
        assert!(matches!(
            approvals.get("nope").await,
            Err(ApprovalError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_stale_version_does_not_replace() {
        let store = MemoryApprovals::default();
        store.create(&pending(200), 100).await.unwrap();
        let first = store.read("a-1").await.unwrap().unwrap();
        let mut used = first.approval.clone();
        used.status = ApprovalStatus::Used;
        assert!(store.replace("a-1", &first.version, &used).await.unwrap());
        assert!(!store.replace("a-1", &first.version, &used).await.unwrap());
    }
}
