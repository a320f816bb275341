//! One replica's side of the store: choosing the bundle to start with, following the active
//! pointer and the shadow pointer, and the admin operations that move them. Every activation
//! on this replica goes through one lock, so a push and a notice can never swap bundles out of
//! order; every change of shadow goes through another.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::{BundleRecord, BundleStore, Draft, LastGood, ShadowPointer, StoreError, StoredBundle};
use crate::admission::{Admitted, BundleLimits, Phases, Rejection, admit};
use crate::bundle::{BundleDiagnostic, BundleError, PolicyBundle, SourceFile, read_dir};
use crate::decision::DecisionSettings;
use crate::shadow::{Shadow, Shadowed};

/// What a replica needs of the server it activates bundles in, and nothing more: the active
/// bundle, the settings new bundles are admitted under, and the swap itself.
pub trait Activation: Send + Sync {
    /// The bundle serving now.
    fn active(&self) -> Arc<PolicyBundle>;
    /// The settings decisions are made under, which a bundle's own test cases run with.
    fn settings(&self) -> &DecisionSettings;
    /// The shadow evaluation this replica installs shadow bundles in.
    fn shadow(&self) -> &Shadow;
    /// Makes `bundle` the active one, atomically, and returns the one it replaced.
    fn activate(&self, bundle: Arc<PolicyBundle>) -> Arc<PolicyBundle>;
    /// Notes the store revision now active, for the metrics.
    fn revision_activated(&self, revision: u64);
    /// Notes that this replica re-seeded a bundle store found without an active bundle.
    fn store_reseeded(&self);
}

/// How often a replica reads the active pointer even without a notice: the bound on how long
/// a lost notice can delay a switch.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Revisions listed when no limit is asked for.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// Why a replica could not activate a bundle.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The bundle did not pass admission; the active bundle stays.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The store could not do its part; the active bundle stays.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// At start: the store holds bundles but cannot give its active one, and serving
    /// `--bundle` instead would change the live policy unseen.
    #[error(
        "the bundle store cannot give its active bundle ({0}); refusing to serve `--bundle` in its place: repair the store, or start with `--recover-store`"
    )]
    Unrecoverable(String),
}

/// What a push stored and activated.
pub struct Pushed {
    /// The new revision.
    pub record: BundleRecord,
    /// How many of the bundle's own test cases ran, all of which passed.
    pub tests_run: usize,
    /// What the compile warned of.
    pub warnings: Vec<BundleDiagnostic>,
    /// How long each phase of admission took.
    pub timings: Phases,
}

pub use super::startup::{Initial, ServedFrom, initial};

/// Follows the store and performs the admin operations for one replica.
pub struct Replica {
    server: Arc<dyn Activation>,
    store: Arc<dyn BundleStore>,
    last_good: Option<LastGood>,
    limits: BundleLimits,
    /// The revision this replica serves, when known; also the lock around every activation.
    current: Mutex<Option<BundleRecord>>,
    /// The active revision this replica last refused, so a bad pointer is reported once
    /// rather than on every poll.
    refused: std::sync::Mutex<Option<u64>>,
    /// The lock around every change of shadow; holds the shadow revision this replica last
    /// refused, reported once like `refused`.
    shadowing: Mutex<Option<u64>>,
}

impl Replica {
    /// A replica serving `current` on `server`, following `store` and keeping `last_good`.
    pub fn new(
        server: Arc<dyn Activation>,
        store: Arc<dyn BundleStore>,
        last_good: Option<LastGood>,
        limits: BundleLimits,
        current: Option<BundleRecord>,
    ) -> Self {
        if let Some(record) = &current {
            server.revision_activated(record.revision);
        }
        Self {
            server,
            store,
            last_good,
            limits,
            current: Mutex::new(current),
            refused: std::sync::Mutex::new(None),
            shadowing: Mutex::new(None),
        }
    }

    /// The store it follows.
    pub fn store(&self) -> &dyn BundleStore {
        self.store.as_ref()
    }

    /// The rules every decision of this replica follows.
    pub fn settings(&self) -> &crate::decision::DecisionSettings {
        self.server.settings()
    }

