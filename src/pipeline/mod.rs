//! The one decision pipeline every door goes through. A door (gRPC `Authorize`,
//! `BatchAuthorize`, `Exchange`, and every door added later) converts its request into a
//! [`Question`], calls [`Pipeline::decide`], and converts the [`Answered`] back; it assembles
//! none of the steps itself, so none can skip one. The steps, in order:
//!
//! 1. **Admission** (`admission`): a question without a subject token is an asserted chain,
//!    accepted only from a trusted gateway and only as far as `--asserted-chains` allows; a
//!    question with one takes its principal, chain, ceiling, transaction, latest expiry,
//!    lineage and unmet obligations from the verified token alone.
//! 2. **Revocation**: every member of the chain, the principal, the transaction, the token and
//!    every verdict it derives from are checked before any cache.
//!    **Agent lifecycle** (`--agent-lifecycle`): every agent of the chain is checked against
//!    its owner and expiry, also before any cache, since the time decides it; under `enforce`
//!    an orphaned agent denies the hop and no grant outlives the earliest agent expiry.
//! 3. **Caches, then the decision core**: the in-process tier, the shared tier, or an
//!    evaluation (then cached).
//! 4. **The approval gate** (`approval_gate`): an allow that needs a human waits for, or
//!    consumes, an approval bound to this request in this transaction.
//! 5. **Stamping and signing**: a fresh decision id and times, and a verdict for an ALLOW
//!    unless the question omits it (an asker that only enforces).
//! 6. **Audit and metrics**: one record and one count per question answered; the same record
//!    goes to the live feed ([`crate::audit::live`]) only while someone watches it.
//!
//! Beside the steps, a sampled share of decided questions is handed to [`Shadow`], which
//! decides them again against a shadow bundle on a thread of its own; the hand-off never waits.

mod admission;
mod approval_gate;
mod error;
mod question;
pub mod spans;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use opentelemetry::KeyValue;

use self::admission::Admitted;
pub use self::error::{ErrorClass, PipelineError};
pub use self::question::{Answered, Asker, Question};
use self::spans::StepSpans;
use crate::approval::Approvals;
use crate::audit::{Asked, Audit, AuditRecord, LiveFeed};
use crate::bundle::PolicyBundle;
use crate::cache::{CacheSettings, DecisionCache, Source};
use crate::clock::{Clock, SystemClock, unix};
use crate::decision::lifecycle::{LIFECYCLE_SOURCE, check_chain, orphaned_outcome};
use crate::decision::{
    Decision, DecisionRequest, DecisionSettings, DelegationChain, LifecycleMode, LifecycleWarning,
    Limits, Outcome, decide,
};
use crate::delegation::Delegation;
use crate::metrics::{CacheTier, DecisionOutcome, Gathered, Metrics, TokenOperation};
use crate::policy_store::replica::Activation;
use crate::revocation::{Presented, Revocations, revoked_outcome};
use crate::shadow::Shadow;

/// What a pipeline is made of. [`Parts::embedded`] gives every store its embedded
/// implementation; the application replaces what its configuration shares through Redis.
pub struct Parts {
    /// The bundle active at start.
    pub bundle: PolicyBundle,
    /// The server-wide rules every decision follows.
    pub settings: DecisionSettings,
    /// The size limits doors check requests against.
    pub limits: Limits,
    /// Keys, issuers and trust in gateways and upstream tokens.
    pub delegation: Delegation,
    /// The decision cache.
    pub cache: DecisionCache,
    /// The revocations checked before any cache.
    pub revocations: Arc<Revocations>,
    /// Where human approvals are kept.
    pub approvals: Arc<Approvals>,
    /// Where every answer's audit record goes.
    pub audit: Arc<Audit>,
    /// The instruments `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// Where every step reads the time.
    pub clock: Arc<dyn Clock>,
    /// The shadow evaluation sampled questions are offered to.
    pub shadow: Arc<Shadow>,
    /// How the agent lifecycle rule applies.
    pub lifecycle: LifecycleMode,
}

impl Parts {
    /// `bundle` under `settings`, with an ephemeral key, first hops from loopback gateways,
    /// the in-process cache, revocations and approvals in memory, no audit trail, no shadow
    /// evaluation and the system clock.
    pub fn embedded(bundle: PolicyBundle, settings: DecisionSettings) -> Self {
        let metrics = Arc::new(Metrics::new());
        Self {
            bundle,
            settings,
            limits: Limits::default(),
            delegation: Delegation::ephemeral(),
            cache: DecisionCache::new(CacheSettings::default()),
            revocations: Arc::new(Revocations::in_memory()),
            approvals: Arc::new(Approvals::in_memory()),
            audit: Arc::new(Audit::off()),
            shadow: Arc::new(Shadow::off(Arc::clone(&metrics))),
            metrics,
            clock: Arc::new(SystemClock),
            lifecycle: LifecycleMode::Off,
        }
    }
}

