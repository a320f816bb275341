//! Approvals recorded on local disk first, then forwarded to the shared store. Opening a
//! pending approval used to wait on Redis and fail the whole Authorize with `UNAVAILABLE`
//! whenever Redis was down or slower than its timeout; an approval-required answer never
//! needed Redis to be up, only to learn of the approval eventually.
//!
//! Each new approval is written to `{dir}/{id}.json` (synced) before the shared store is
//! tried; if the store does not take it, a background task forwards it when the store is back,
//! and reads on this replica find it locally meanwhile. The shared store creates only what it
//! does not hold, so a late forward never undoes an approver's decision.
//!
//! A forwarded approval moves to `{dir}/sent/`, a copy kept while it may still wait for an
//! approver: until it expires, or this replica sees it decided or used. Redis can lose its data
//! (`FLUSHALL`, a restart without persistence), and pending approvals with it; the shared store
//! carries a generation it loses with them ([`ApprovalStore::generation`]). When it finds none,
//! or one it has not seen, this replica forwards its copies again (still pending: one decided
//! elsewhere is asked of an approver again, which fails closed), marks the store, and counts a
//! re-seed (`baton_store_reseeds_total{store="approvals"}`) when the data was lost.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::file::{ApprovalDirError, ApprovalFiles};
use super::{ApprovalError, ApprovalStore, Listed, Listing, Versioned};
use crate::decision::{Approval, ApprovalStatus};
use crate::metrics::Metrics;

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
    sent: ApprovalFiles,
    /// Pending approvals the shared store took from here, kept to forward again should it
    /// lose them.
    copies: Mutex<HashMap<String, Approval>>,
    /// The shared store's generation when this replica last made sure it holds the copies.
    known: Mutex<Option<String>>,
    metrics: Arc<Metrics>,
}

