//! Where approvals are kept: behind [`ApprovalStore`], in the store directory
//! ([`FileApprovals`], the embedded default, which survives restarts), in process
//! ([`MemoryApprovals`], for tests and embedding) or in Redis ([`RedisApprovals`]), shared by
//! every replica so an approval asked for on one replica can be given and used on another. What an approval allows is the
//! decision core's ([`crate::decision::approval`]); this module only keeps them, and every
//! change is a compare-and-set of the whole record, so two replicas can never both use one.

mod desk;
mod file;
mod memory;
mod outbox;
mod redis;

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::Duration;

pub use self::desk::ApprovalDesk;
pub use self::file::{ApprovalDirError, FileApprovals};
pub use self::memory::MemoryApprovals;
pub use self::outbox::{FORWARD_INTERVAL, LocalFirstApprovals};
pub use self::redis::RedisApprovals;
use crate::decision::{Approval, ApprovalRefused, ApprovalStatus};
use crate::identity::Identity;

/// How long a pending approval waits for an approver, and an approved one for its use.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(900);

/// Attempts at a compare-and-set before giving up on a contended record.
const ATTEMPTS: usize = 5;

/// How long a record is kept past its expiry, so a late use is told "expired" rather than
/// "unknown".
const KEPT_PAST_EXPIRY_SECS: u64 = 3600;

/// How many approvals a listing gives when the caller names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// The most approvals one listing gives.
pub const MAX_LIST_LIMIT: usize = 1000;

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
    /// The approver may not decide on this approval: the answer says why.
    #[error(transparent)]
    Refused(ApprovalRefused),
    /// The approver's directory identity is not a `User` of the active bundle (any more).
    #[error("approver `{0}` is not a User of the active bundle's directory")]
    NotInDirectory(String),
    /// The rationale is missing or too long.
    #[error("rationale {0}")]
    Rationale(String),
}

impl ApprovalError {
    /// A stable machine-readable reason, for `google.rpc.ErrorInfo`, where there is one.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Refused(ApprovalRefused::SelfApproval(_)) => Some("SELF_APPROVAL"),
            Self::Refused(ApprovalRefused::AlreadyApprovedBy(_)) => Some("ALREADY_APPROVED_BY"),
            Self::Refused(ApprovalRefused::IdentityRequired(_)) => {
                Some("APPROVER_IDENTITY_REQUIRED")
            }
            Self::NotInDirectory(_) => Some("APPROVER_NOT_IN_DIRECTORY"),
            _ => None,
        }
    }
}

impl From<ApprovalRefused> for ApprovalError {
    fn from(e: ApprovalRefused) -> Self {
        match e {
            ApprovalRefused::NotPending(status) => Self::NotPending(status),
            ApprovalRefused::Expired => Self::Expired,
            refused => Self::Refused(refused),
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

/// An approval as a store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The approval as read.
    pub approval: Approval,
    /// Held only in this replica's outbox: the shared store has not taken it yet, so other
    /// replicas cannot see it until it does.
    pub in_outbox: bool,
}

/// Every approval a store holds, in no particular order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The approvals.
    pub approvals: Vec<Listed>,
    /// False when part of the store could not be read (the shared store is down): the
    /// approvals are then only those this replica holds.
    pub complete: bool,
}

impl Listing {
    /// Everything in a store read whole, none of it from an outbox.
    pub fn complete(approvals: impl IntoIterator<Item = Approval>) -> Self {
        Self {
            approvals: approvals
                .into_iter()
                .map(|approval| Listed {
                    approval,
                    in_outbox: false,
                })
                .collect(),
            complete: true,
        }
    }
}

/// Which approvals a listing gives, and how many at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalQuery {
    /// Only those with this status; for pending and approved, only those not yet expired (the
    /// ones an approver can still decide, or a request can still use).
    pub status: Option<ApprovalStatus>,
    /// Only those asked on behalf of this principal (the first of the chain).
    pub principal: Option<Identity>,
    /// At most this many, from 1 to [`MAX_LIST_LIMIT`].
    pub limit: usize,
}

