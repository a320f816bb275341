//! Approvals recorded on local disk first, then forwarded to the shared store. Opening a
//! pending approval used to wait on Redis and fail the whole Authorize with `UNAVAILABLE`
//! whenever Redis was down or slower than its timeout; an approval-required answer never
//! needed Redis to be up, only to learn of the approval eventually.
//!
//! Each new approval is written to `{dir}/{id}.json` (synced) before the shared store is
//! tried; if the store does not take it, a background task forwards it when the store is back,
//! and reads on this replica find it locally meanwhile. The shared store creates only what it
//! does not hold, so a late forward never undoes an approver's decision.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::file::{ApprovalDirError, ApprovalFiles};
use super::{ApprovalError, ApprovalStore, Listed, Listing, Versioned};
use crate::decision::Approval;

/// How often waiting approvals are offered to the shared store again.
pub const FORWARD_INTERVAL: Duration = Duration::from_millis(250);

/// The version of a record read from the outbox: no compare-and-set can present it, since
/// only the shared store decides approvals.
const LOCAL_VERSION: &str = "outbox";

/// Approvals that reach the shared store through a durable local outbox.
pub struct LocalFirstApprovals {
    shared: Arc<dyn ApprovalStore>,
    files: ApprovalFiles,
    /// What the outbox holds that the shared store has not taken yet.
    waiting: Mutex<HashMap<String, Approval>>,
}

impl LocalFirstApprovals {
    /// Opens the outbox in `dir` with what an earlier run left waiting, and forwards it to
    /// `shared` every [`FORWARD_INTERVAL`] while any waits. Must be called within a Tokio
    /// runtime.
    pub fn open(shared: Arc<dyn ApprovalStore>, dir: &Path) -> Result<Arc<Self>, ApprovalDirError> {
        let failed = |source| ApprovalDirError {
            path: dir.to_owned(),
            source,
        };
        let files = ApprovalFiles::open(dir).map_err(failed)?;
        let waiting: HashMap<String, Approval> = files
            .all()
            .map_err(failed)?
            .into_iter()
            .map(|approval| (approval.id.clone(), approval))
            .collect();
        if !waiting.is_empty() {
            tracing::info!(
                approvals = waiting.len(),
                "approvals wait in the outbox for the shared store"
            );
        }
        let outbox = Arc::new(Self {
            shared,
            files,
            waiting: Mutex::new(waiting),
        });
        tokio::spawn(forward_until_dropped(Arc::downgrade(&outbox)));
        Ok(outbox)
    }

    /// How many approvals wait for the shared store.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Approval>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `approval` to the outbox and syncs it, so a crash does not lose it.
    fn keep(&self, approval: &Approval) -> std::io::Result<()> {
        self.files.write(approval)?;
        self.lock().insert(approval.id.clone(), approval.clone());
        Ok(())
    }

    /// The shared store took `id`: it leaves the outbox.
    fn forwarded(&self, id: &str) {
        self.lock().remove(id);
        if let Err(e) = self.files.remove(id) {
            tracing::warn!(error = %e, id, "cannot remove a forwarded approval from the outbox");
        }
    }

    /// Offers `approval` to the shared store; true if it holds it now.
    async fn offer(&self, approval: &Approval) -> bool {
        match self.shared.create(approval, approval.requested_at).await {
            Ok(()) => {
                self.forwarded(&approval.id);
                true
            }
            Err(_) => false,
        }
    }

    /// Offers everything waiting, oldest first; stops at the first refusal, since the store
    /// is most likely still down.
    pub async fn forward(&self) {
        let mut waiting: Vec<Approval> = self.lock().values().cloned().collect();
        waiting.sort_by_key(|a| a.requested_at);
        for approval in waiting {
            if !self.offer(&approval).await {
                return;
            }
        }
    }
}

async fn forward_until_dropped(outbox: Weak<LocalFirstApprovals>) {
    let mut tick = tokio::time::interval(FORWARD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(outbox) = outbox.upgrade() else {
            return;
        };
        if outbox.waiting() > 0 {
            outbox.forward().await;
        }
    }
}

