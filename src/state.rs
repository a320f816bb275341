//! What every request reads: the active bundle, the server's rules, and the delegation setup.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::bundle::PolicyBundle;
use crate::cache::{CacheSettings, DecisionCache};
use crate::decision::{DecisionSettings, Limits};
use crate::delegation::trust::{AssertedChains, Gateways};
use crate::delegation::verdict::VerdictIssuer;
use crate::delegation::verified::VerifiedTokens;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
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
            jwks,
            metrics,
            readiness: Readiness::default(),
        }
    }

    /// Replaces the decision cache, for other sizes or none.
    pub fn with_cache(mut self, settings: CacheSettings) -> Self {
        self.cache = DecisionCache::new(settings);
        self
    }

    /// The active bundle, for the length of one request.
    pub fn bundle(&self) -> Arc<PolicyBundle> {
        self.bundle.load_full()
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