impl Default for ApprovalQuery {
    fn default() -> Self {
        Self {
            status: None,
            principal: None,
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

impl ApprovalQuery {
    fn matches(&self, approval: &Approval, now: u64) -> bool {
        let status = match self.status {
            None => true,
            Some(s @ (ApprovalStatus::Pending | ApprovalStatus::Approved)) => {
                approval.status == s && now < approval.expires_at
            }
            Some(s) => approval.status == s,
        };
        status
            && self
                .principal
                .as_ref()
                .is_none_or(|p| approval.chain.first() == Some(p))
    }
}

/// One listing's approvals, in the order an approver reads them.
#[derive(Debug, Clone, Default)]
pub struct ApprovalPage {
    /// Pending first, then approved, then the rest (decided, used or expired); newest first
    /// within each.
    pub approvals: Vec<Listed>,
    /// More approvals matched than the limit let through.
    pub truncated: bool,
    /// False when the shared store could not be read: only this replica's are listed.
    pub complete: bool,
}

/// Where an approval stands in a listing: what waits for an approver, then what waits for its
/// use, then the rest; newest first within each, the id (a UUIDv7) breaking ties.
fn listing_order(approval: &Approval, now: u64) -> (u8, Reverse<u64>, Reverse<String>) {
    let live = now < approval.expires_at;
    let group = match approval.status {
        ApprovalStatus::Pending if live => 0,
        ApprovalStatus::Approved if live => 1,
        _ => 2,
    };
    (
        group,
        Reverse(approval.requested_at),
        Reverse(approval.id.clone()),
    )
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
    /// Every approval the store holds; some may be past keeping, which callers skip.
    async fn list(&self) -> Result<Listing, ApprovalError>;
    /// The store's generation, which it loses with its data; `None` when it has none (emptied,
    /// or never marked). A store that cannot lose its data alone has one that never changes.
    async fn generation(&self) -> Result<Option<String>, ApprovalError> {
        Ok(Some(LASTING_GENERATION.to_owned()))
    }
    /// Marks the store with `generation` unless it has one already; returns the one it has
    /// now.
    async fn mark(&self, generation: &str) -> Result<String, ApprovalError> {
        let _ = generation;
        Ok(LASTING_GENERATION.to_owned())
    }
}

/// The generation of a store that keeps its data as long as the process or the disk does.
const LASTING_GENERATION: &str = "lasting";

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

    /// The approvals `query` asks for, as they stand at `now`, in listing order.
    pub async fn list(
        &self,
        query: &ApprovalQuery,
        now: u64,
    ) -> Result<ApprovalPage, ApprovalError> {
        let Listing {
            mut approvals,
            complete,
        } = self.store.list().await?;
        approvals.retain(|l| kept(&l.approval, now) && query.matches(&l.approval, now));
        approvals.sort_by_cached_key(|l| listing_order(&l.approval, now));
        let truncated = approvals.len() > query.limit;
        approvals.truncate(query.limit);
        Ok(ApprovalPage {
            approvals,
            truncated,
            complete,
        })
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
                a.decide(
                    true,
                    &crate::decision::Approver::admin("carol"),
                    "late",
                    300,
                )
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

    fn asked(id: &str, status: ApprovalStatus, requested_at: u64, principal: &str) -> Approval {
        use crate::identity::IdentityKind;
        Approval {
            id: id.into(),
            status,
            chain: vec![Identity::new(IdentityKind::User, principal)],
            requested_at,
            expires_at: requested_at + 900,
            ..pending(0)
        }
    }

    async fn listed(approvals: &Approvals, query: ApprovalQuery, now: u64) -> Vec<String> {
        let page = approvals.list(&query, now).await.unwrap();
        page.approvals.into_iter().map(|l| l.approval.id).collect()
    }

    #[tokio::test]
    async fn listings_give_pending_then_approved_then_the_rest_newest_first_and_filter() {
        use ApprovalStatus::{Approved, Pending, Rejected, Used};
        let approvals = Approvals::in_memory();
        for a in [
            asked("old-pending", Pending, 1000, "bob"),
            asked("new-pending", Pending, 1200, "alice"),
            asked("expired-pending", Pending, 100, "bob"),
            asked("approved", Approved, 1100, "bob"),
            asked("rejected", Rejected, 1300, "bob"),
            asked("used", Used, 1250, "alice"),
        ] {
            approvals.create(&a, 1300).await.unwrap();
        }
        let now = 1400;
        let all = listed(&approvals, ApprovalQuery::default(), now).await;
        assert_eq!(
            all,
            [
                "new-pending",
                "old-pending",
                "approved",
                "rejected",
                "used",
                "expired-pending"
            ]
        );
        let pending_only = ApprovalQuery {
            status: Some(Pending),
            ..ApprovalQuery::default()
        };
        assert_eq!(
            listed(&approvals, pending_only, now).await,
            ["new-pending", "old-pending"]
        );
        let bobs = ApprovalQuery {
            principal: Some(Identity::new(crate::identity::IdentityKind::User, "bob")),
            ..ApprovalQuery::default()
        };
        assert_eq!(
            listed(&approvals, bobs, now).await,
            ["old-pending", "approved", "rejected", "expired-pending"]
        );
        let two = ApprovalQuery {
            limit: 2,
            ..ApprovalQuery::default()
        };
        let page = approvals.list(&two, now).await.unwrap();
        assert_eq!(page.approvals.len(), 2);
        assert!(page.truncated && page.complete);
        // Past keeping, a record is no longer listed even before the store drops it.
        let much_later = 1300 + 900 + KEPT_PAST_EXPIRY_SECS;
        assert!(
            listed(&approvals, ApprovalQuery::default(), much_later)
                .await
                .is_empty()
        );
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