fn all_by_id(files: &ApprovalFiles) -> std::io::Result<HashMap<String, Approval>> {
    Ok(files
        .all()?
        .into_iter()
        .map(|approval| (approval.id.clone(), approval))
        .collect())
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalFirstApprovals {
    /// Opens the outbox in `dir` with what an earlier run left waiting and sent, and every
    /// [`FORWARD_INTERVAL`] forwards what waits to `shared` and makes sure it still holds what
    /// was sent. Must be called within a Tokio runtime.
    pub fn open(
        shared: Arc<dyn ApprovalStore>,
        dir: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, ApprovalDirError> {
        let failed = |path: &Path| {
            let path = path.to_owned();
            move |source| ApprovalDirError { path, source }
        };
        let files = ApprovalFiles::open(dir).map_err(failed(dir))?;
        let waiting = all_by_id(&files).map_err(failed(dir))?;
        let sent_dir = dir.join("sent");
        let sent = ApprovalFiles::open(&sent_dir).map_err(failed(&sent_dir))?;
        let copies = all_by_id(&sent).map_err(failed(&sent_dir))?;
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
            sent,
            copies: Mutex::new(copies),
            known: Mutex::new(None),
            metrics,
        });
        tokio::spawn(forward_until_dropped(Arc::downgrade(&outbox)));
        Ok(outbox)
    }

    /// How many approvals wait for the shared store.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    /// How many pending approvals this replica keeps copies of, to forward again should the
    /// shared store lose them.
    pub fn copies(&self) -> usize {
        locked(&self.copies).len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Approval>> {
        locked(&self.waiting)
    }

    /// Writes `approval` to the outbox and syncs it, so a crash does not lose it.
    fn keep(&self, approval: &Approval) -> std::io::Result<()> {
        self.files.write(approval)?;
        self.lock().insert(approval.id.clone(), approval.clone());
        Ok(())
    }

    /// The shared store took `approval`: it leaves the outbox, kept as a copy.
    fn forwarded(&self, approval: &Approval) {
        let id = approval.id.as_str();
        if self.lock().remove(id).is_none() {
            return;
        }
        // The same record either way: a move, not a second write.
        if let Err(e) = self.files.move_to(id, &self.sent) {
            tracing::warn!(error = %e, id, "cannot keep a copy of a forwarded approval");
            if let Err(e) = self.files.remove(id) {
                tracing::warn!(error = %e, id, "cannot remove a forwarded approval from the outbox");
            }
            return;
        }
        locked(&self.copies).insert(id.to_owned(), approval.clone());
    }

    /// Drops the copy of `id`: decided, used, or expired, it is no one's to wait for.
    fn settled(&self, id: &str) {
        if locked(&self.copies).remove(id).is_some()
            && let Err(e) = self.sent.remove(id)
        {
            tracing::warn!(error = %e, id, "cannot drop the copy of a settled approval");
        }
    }

    /// Offers `approval` to the shared store; true if it holds it now.
    async fn offer(&self, approval: &Approval) -> bool {
        match self.shared.create(approval, approval.requested_at).await {
            Ok(()) => {
                self.forwarded(approval);
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

    /// Makes sure the shared store holds the copies: if its generation is gone (it lost its
    /// data) or is not the one this replica last saw (another replica re-seeded it, or this
    /// one just started), forwards every copy again, creating only what the store lacks, and
    /// adopts the store's generation, marking it first if it has none. Returns whether the
    /// store had lost its data.
    pub async fn reseed(&self) -> bool {
        let Ok(generation) = self.shared.generation().await else {
            return false;
        };
        let known = locked(&self.known).clone();
        if generation.is_some() && generation == known {
            return false;
        }
        let mut copies: Vec<Approval> = locked(&self.copies).values().cloned().collect();
        copies.sort_by_key(|a| a.requested_at);
        for copy in &copies {
            if self.shared.create(copy, copy.requested_at).await.is_err() {
                return false;
            }
        }
        let lost = generation.is_none();
        let generation = match generation {
            Some(generation) => generation,
            None => {
                let fresh = uuid::Uuid::now_v7().to_string();
                match self.shared.mark(&fresh).await {
                    Ok(generation) => generation,
                    Err(_) => return false,
                }
            }
        };
        // A store that never had a generation and a replica that never saw one is a first
        // start, not a loss.
        let reseeded = lost && (known.is_some() || !copies.is_empty());
        if reseeded {
            tracing::warn!(
                approvals = copies.len(),
                generation,
                "the shared approvals were lost (Redis emptied or flushed); forwarded this replica's pending ones again"
            );
            self.metrics.store_reseeded("approvals");
        } else if !copies.is_empty() {
            tracing::debug!(
                approvals = copies.len(),
                generation,
                "made sure the shared store holds this replica's pending approvals"
            );
        }
        *locked(&self.known) = Some(generation);
        reseeded
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
        outbox.reseed().await;
    }
}

#[async_trait::async_trait]
impl ApprovalStore for LocalFirstApprovals {
    async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
        let expired: Vec<String> = locked(&self.copies)
            .values()
            .filter(|copy| copy.expires_at <= now)
            .map(|copy| copy.id.clone())
            .collect();
        for id in expired {
            self.settled(&id);
        }
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
        let replaced = self.shared.replace(id, version, next).await?;
        if replaced && next.status != ApprovalStatus::Pending {
            self.settled(id);
        }
        Ok(replaced)
    }

    async fn generation(&self) -> Result<Option<String>, ApprovalError> {
        self.shared.generation().await
    }

    async fn mark(&self, generation: &str) -> Result<String, ApprovalError> {
        self.shared.mark(generation).await
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
    use crate::approval::MemoryApprovals;
    use crate::decision::approval::pending;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new())
    }

    /// A shared store that is down.
    struct Down;

    /// A shared store that can lose its data, generation and all, as Redis does on `FLUSHALL`.
    #[derive(Default)]
    struct Forgetful {
        records: Mutex<Arc<MemoryApprovals>>,
        generation: Mutex<Option<String>>,
    }

    impl Forgetful {
        fn records(&self) -> Arc<MemoryApprovals> {
            Arc::clone(&locked(&self.records))
        }

        fn flush(&self) {
            *locked(&self.records) = Arc::default();
            *locked(&self.generation) = None;
        }
    }

    #[async_trait::async_trait]
    impl ApprovalStore for Forgetful {
        async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
            self.records().create(approval, now).await
        }
        async fn read(&self, id: &str) -> Result<Option<Versioned>, ApprovalError> {
            self.records().read(id).await
        }
        async fn replace(&self, id: &str, v: &str, next: &Approval) -> Result<bool, ApprovalError> {
            self.records().replace(id, v, next).await
        }
        async fn list(&self) -> Result<Listing, ApprovalError> {
            self.records().list().await
        }
        async fn generation(&self) -> Result<Option<String>, ApprovalError> {
            Ok(locked(&self.generation).clone())
        }
        async fn mark(&self, generation: &str) -> Result<String, ApprovalError> {
            Ok(locked(&self.generation)
                .get_or_insert_with(|| generation.to_owned())
                .clone())
        }
    }

    fn reseeds(metrics: &Metrics) -> String {
        metrics
            .render(crate::metrics::Gathered::default())
            .lines()
            .filter(|l| l.starts_with("baton_store_reseeds_total{store=\"approvals\"}"))
            .collect()
    }

    #[tokio::test]
    async fn pending_approvals_are_forwarded_again_when_the_shared_store_loses_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, metrics) = (Arc::new(Forgetful::default()), metrics());
        let outbox =
            LocalFirstApprovals::open(shared.clone(), dir.path(), Arc::clone(&metrics)).unwrap();
        // A first start on an empty store marks it, and is no loss.
        assert!(!outbox.reseed().await);
        assert!(shared.generation().await.unwrap().is_some());
        outbox.create(&pending(2000), 100).await.unwrap();
        let decided = Approval {
            id: "a-2".into(),
            ..pending(2000)
        };
        outbox.create(&decided, 100).await.unwrap();
        let read = outbox.read("a-2").await.unwrap().unwrap();
        let mut approved = read.approval.clone();
        approved
            .decide(true, &crate::decision::Approver::admin("carol"), "ok", 150)
            .unwrap();
        assert!(
            outbox
                .replace("a-2", &read.version, &approved)
                .await
                .unwrap()
        );
        assert_eq!(outbox.copies(), 1, "a decided approval is no longer kept");
        assert!(!outbox.reseed().await, "nothing was lost");

        shared.flush();
        assert!(shared.read("a-1").await.unwrap().is_none());
        assert!(outbox.reseed().await);
        assert!(shared.read("a-1").await.unwrap().is_some());
        assert!(shared.read("a-2").await.unwrap().is_none());
        assert!(shared.generation().await.unwrap().is_some());
        assert!(reseeds(&metrics).ends_with(" 1"), "{}", reseeds(&metrics));
        assert!(!outbox.reseed().await, "once re-seeded, nothing more");

        // The copies outlive a restart; a new replica re-forwards them under any generation it
        // has not seen.
        drop(outbox);
        shared.flush();
        let reopened = LocalFirstApprovals::open(shared.clone(), dir.path(), metrics).unwrap();
        assert_eq!(reopened.copies(), 1);
        assert!(reopened.reseed().await);
        assert!(shared.read("a-1").await.unwrap().is_some());
        // Expired copies are dropped when the next approval is opened.
        let later = Approval {
            id: "a-3".into(),
            ..pending(5000)
        };
        reopened.create(&later, 2000).await.unwrap();
        assert_eq!(reopened.copies(), 1);
        assert!(reopened.sent.read("a-1").unwrap().is_none());
    }

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
        let outbox = LocalFirstApprovals::open(Arc::new(Down), dir.path(), metrics()).unwrap();
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
        let reopened = LocalFirstApprovals::open(shared.clone(), dir.path(), metrics()).unwrap();
        assert_eq!(reopened.waiting(), 1);
        reopened.forward().await;
        assert_eq!(reopened.waiting(), 0);
        assert!(shared.read("a-1").await.unwrap().is_some());
        assert!(reopened.files.all().unwrap().is_empty());
        assert_eq!(reopened.copies(), 1);
        let listing = reopened.list().await.unwrap();
        assert!(listing.complete);
        assert_eq!(listing.approvals.len(), 1);
        assert!(!listing.approvals[0].in_outbox);
    }
}
