//! What every request reads: the active bundle, the server's rules, and the delegation setup.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::approval::Approvals;
use crate::audit::Audit;
use crate::bundle::PolicyBundle;
use crate::cache::{CacheSettings, DecisionCache};
use crate::decision::{DecisionSettings, Limits};
use crate::delegation::trust::{AssertedChains, Gateways};
use crate::delegation::verdict::VerdictIssuer;
use crate::delegation::verified::VerifiedTokens;
use crate::fleet::Fleet;
use crate::metrics::{Gathered, Metrics};
use crate::readiness::Readiness;
use crate::revocation::Revocations;
use crate::token::{Keyring, SigningKey, TrustedIssuer, Verifier};

/// Default `iss` of verdicts, and `aud`: the token minter they are for.
pub const DEFAULT_ISSUER: &str = "urn:baton";
pub const DEFAULT_VERDICT_AUDIENCE: &str = "urn:baton:minter";

/// Keys, issuers and trust: how hops prove their chain and how verdicts are signed.
pub struct Delegation {
    pub keyring: Keyring,
    pub verdicts: VerdictIssuer,
    pub verifier: VerifiedTokens,
    pub asserted_chains: AssertedChains,
    pub gateways: Gateways,
}

impl Delegation {
    pub fn new(
        keyring: Keyring,
        verdicts: VerdictIssuer,
        trusted: Vec<TrustedIssuer>,
        asserted_chains: AssertedChains,
        gateways: Gateways,
    ) -> Self {
        let verifier = VerifiedTokens::new(Verifier::new(
            verdicts.issuer.clone(),
            keyring.published().clone(),
            trusted,
        ));
        Self {
            keyring,
            verdicts,
            verifier,
            asserted_chains,
            gateways,
        }
    }

    /// An ephemeral signing key, the default issuer and audience, first hops from loopback
    /// gateways: the embedded default, and what tests start from.
    pub fn ephemeral() -> Self {
        Self::new(
            Keyring::new(SigningKey::generate(), Vec::new()),
            VerdictIssuer {
                issuer: DEFAULT_ISSUER.to_owned(),
                audience: DEFAULT_VERDICT_AUDIENCE.to_owned(),
                lifetime_secs: 60,
            },
            Vec::new(),
            AssertedChains::default(),
            Gateways::default(),
        )
    }
}

/// Shared by all handlers. The bundle is an immutable snapshot behind an atomic pointer: a
/// request loads it once and decides wholly against it, and a swap never blocks a request.
pub struct State {
    bundle: ArcSwap<PolicyBundle>,
    pub settings: DecisionSettings,
    pub limits: Limits,
    pub delegation: Delegation,
    pub cache: DecisionCache,
    pub revocations: Arc<Revocations>,
    pub approvals: Approvals,
    /// Off unless [`State::with_audit`] turns it on.
    pub audit: Audit,
    jwks: String,
    pub metrics: Metrics,
    pub readiness: Readiness,
}

impl State {
    /// A state with an ephemeral signing key; see [`State::with_delegation`].
    pub fn new(bundle: PolicyBundle, settings: DecisionSettings, limits: Limits) -> Self {
        Self::with_delegation(bundle, settings, limits, Delegation::ephemeral())
    }

    pub fn with_delegation(
        bundle: PolicyBundle,
        settings: DecisionSettings,
        limits: Limits,
        delegation: Delegation,
    ) -> Self {
        let jwks = delegation.keyring.published().to_jwks().to_string();
        let metrics = Metrics::new();
        metrics.bundle_activated(bundle.version());
        Self {
            bundle: ArcSwap::from_pointee(bundle),
            settings,
            limits,
            delegation,
            cache: DecisionCache::new(CacheSettings::default()),
            revocations: Arc::new(Revocations::in_memory()),
            approvals: Approvals::in_memory(),
            audit: Audit::off(),
            jwks,
            metrics,
            readiness: Readiness::default(),
        }
    }

    /// Replaces the decision cache, for other sizes or none; with a fleet, decisions are also
    /// shared through its Redis.
    pub fn with_cache(mut self, settings: CacheSettings, fleet: Option<Arc<Fleet>>) -> Self {
        self.cache = match fleet {
            Some(fleet) => DecisionCache::shared(settings, fleet, &self.settings),
            None => DecisionCache::new(settings),
        };
        self
    }

    /// Replaces the revocations and approvals, to keep them in Redis or on disk.
    pub fn with_governance(mut self, revocations: Arc<Revocations>, approvals: Approvals) -> Self {
        self.revocations = revocations;
        self.approvals = approvals;
        self
    }

    /// Records every decision in `audit`.
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// The active bundle, for the length of one request.
    pub fn bundle(&self) -> Arc<PolicyBundle> {
        self.bundle.load_full()
    }

    /// Makes `bundle` the active one, atomically: a request decides wholly against the bundle
    /// it loaded, old or new, never a mix, and no decision cached before is served again, here
    /// or on any replica sharing the cache. Returns the bundle it replaced.
    pub fn activate(&self, bundle: Arc<PolicyBundle>) -> Arc<PolicyBundle> {
        self.metrics.bundle_activated(bundle.version());
        let previous = self.bundle.swap(bundle);
        self.cache.invalidate();
        previous
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

    /// Whether to take new calls: see [`Readiness`].
    pub fn is_ready(&self) -> bool {
        !self.readiness.is_draining()
    }

    /// The published verdict keys as a JWKS document, rendered once.
    pub fn jwks_json(&self) -> String {
        self.jwks.clone()
    }
}