/// The decision path: the active bundle behind an atomic pointer, and every step's state.
/// A question loads the bundle once and is decided wholly against it.
pub struct Pipeline {
    bundle: ArcSwap<PolicyBundle>,
    settings: DecisionSettings,
    limits: Limits,
    delegation: Delegation,
    cache: DecisionCache,
    revocations: Arc<Revocations>,
    approvals: Arc<Approvals>,
    audit: Arc<Audit>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    shadow: Arc<Shadow>,
    lifecycle: LifecycleMode,
    live: Arc<LiveFeed>,
    spans: StepSpans,
}

impl Pipeline {
    /// The pipeline of `parts`, with their bundle active and counted as the first activation.
    pub fn new(parts: Parts) -> Self {
        parts.metrics.bundle_activated(parts.bundle.version());
        Self {
            bundle: ArcSwap::from_pointee(parts.bundle),
            settings: parts.settings,
            limits: parts.limits,
            delegation: parts.delegation,
            cache: parts.cache,
            revocations: parts.revocations,
            approvals: parts.approvals,
            audit: parts.audit,
            metrics: parts.metrics,
            clock: parts.clock,
            shadow: parts.shadow,
            lifecycle: parts.lifecycle,
            live: Arc::default(),
            spans: StepSpans::new(),
        }
    }

    /// The active bundle, for the length of one question.
    pub fn bundle(&self) -> Arc<PolicyBundle> {
        self.bundle.load_full()
    }

    /// The server-wide rules every decision follows.
    pub fn settings(&self) -> &DecisionSettings {
        &self.settings
    }

    /// How the agent lifecycle rule applies.
    pub fn lifecycle(&self) -> LifecycleMode {
        self.lifecycle
    }

    /// The size limits a door checks a request against before it becomes a question.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Keys, issuers and trust: what signs verdicts and verifies subject tokens.
    pub fn delegation(&self) -> &Delegation {
        &self.delegation
    }