    /// The limits every bundle it activates is admitted under.
    pub fn limits(&self) -> &BundleLimits {
        &self.limits
    }

    /// The running shadow comparison on this replica, when it shadows a bundle.
    pub fn shadow_status(&self) -> Option<crate::shadow::ShadowStatus> {
        self.server.shadow().status()
    }

    /// The revision served now, when known.
    pub async fn current(&self) -> Option<BundleRecord> {
        self.current.lock().await.clone()
    }

    /// Follows the active pointer until `shutdown`: on every notice, and every
    /// [`POLL_INTERVAL`] in case a notice was lost.
    pub async fn follow(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let mut notices = self.store.subscribe();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let notice = async {
                let changed = match notices.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => false,
                };
                if !changed {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = notice => {}
                _ = tick.tick() => {}
            }
            self.sync().await;
        }
    }

    /// Brings this replica to the store's active and shadow revisions, if they moved.
    /// Failures are logged and leave the current bundles in place.
    pub async fn sync(&self) {
        self.sync_active().await;
        self.sync_shadow().await;
    }

    async fn sync_active(&self) {
        let mut current = self.current.lock().await;
        let active = match self.store.active().await {
            Ok(active) => active,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the active bundle pointer");
                return;
            }
        };
        let Some(revision) = active else {
            // The store lost its data or was never seeded: give it what this replica serves,
            // rather than leave every replica without a shared pointer.
            self.seed(&mut current).await;
            return;
        };
        let refused = || self.refused.lock().map_or(None, |r| *r);
        if current.as_ref().map(|r| r.revision) == Some(revision) || refused() == Some(revision) {
            return;
        }
        let settings = self.server.settings().clone();
        match fetch_and_admit(self.store.as_ref(), revision, &settings, &self.limits).await {
            Ok((stored, admitted)) => {
                self.swap(&mut current, stored, admitted, "notice").await;
            }
            Err(ReplicaError::Store(e)) => {
                tracing::debug!(revision, error = %e, "cannot fetch the active bundle");
            }
            Err(e @ (ReplicaError::Rejected(_) | ReplicaError::Unrecoverable(_))) => {
                tracing::error!(revision, error = %e, "cannot activate the store's active bundle; keeping the current one");
                if let Ok(mut r) = self.refused.lock() {
                    *r = Some(revision);
                }
            }
        }
    }

    /// Brings this replica's shadow to the store's shadow pointer.
    async fn sync_shadow(&self) {
        let mut refused = self.shadowing.lock().await;
        let pointer = match self.store.shadow().await {
            Ok(pointer) => pointer,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the shadow bundle pointer");
                return;
            }
        };
        let installed = self.server.shadow().revision();
        let Some(pointer) = pointer else {
            if let Some(revision) = installed {
                self.server.shadow().install(None);
                tracing::info!(revision, "stopped shadowing");
            }
            return;
        };
        if installed == Some(pointer.revision) || *refused == Some(pointer.revision) {
            return;
        }
        let settings = self.server.settings().clone();
        match fetch_and_admit(
            self.store.as_ref(),
            pointer.revision,
            &settings,
            &self.limits,
        )
        .await
        {
            Ok((_, admitted)) => self.install_shadow(pointer, admitted),
            Err(ReplicaError::Store(e)) => {
                tracing::debug!(revision = pointer.revision, error = %e, "cannot fetch the shadow bundle");
            }
            Err(e @ (ReplicaError::Rejected(_) | ReplicaError::Unrecoverable(_))) => {
                tracing::error!(revision = pointer.revision, error = %e, "cannot shadow the store's shadow bundle");
                *refused = Some(pointer.revision);
            }
        }
    }

    fn install_shadow(&self, pointer: ShadowPointer, admitted: Admitted) {
        tracing::info!(
            revision = pointer.revision,
            version = admitted.bundle.version(),
            "shadowing bundle"
        );
        let live = self.server.active();
        self.server.shadow().install(Some(Shadowed {
            changed: crate::shadow::changed_policies(&live, &admitted.bundle),
            against: live.version().to_owned(),
            bundle: Arc::new(admitted.bundle),
            revision: pointer.revision,
            since: pointer.since,
        }));
    }

    /// Admits `files`, stores them as the next revision without activating it, and makes it
    /// the shadow of every replica, here at once.
    pub async fn push_shadow(
        &self,
        files: Vec<SourceFile>,
        author: &str,
        message: &str,
    ) -> Result<Pushed, ReplicaError> {
        let admitted = self.validate(files).await?;
        let mut refused = self.shadowing.lock().await;
        let (record, pointer) = self
            .store
            .push_shadow(draft(&admitted, author, message))
            .await?;
        *refused = None;
        let pushed = Pushed {
            record,
            tests_run: admitted.tests.run,
            warnings: admitted.bundle.warnings().to_vec(),
            timings: admitted.timings,
        };
        tracing::info!(
            revision = pointer.revision,
            by = author,
            "pushed a shadow bundle"
        );
        self.install_shadow(pointer, admitted);
        Ok(pushed)
    }

    /// Stops shadowing, everywhere; returns the revision that was shadowed, if any.
    pub async fn stop_shadow(&self, author: &str) -> Result<Option<u64>, ReplicaError> {
        let _lock = self.shadowing.lock().await;
        let stopped = self.store.stop_shadow(None).await?;
        if self.server.shadow().revision().is_some() {
            self.server.shadow().install(None);
        }
        tracing::info!(revision = ?stopped, by = author, "stopped shadowing");
        Ok(stopped)
    }

    async fn seed(&self, current: &mut Option<BundleRecord>) {
        let bundle = self.server.active();
        let files = bundle.sources().to_vec();
        let draft = Draft {
            version: bundle.version().to_owned(),
            author: current
                .as_ref()
                .map_or_else(|| "baton serve".to_owned(), |r| r.author.clone()),
            message: "re-seeded from a replica's active bundle".to_owned(),
            policies: bundle.policy_count(),
            tests: bundle.cases().len(),
            files,
        };
        match self.store.push(draft).await {
            Ok(record) => {
                self.server.store_reseeded();
                tracing::warn!(
                    revision = record.revision,
                    version = record.version,
                    "the bundle store had no active bundle; seeded it with this replica's"
                );
                *current = Some(record);
            }
            Err(e) => tracing::debug!(error = %e, "cannot seed the bundle store"),
        }
    }

    /// Admits `files` without storing or activating anything.
    pub async fn validate(&self, files: Vec<SourceFile>) -> Result<Admitted, Rejection> {
        admit_blocking(files, self.server.settings(), &self.limits).await
    }

    /// Admits `files`, stores them as the next revision, makes it active everywhere, and swaps
    /// it in here at once.
    pub async fn push(
        &self,
        files: Vec<SourceFile>,
        author: &str,
        message: &str,
    ) -> Result<Pushed, ReplicaError> {
        let admitted = self.validate(files).await?;
        let mut current = self.current.lock().await;
        let record = self.store.push(draft(&admitted, author, message)).await?;
        let pushed = Pushed {
            record: record.clone(),
            tests_run: admitted.tests.run,
            warnings: admitted.bundle.warnings().to_vec(),
            timings: admitted.timings,
        };
        self.swap(&mut current, stored(&admitted, &record), admitted, author)
            .await;
        Ok(pushed)
    }

    /// Makes a stored revision active again, after admitting it under today's rules. The
    /// shadow revision is thereby promoted: it stops being the shadow. Returns the record and
    /// how long admission's phases took.
    pub async fn activate(
        &self,
        revision: u64,
        author: &str,
    ) -> Result<(BundleRecord, Phases), ReplicaError> {
        let mut current = self.current.lock().await;
        let settings = self.server.settings().clone();
        let (stored, admitted) =
            fetch_and_admit(self.store.as_ref(), revision, &settings, &self.limits).await?;
        self.store.activate(revision).await?;
        let record = stored.record.clone();
        let timings = admitted.timings;
        self.swap(&mut current, stored, admitted, author).await;
        drop(current);
        let _lock = self.shadowing.lock().await;
        match self.store.stop_shadow(Some(revision)).await {
            Ok(Some(_)) => {
                self.server.shadow().install(None);
                tracing::info!(revision, "promoted the shadow bundle");
            }
            Ok(None) => {}
            // The activation stands; replicas stop shadowing it when the pointer is cleared.
            Err(e) => {
                tracing::warn!(revision, error = %e, "cannot clear the shadow pointer of the promoted revision")
            }
        }
        Ok((record, timings))
    }

    /// Undoes the latest activation: the revision active before it becomes active again.
    pub async fn rollback(&self, author: &str) -> Result<(u64, BundleRecord), ReplicaError> {
        let mut current = self.current.lock().await;
        let activations = self.store.activations().await?;
        let [.., to, from] = activations.as_slice() else {
            return Err(StoreError::NothingToRollBack.into());
        };
        let (to, from) = (*to, *from);
        let settings = self.server.settings().clone();
        let (stored, admitted) =
            fetch_and_admit(self.store.as_ref(), to, &settings, &self.limits).await?;
        self.store.rollback(from, to).await?;
        let record = stored.record.clone();
        self.swap(&mut current, stored, admitted, author).await;
        Ok((from, record))
    }

    /// Swaps the admitted bundle in, remembers it, and keeps the local copy.
    async fn swap(
        &self,
        current: &mut Option<BundleRecord>,
        stored: StoredBundle,
        admitted: Admitted,
        by: &str,
    ) {
        let previous = self.server.activate(Arc::new(admitted.bundle));
        self.server.revision_activated(stored.record.revision);
        tracing::info!(
            revision = stored.record.revision,
            version = stored.record.version,
            policies = stored.record.policies,
            pushed_by = stored.record.author,
            by,
            previous = previous.version(),
            "activated bundle"
        );
        // The last reference to a large bundle is dropped off the request workers.
        tokio::task::spawn_blocking(move || drop(previous));
        save_last_good(self.last_good.as_ref(), &stored).await;
        *current = Some(stored.record);
    }
}

