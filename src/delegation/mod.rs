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
use crate::workload::WorkloadIdentities;

/// Default `iss` of verdicts.
pub const DEFAULT_ISSUER: &str = "urn:baton";
/// Default `aud` of verdicts: the token minter they are for.
pub const DEFAULT_VERDICT_AUDIENCE: &str = "urn:baton:minter";

/// Keys, issuers and trust: how hops prove their chain and how verdicts are signed.
pub struct Delegation {
    /// The key that signs verdicts and the public keys published beside it.
    pub keyring: Keyring,
    /// The issuer, audience and lifetime of the verdicts this Baton signs.
    pub verdicts: VerdictIssuer,
    /// Verifies presented subject tokens, remembering the ones that verified.
    pub verifier: VerifiedTokens,
    /// Which requests without a subject token are accepted.
    pub asserted_chains: AssertedChains,
    /// The gateways trusted to assert a chain.
    pub gateways: Gateways,
    /// The rules that make a client certificate a caller; none by default.
    pub workloads: WorkloadIdentities,
    /// Refuse subject tokens without `cnf` (`--require-bound-tokens`).
    pub require_bound_tokens: bool,
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
            workloads: WorkloadIdentities::default(),
            require_bound_tokens: false,
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
    /// The subject token did not verify: signature, key, type, algorithm, times or claims.
    #[error("`subject_token` rejected: {0}")]
    TokenRejected(#[from] TokenError),
    /// The token verified, but the grant it carries (`exp_max`) has ended.
    #[error("`subject_token` rejected: the grant it carries ended at {exp_max} (unix time)")]
    GrantExpired {
        /// The end of the upstream grant, in seconds since the Unix epoch.
        exp_max: u64,
    },
    /// The caller is not the token's outermost actor, the identity it was issued to.
    #[error("the caller `{caller}` does not hold `subject_token`: it was issued to `{holder}`")]
    NotTheHolder {
        /// The caller the request names, as `Agent data-analyst`.
        caller: String,
        /// The identity the token was issued to.
        holder: String,
    },
    /// The request names a principal other than the token's.
    #[error("`principal` `{requested}` differs from the subject token's principal `{token}`")]
    PrincipalMismatch {
        /// The principal the request names.
        requested: String,
        /// The principal the token carries.
        token: String,
    },
    /// The request asserts earlier hops or a ceiling beside a token, which alone carries them.
    #[error(
        "`{field}` must be empty when `subject_token` is given: the chain comes from the token alone"
    )]
    ChainBesideToken {
        /// The wire field that should have been empty: `delegation_chain` or `ceiling`.
        field: &'static str,
    },
    /// The request names a transaction other than the token's.
    #[error(
        "`transaction_id` `{requested}` differs from the subject token's transaction `{token}`"
    )]
    TransactionMismatch {
        /// The transaction the request names.
        requested: String,
        /// The transaction the token carries.
        token: String,
    },
    /// A request without a subject token that [`AssertedChains`] or the missing gateway does
    /// not admit; the message says what to present instead.
    #[error("{0}")]
    AssertedChainRefused(String),
    /// The client certificate proves a workload other than the caller the request names (or
    /// proves none, naming two).
    #[error("the caller `{caller}` is not the workload the client certificate proves: {certified}")]
    CallerNotAuthenticated {
        /// The caller the request names, or the token's holder.
        caller: String,
        /// What the certificate proves.
        certified: String,
    },
    /// The subject token is bound (`cnf`) to a certificate the caller did not present.
    #[error("`subject_token` is bound to another certificate than the caller presented")]
    TokenBindingMismatch,
    /// The subject token is not bound to a certificate, and this Baton requires it.
    #[error(
        "`subject_token` is not bound to a certificate (`cnf`), and this Baton requires bound tokens"
    )]
    BoundTokenRequired,
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
            Self::CallerNotAuthenticated { .. } => "CALLER_NOT_AUTHENTICATED",
            Self::TokenBindingMismatch => "TOKEN_BINDING_MISMATCH",
            Self::BoundTokenRequired => "BOUND_TOKEN_REQUIRED",
        }
    }
}