    /// The decision cache.
    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }

    /// The revocations in force, which governance changes.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// The human approvals, which governance decides on.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// The audit trail, which admin actions record to and queries read.
    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// The instruments every door counts with.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The clock every step reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The decisions answered from now on, for watchers such as the console's live page.
    pub fn live(&self) -> &Arc<LiveFeed> {
        &self.live
    }

    /// The shadow evaluation, which the replica installs shadow bundles in.
    pub fn shadow(&self) -> &Arc<Shadow> {
        &self.shadow
    }

    /// What `/metrics` shows: the instruments, and the counts the cache and audit trail keep.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(Gathered {
            cache: self.cache.stats(),
            cache_entries: self.cache.local_len(),
            audit: self.audit.stats(),
            audit_queue_depth: self.audit.queue_depth(),
        })
    }

    /// A question a door could not even convert, received at `received`: counted and timed
    /// like every other, and refused.
    pub fn refused(
        &self,
        invalid: crate::decision::InvalidRequest,
        received: Instant,
    ) -> PipelineError {
        self.metrics.decided(DecisionOutcome::Error);
        self.metrics.authorize_took(received.elapsed());
        invalid.into()
    }

    /// Answers one question, through every step; see the module documentation. An error
    /// means the question got no decision, and the door must treat it as a deny.
    pub async fn decide(
        &self,
        question: Question,
        asker: &Asker,
    ) -> Result<Answered, PipelineError> {
        let started = Instant::now();
        let answered = self.answer(question, asker, started).await;
        self.metrics.decided(match &answered {
            Ok(a) => a.decision.kind().into(),
            Err(_) => DecisionOutcome::Error,
        });
        self.metrics.authorize_took(started.elapsed());
        answered
    }

    async fn answer(
        &self,
        question: Question,
        asker: &Asker,
        started: Instant,
    ) -> Result<Answered, PipelineError> {
        let now = self.clock.now();
        let gateway = self.delegation.gateways.identify(
            asker.bearer.as_deref(),
            asker.peer,
            asker.certificate.as_deref(),
        );
        // A caller the request names is held to its certificate before anything else is
        // looked at; one it leaves to the token (an exchange) once the token named it.
        if let Some(caller) = &question.caller {
            self.authenticate_caller(caller, asker)?;
        }
        let omit_verdict = question.omit_verdict;
        let mut admitted = self.admit(
            question,
            gateway.as_deref(),
            asker.certificate.as_deref(),
            now,
        )?;
        self.authenticate_caller(&admitted.request.caller, asker)?;
        let asked = Asked {
            pdp_caller: gateway,
            trace_id: asker.trace_id.clone(),
            latency: started.elapsed(),
            source: "revocation",
        };
        let bundle = self.bundle();
        if let Some(decision) = self.revoked(&admitted, &bundle, now) {
            self.record(&admitted.request, &decision, asked, started)
                .await;
            return Ok(Answered {
                decision,
                verdict: None,
            });
        }
        let lifecycle = match self.lifecycle {
            LifecycleMode::Off => None,
            LifecycleMode::Warn => Some(check_chain(&bundle, &admitted.request, now)),
            LifecycleMode::Enforce => {
                let checked = check_chain(&bundle, &admitted.request, now);
                if let Some(orphan) = checked.orphans.first() {
                    let decision = orphaned(&admitted, &bundle, orphan, now);
                    let asked = Asked {
                        source: LIFECYCLE_SOURCE,
                        ..asked
                    };
                    self.record(&admitted.request, &decision, asked, started)
                        .await;
                    return Ok(Answered {
                        decision,
                        verdict: None,
                    });
                }
                // No grant, and no cached answer, outlives an agent of its chain.
                if let Some(end) = checked.earliest_expiry {
                    admitted.latest_expiry =
                        Some(admitted.latest_expiry.map_or(end, |bound| bound.min(end)));
                }
                None
            }
        };
        let digest = admitted.request.digest();
        let (outcome, source) = self
            .outcome(&bundle, &admitted.request, &digest, admitted.latest_expiry)
            .await?;
        let mut decision = if outcome.needs_approval(&self.settings.approval_obligation) {
            // Boxed: the gate's state is large and rarely needed, and every question's future
            // would otherwise carry (and move) room for it.
            let required = crate::decision::approval::approvals_required(
                &bundle,
                &outcome,
                &self.settings.approval_obligation,
            );
            Box::pin(self.gate(outcome, required, &admitted, &digest, now)).await?
        } else {
            Decision::stamp(
                outcome,
                admitted.request.transaction_id.clone(),
                now,
                admitted.latest_expiry,
            )
        };
        if let Some(checked) = lifecycle {
            decision.lifecycle_warnings = checked.orphans;
        }
        self.shadow.offer(&admitted.request, &decision);
        let verdict = if omit_verdict {
            None
        } else {
            self.sign(&decision, &admitted, &digest)?
        };
        let asked = Asked {
            source: source.as_str(),
            ..asked
        };
        self.record(&admitted.request, &decision, asked, started)
            .await;
        Ok(Answered { decision, verdict })
    }

    /// The deny of a hop that touches a revocation in force, if it does. Decided before any
    /// cache, so a revocation takes effect on the very next question.
    fn revoked(
        &self,
        admitted: &Admitted,
        bundle: &PolicyBundle,
        now: SystemTime,
    ) -> Option<Decision> {
        let revocations = self.revocations.snapshot();
        let presented = Presented {
            token_id: admitted.token_id.as_deref(),
            verdicts: &admitted.lineage,
        };
        let request = &admitted.request;
        let revocation = revocations.check(request, &presented, unix(now))?;
        tracing::info!(target = %revocation.target, callee = %request.callee, "denied a revoked hop");
        let chain = DelegationChain::of(request).into_members();
        let outcome = revoked_outcome(request, chain, revocation, bundle.version());
        Some(Decision::stamp(
            outcome,
            request.transaction_id.clone(),
            now,
            admitted.latest_expiry,
        ))
    }

    /// The outcome from the nearest tier that has it, or from evaluating (then cached).
    async fn outcome(
        &self,
        bundle: &PolicyBundle,
        request: &DecisionRequest,
        digest: &[u8; 32],
        latest_expiry: Option<SystemTime>,
    ) -> Result<(Outcome, Source), PipelineError> {
        let cache = &self.cache;
        let key = cache.key(bundle.version(), digest, latest_expiry.map(unix));
        let local = cache.get_local(&key);
        self.metrics.cache_lookup(CacheTier::Local, local.is_some());
        if let Some(cached) = local {
            spans::record_source(Source::Local);
            return Ok((Outcome::clone(&cached), Source::Local));
        }
        if cache.asks_shared() {
            // Boxed, like the approval gate: only questions that go to Redis pay for its state.
            let shared = Box::pin(self.spans.in_child_async(
                "baton.cache.lookup",
                KeyValue::new("baton.cache.tier", CacheTier::Redis.label()),
                cache.get_shared(&key, bundle.version(), latest_expiry),
            ));
            if let Some(shared) = shared.await {
                self.metrics
                    .cache_lookup(CacheTier::Redis, shared.is_some());
                if let Some(shared) = shared {
                    spans::record_source(Source::Redis);
                    return Ok((Outcome::clone(&shared), Source::Redis));
                }
            }
        }
        spans::record_source(Source::Evaluated);
        let started = Instant::now();
        let outcome = self
            .spans
            .in_child("baton.evaluate", || decide(bundle, request, &self.settings))?;
        cache.evaluated_in(started.elapsed());
        cache.put(&key, Arc::new(outcome.clone()), latest_expiry);
        Ok((outcome, Source::Evaluated))
    }

    /// The signed verdict of an ALLOW a minter may redeem; none for a deny or while a human's
    /// approval is pending.
    fn sign(
        &self,
        decision: &Decision,
        admitted: &Admitted,
        digest: &[u8; 32],
    ) -> Result<Option<String>, PipelineError> {
        let delegation = &self.delegation;
        self.spans
            .in_child("baton.verdict.sign", || {
                delegation.verdicts.issue(
                    delegation.keyring.signer(),
                    decision,
                    &admitted.request,
                    digest,
                    &admitted.lineage,
                    admitted.callee_x5t_s256.as_deref(),
                )
            })
            .map_err(|e| {
                self.metrics.token_failed(TokenOperation::Sign);
                PipelineError::Signing(e)
            })
    }

    /// Records the answer on the span and in the audit trail, whichever way it was reached.
    async fn record(
        &self,
        request: &DecisionRequest,
        decision: &Decision,
        asked: Asked,
        started: Instant,
    ) {
        spans::record_decision(request, decision);
        tracing::debug!(
            caller = %request.caller,
            callee = %request.callee,
            principal = %request.principal,
            decision = decision.kind().as_str(),
            source = asked.source,
            "decided"
        );
        // One relaxed load when nobody watches (see `audit::live`): the feed costs nothing then.
        let watched = self.live.is_watched();
        if !self.audit.is_on() && !watched {
            return;
        }
        let asked = Asked {
            latency: started.elapsed(),
            ..asked
        };
        // One allocation shared by the feed and the trail: watching copies nothing.
        let record = Arc::new(AuditRecord::decision(
            request,
            decision,
            asked,
            self.audit.context(),
        ));
        if watched {
            self.live.publish(Arc::clone(&record));
        }
        if self.audit.is_on() {
            // Boxed: only questions with an audit trail to feed carry the recording's state.
            Box::pin(self.audit.record(record)).await;
        }
    }
}

