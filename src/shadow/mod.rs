//! Shadow evaluation: every replica decides a sampled share of live questions a second time,
//! against a bundle that is stored but not active, and records where the two disagree.
//!
//! Off the request path, within a CPU budget: the pipeline offers a sampled question with
//! [`Shadow::offer`], which never waits. It copies the request and the live outcome into a
//! bounded queue ([`QUEUE_CAPACITY`]), or counts the sample as dropped when the queue is full.
//! One worker thread drains the queue at the operating system's idle priority (`SCHED_IDLE`
//! on Linux), so the comparison spends only CPU time no request wants: under a saturating load
//! the queue fills and samples are dropped, rather than questions slowed. The worker runs the
//! same pure decision core ([`crate::decision::decide`]) under the same settings, compares
//! ([`compare`]), and writes each disagreement to the audit trail as a
//! `shadow_disagreement` record and to `baton_shadow_disagreements_total`.

mod compare;
mod tally;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;

pub use self::compare::{changed_policies, compare, refused_by_shadow};
pub use self::tally::PolicyDisagreements;
use self::tally::Tally;
use crate::audit::Audit;
pub use crate::audit::{Disagreement, Flip};
use crate::bundle::PolicyBundle;
use crate::decision::{Decision, DecisionRequest, DecisionSettings, Outcome};
use crate::metrics::Metrics;

/// Sampled questions waiting for the worker; past it, samples are dropped and counted.
pub const QUEUE_CAPACITY: usize = 1024;

/// The share of questions shadowed when none is configured: one in twenty.
pub const DEFAULT_SAMPLE: f64 = 0.05;

/// A stored revision every replica compares live traffic against.
#[derive(Debug)]
pub struct Shadowed {
    /// The compiled bundle, admitted like any activation.
    pub bundle: Arc<PolicyBundle>,
    /// Its store revision.
    pub revision: u64,
    /// Seconds since the Unix epoch when it became the shadow.
    pub since: u64,
    /// The version of the live bundle it was installed beside.
    pub against: String,
    /// The policies it adds, removes or changes relative to that live bundle: what a
    /// disagreement is blamed on (see [`Disagreement::policies`]).
    pub changed: std::collections::BTreeSet<String>,
}

/// The running comparison, as `baton policy shadow status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowStatus {
    /// The shadowed revision.
    pub revision: u64,
    /// Its content hash.
    pub version: String,
    /// Seconds since the Unix epoch when it became the shadow.
    pub since: u64,
    /// The share of questions sampled.
    pub sample: f64,
    /// Sampled questions decided against the shadow.
    pub compared: u64,
    /// Of those, how many the shadow decided the same way.
    pub agreed: u64,
    /// Of those, how many it decided differently.
    pub disagreed: u64,
    /// Sampled questions dropped because the worker's queue was full.
    pub dropped: u64,
    /// Disagreements by the policies behind them, most first.
    pub policies: Vec<PolicyDisagreements>,
}

/// Why the shadow sample was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the shadow sample is {0}; it must be a share from 0.0 to 1.0")]
pub struct InvalidSample(pub String);

/// Parts per million of questions to sample, from a share between 0 and 1.
pub fn sample_ppm(share: f64) -> Result<u64, InvalidSample> {
    if !(0.0..=1.0).contains(&share) {
        return Err(InvalidSample(share.to_string()));
    }
    // In range by the check above, so the cast neither wraps nor truncates past a part.
    Ok((share * 1e6).round() as u64)
}

/// One sampled question, copied off the request path.
struct Sampled {
    request: DecisionRequest,
    live: Outcome,
    decision_id: String,
    transaction_id: String,
    at: SystemTime,
    /// The shadow revision installed when it was sampled: a question sampled for one shadow
    /// is never counted against the next.
    revision: u64,
}

/// What the pipeline and the worker share.
struct Shared {
    installed: ArcSwapOption<Shadowed>,
    tally: Mutex<Tally>,
    metrics: Arc<Metrics>,
    sample_ppm: u64,
    /// Samples that found the queue full, since the shadow was installed: an atomic, so a
    /// drop on the request path never waits for the worker's lock.
    dropped: AtomicU64,
}

