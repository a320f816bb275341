//! Verifiable delegation: what a hop may take from the credential of the hop before it, who may
//! assert a chain without one, and the signed verdicts token minters consume.
//!
//! - [`upstream`]: a verified subject token becomes the principal, chain, ceiling and latest
//!   expiry of the request; the caller must be the token's holder.
//! - [`trust`]: which unsigned (asserted) chains are accepted, and from which gateways.
//! - [`verdict`]: the signed verdict of an ALLOW, mapping onto RFC 8693 / RFC 9068 claims.
//! - [`verified`]: verified upstream tokens, remembered until they expire.

pub mod trust;
pub mod upstream;
pub mod verdict;
pub mod verified;

use self::trust::{AssertedChains, Gateways};
use self::verdict::VerdictIssuer;
use self::verified::VerifiedTokens;
use crate::token::{Keyring, SigningKey, TokenError, TrustedIssuer, Verifier};

/// Default `iss` of verdicts.
pub const DEFAULT_ISSUER: &str = "urn:baton";
/// Default `aud` of verdicts: the token minter they are for.
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
    /// Verdicts signed with `keyring`'s signer and verified, with access tokens of `trusted`
    /// issuers, against its published keys.
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

/// Why a hop's credentials do not entitle it to a decision. Every variant fails closed.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    #[error("`subject_token` rejected: {0}")]
    TokenRejected(#[from] TokenError),
    #[error("`subject_token` rejected: the grant it carries ended at {exp_max} (unix time)")]
    GrantExpired { exp_max: u64 },
    #[error("the caller `{caller}` does not hold `subject_token`: it was issued to `{holder}`")]
    NotTheHolder { caller: String, holder: String },
    #[error("`principal` `{requested}` differs from the subject token's principal `{token}`")]
    PrincipalMismatch { requested: String, token: String },
    #[error(
        "`{field}` must be empty when `subject_token` is given: the chain comes from the token alone"
    )]
    ChainBesideToken { field: &'static str },
    #[error(
        "`transaction_id` `{requested}` differs from the subject token's transaction `{token}`"
    )]
    TransactionMismatch { requested: String, token: String },
    #[error("{0}")]
    AssertedChainRefused(String),
}

impl DelegationError {
    /// A stable code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TokenRejected(e) => e.code(),
            Self::GrantExpired { .. } => "GRANT_EXPIRED",
            Self::NotTheHolder { .. } => "CALLER_NOT_TOKEN_HOLDER",
            Self::PrincipalMismatch { .. } => "PRINCIPAL_MISMATCH",
            Self::ChainBesideToken { .. } => "CHAIN_BESIDE_TOKEN",
            Self::TransactionMismatch { .. } => "TRANSACTION_MISMATCH",
            Self::AssertedChainRefused(_) => "SUBJECT_TOKEN_REQUIRED",
        }
    }
}