#[async_trait::async_trait]
impl ApprovalStore for LocalFirstApprovals {
    async fn create(&self, approval: &Approval, _now: u64) -> Result<(), ApprovalError> {
        if let Err(e) = self.keep(approval) {
            // Without the outbox the shared store is the only place left to try.
            tracing::warn!(error = %e, "cannot write an approval to the outbox");
            return self.shared.create(approval, approval.requested_at).await;
        }
        if !self.offer(approval).await {
            tracing::debug!(
                id = approval.id,
                "the shared store did not take an approval; it waits in the outbox"
            );
        }
        Ok(())
    }

    async fn read(&self, id: &str) -> Result<Option<Versioned>, ApprovalError> {
        let local = self.lock().get(id).cloned();
        if let Some(approval) = local
            && !self.offer(&approval).await
        {
            return Ok(Some(Versioned {
                approval,
                version: LOCAL_VERSION.to_owned(),
            }));
        }
        self.shared.read(id).await
    }

    async fn replace(
        &self,
        id: &str,
        version: &str,
        next: &Approval,
    ) -> Result<bool, ApprovalError> {
        if version == LOCAL_VERSION {
            return Err(ApprovalError::Unavailable);
        }
        self.shared.replace(id, version, next).await
    }

    /// The shared store's approvals and those waiting here, marked as such. With the shared
    /// store down, what waits here is still listed, in a listing marked incomplete.
    async fn list(&self) -> Result<Listing, ApprovalError> {
        let waiting: Vec<Approval> = self.lock().values().cloned().collect();
        let mut listing = match self.shared.list().await {
            Ok(listing) => listing,
            Err(ApprovalError::Unavailable) => Listing {
                approvals: Vec::new(),
                complete: false,
            },
            Err(e) => return Err(e),
        };
        // One the shared store took meanwhile is listed as it stands there.
        let shared: std::collections::HashSet<String> = listing
            .approvals
            .iter()
            .map(|l| l.approval.id.clone())
            .collect();
        listing
            .approvals
            .extend(
                waiting
                    .into_iter()
                    .filter(|a| !shared.contains(&a.id))
                    .map(|approval| Listed {
                        approval,
                        in_outbox: true,
                    }),
            );
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::approval::pending;

    /// A shared store that is down.
    struct Down;

    #[async_trait::async_trait]
    impl ApprovalStore for Down {
        async fn create(&self, _: &Approval, _: u64) -> Result<(), ApprovalError> {
            Err(ApprovalError::Unavailable)
        }
        async fn read(&self, _: &str) -> Result<Option<Versioned>, ApprovalError> {
            Err(ApprovalError::Unavailable)
        }
        async fn replace(&self, _: &str, _: &str, _: &Approval) -> Result<bool, ApprovalError> {
            Err(ApprovalError::Unavailable)
        }
        async fn list(&self) -> Result<Listing, ApprovalError> {
            Err(ApprovalError::Unavailable)
        }
    }

    #[tokio::test]
    async fn an_approval_opened_while_the_store_is_down_is_kept_and_forwarded_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = LocalFirstApprovals::open(Arc::new(Down), dir.path()).unwrap();
        outbox.create(&pending(200), 100).await.unwrap();
        let read = outbox.read("a-1").await.unwrap().unwrap();
        assert_eq!(
            read.approval.status,
            crate::decision::ApprovalStatus::Pending
        );
        // Listed while the store is down, marked as waiting here, in an incomplete listing.
        let listing = outbox.list().await.unwrap();
        assert!(!listing.complete);
        assert_eq!(listing.approvals.len(), 1);
        assert!(listing.approvals[0].in_outbox);
        drop(outbox);

        let shared = Arc::new(super::super::MemoryApprovals::default());
        let reopened = LocalFirstApprovals::open(shared.clone(), dir.path()).unwrap();
        assert_eq!(reopened.waiting(), 1);
        reopened.forward().await;
        assert_eq!(reopened.waiting(), 0);
        assert!(shared.read("a-1").await.unwrap().is_some());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let listing = reopened.list().await.unwrap();
        assert!(listing.complete);
        assert_eq!(listing.approvals.len(), 1);
        assert!(!listing.approvals[0].in_outbox);
    }
}