impl Shared {
    fn new(metrics: Arc<Metrics>, sample_ppm: u64) -> Self {
        Self {
            installed: ArcSwapOption::empty(),
            tally: Mutex::new(Tally::default()),
            metrics,
            sample_ppm,
            dropped: AtomicU64::new(0),
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One replica's shadow evaluation: the shadowed bundle, the sampler, the queue to the worker,
/// and the counts.
pub struct Shadow {
    shared: Arc<Shared>,
    /// `None` when nothing is sampled: no worker runs.
    queue: Option<SyncSender<Sampled>>,
    /// Questions offered so far, for the sampler.
    offered: AtomicU64,
}

impl Shadow {
    /// No shadow evaluation at all: nothing is sampled and no worker runs.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared::new(metrics, 0)),
            queue: None,
            offered: AtomicU64::new(0),
        }
    }

    /// Samples `sample_ppm` parts per million of the questions while a shadow is installed,
    /// deciding them on a worker thread under `settings` and recording disagreements to
    /// `audit`. Must be called within a Tokio runtime, which the worker writes records through.
    pub fn start(
        sample_ppm: u64,
        settings: DecisionSettings,
        audit: Arc<Audit>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut shadow = Self::off(metrics);
        let sample_ppm = sample_ppm.min(1_000_000);
        if sample_ppm == 0 {
            return shadow;
        }
        let shared = Arc::new(Shared::new(Arc::clone(&shadow.shared.metrics), sample_ppm));
        let (queue, received) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let worker = worker::Worker {
            shared: Arc::clone(&shared),
            settings,
            audit,
            runtime: tokio::runtime::Handle::try_current().ok(),
        };
        match std::thread::Builder::new()
            .name("baton-shadow".into())
            .spawn(move || worker.run(&received))
        {
            Ok(_) => {
                shadow.shared = shared;
                shadow.queue = Some(queue);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the shadow worker; shadow evaluation is off")
            }
        }
        shadow
    }

    /// Makes `shadowed` the bundle compared against (or none), starting its counts afresh.
    pub fn install(&self, shadowed: Option<Shadowed>) {
        let mut tally = self.shared.tally();
        *tally = Tally::default();
        self.shared.dropped.store(0, Ordering::Relaxed);
        self.shared.metrics.shadow_reset();
        self.shared.installed.store(shadowed.map(Arc::new));
    }

    /// The revision shadowed now, if any.
    pub fn revision(&self) -> Option<u64> {
        self.shared.installed.load().as_ref().map(|s| s.revision)
    }

    /// Offers one answered question for comparison. Never waits: an unsampled question costs
    /// a pointer load and a counter, a sampled one a copy and a non-blocking send, and one
    /// that finds the queue full is counted as dropped.
    pub fn offer(&self, request: &DecisionRequest, decision: &Decision) {
        let Some(queue) = &self.queue else {
            return;
        };
        let revision = match self.shared.installed.load().as_ref() {
            Some(shadowed) => shadowed.revision,
            None => return,
        };
        if !self.sampled() {
            return;
        }
        let sampled = Sampled {
            request: request.clone(),
            live: decision.outcome.clone(),
            decision_id: decision.decision_id.clone(),
            transaction_id: decision.transaction_id.clone(),
            at: decision.issued_at,
            revision,
        };
        match queue.try_send(sampled) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.metrics.shadow_dropped();
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Whether the next question is sampled: exactly `sample_ppm` in every million, evenly
    /// spread, without a random number per question.
    fn sampled(&self) -> bool {
        let ppm = u128::from(self.shared.sample_ppm);
        let n = u128::from(self.offered.fetch_add(1, Ordering::Relaxed));
        (n + 1) * ppm / 1_000_000 > n * ppm / 1_000_000
    }

    /// The running comparison, when a shadow is installed.
    pub fn status(&self) -> Option<ShadowStatus> {
        let installed = self.shared.installed.load_full()?;
        let tally = self.shared.tally();
        Some(ShadowStatus {
            revision: installed.revision,
            version: installed.bundle.version().to_owned(),
            since: installed.since,
            // Parts per million are exact in an f64.
            sample: self.shared.sample_ppm as f64 / 1e6,
            compared: tally.compared,
            agreed: tally.agreed,
            disagreed: tally.disagreed,
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            policies: tally.by_policy(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        assert_eq!(sample_ppm(0.0), Ok(0));
        assert_eq!(sample_ppm(1.0), Ok(1_000_000));
        assert_eq!(sample_ppm(0.05), Ok(50_000));
        assert!(sample_ppm(1.5).is_err());
        assert!(sample_ppm(-0.1).is_err());
        assert!(sample_ppm(f64::NAN).is_err());
    }

    #[test]
    fn the_sampler_takes_exactly_its_share() {
        for (ppm, expected) in [(0, 0), (50_000, 50), (1_000_000, 1000), (333_333, 333)] {
            let shadow = Shadow::off(Arc::new(Metrics::new()));
            let shadow = Shadow {
                shared: Arc::new(Shared::new(Arc::clone(&shadow.shared.metrics), ppm)),
                ..shadow
            };
            let taken = (0..1000).filter(|_| shadow.sampled()).count();
            assert_eq!(taken, expected, "at {ppm} ppm");
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        use crate::decision::{Effect, Outcome};
        use crate::identity::{Identity, IdentityKind};
        let metrics = Arc::new(Metrics::new());
        // A queue of two that nobody drains: the third sample on finds it full.
        let (queue, _held) = std::sync::mpsc::sync_channel(2);
        let shadow = Shadow {
            shared: Arc::new(Shared::new(Arc::clone(&metrics), 1_000_000)),
            queue: Some(queue),
            offered: AtomicU64::new(0),
        };
        let bundle =
            PolicyBundle::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
                .unwrap();
        shadow.install(Some(Shadowed {
            bundle: Arc::new(bundle),
            revision: 7,
            since: 0,
            against: String::new(),
            changed: std::collections::BTreeSet::new(),
        }));
        let request = DecisionRequest::new(
            Identity::new(IdentityKind::Agent, "a"),
            Identity::new(IdentityKind::Agent, "b"),
            Identity::new(IdentityKind::User, "u"),
        );
        let outcome = Outcome {
            effect: Effect::Deny,
            granted: Vec::new(),
            refused: Vec::new(),
            ttl_secs: 0,
            chain: Vec::new(),
            obligations: Vec::new(),
            determining_policies: Vec::new(),
            bundle_version: "v".into(),
            denial: None,
        };
        let decision = Decision::stamp(outcome, None, SystemTime::UNIX_EPOCH, None);
        for _ in 0..5 {
            shadow.offer(&request, &decision);
        }
        let status = shadow.status().unwrap();
        assert_eq!(
            (status.revision, status.dropped, status.compared),
            (7, 3, 0)
        );
        assert!(
            metrics
                .render(crate::metrics::Gathered::default())
                .contains("baton_shadow_dropped_total 3")
        );
        // A new shadow counts afresh.
        shadow.install(None);
        assert!(shadow.status().is_none());
    }
}