/// The deny of a hop whose chain holds an orphaned agent, under `--agent-lifecycle enforce`.
fn orphaned(
    admitted: &Admitted,
    bundle: &PolicyBundle,
    orphan: &LifecycleWarning,
    now: SystemTime,
) -> Decision {
    let request = &admitted.request;
    tracing::info!(agent = %orphan.agent, reason = orphan.reason.as_str(), callee = %request.callee, "denied a hop with an orphaned agent");
    let chain = DelegationChain::of(request).into_members();
    let outcome = orphaned_outcome(request, chain, orphan, bundle.version());
    Decision::stamp(
        outcome,
        request.transaction_id.clone(),
        now,
        admitted.latest_expiry,
    )
}

impl Activation for Pipeline {
    fn active(&self) -> Arc<PolicyBundle> {
        self.bundle()
    }

    fn settings(&self) -> &DecisionSettings {
        &self.settings
    }

    fn shadow(&self) -> &Shadow {
        &self.shadow
    }

    /// Makes `bundle` the active one, atomically: a question decides wholly against the
    /// bundle it loaded, old or new, never a mix, and no decision cached before is served
    /// again, here or on any replica sharing the cache. Returns the bundle it replaced.
    fn activate(&self, bundle: Arc<PolicyBundle>) -> Arc<PolicyBundle> {
        self.metrics.bundle_activated(bundle.version());
        let previous = self.bundle.swap(bundle);
        self.cache.invalidate();
        previous
    }

    fn revision_activated(&self, revision: u64) {
        self.metrics.bundle_revision(revision);
    }

    fn store_reseeded(&self) {
        self.metrics.store_reseeded("bundles");
    }
}