pub(super) fn draft(admitted: &Admitted, author: &str, message: &str) -> Draft {
    Draft {
        version: admitted.bundle.version().to_owned(),
        author: author.to_owned(),
        message: message.to_owned(),
        policies: admitted.bundle.policy_count(),
        tests: admitted.tests.run,
        files: admitted.bundle.sources().to_vec(),
    }
}

pub(super) fn stored(admitted: &Admitted, record: &BundleRecord) -> StoredBundle {
    StoredBundle {
        record: record.clone(),
        files: admitted.bundle.sources().to_vec(),
    }
}

pub(super) async fn save_last_good(last_good: Option<&LastGood>, stored: &StoredBundle) {
    if let Some(copy) = last_good
        && let Err(e) = copy.save(stored).await
    {
        tracing::warn!(error = %e, "cannot keep the last good bundle on local disk");
    }
}

pub(super) fn read_dir_files(dir: &Path) -> Result<Vec<SourceFile>, Rejection> {
    read_dir(dir).map_err(Rejection::Invalid)
}

pub(super) async fn fetch_and_admit(
    store: &dyn BundleStore,
    revision: u64,
    settings: &DecisionSettings,
    limits: &BundleLimits,
) -> Result<(StoredBundle, Admitted), ReplicaError> {
    let stored = store
        .get(revision)
        .await?
        .ok_or(StoreError::UnknownRevision(revision))?;
    let admitted = admit_blocking(stored.files.clone(), settings, limits).await?;
    Ok((stored, admitted))
}

/// Compiles off the async workers: a large bundle takes seconds, and requests keep flowing.
pub async fn admit_blocking(
    files: Vec<SourceFile>,
    settings: &DecisionSettings,
    limits: &BundleLimits,
) -> Result<Admitted, Rejection> {
    let (settings, limits) = (settings.clone(), *limits);
    let started = Instant::now();
    let admitted = tokio::task::spawn_blocking(move || admit(files, &settings, &limits))
        .await
        .map_err(|e| {
            Rejection::Invalid(BundleError::single(BundleDiagnostic::in_file(
                "<bundle>",
                format!("compile task failed: {e}"),
            )))
        })?;
    tracing::debug!(elapsed = ?started.elapsed(), "admitted a bundle");
    admitted
}
