//! The reference token minter: redeems a verdict Baton signed for it, once, as an RFC 9068
//! access token for the callee the verdict names. It trusts nothing between itself and Baton
//! but Baton's published keys, so it runs as a separate service (`baton-minter`).
//!
//! - [`replay`]: each verdict's `jti` is redeemed at most once, in memory or across minters
//!   through Redis.
//! - [`jwks`]: Baton's verdict keys, fetched with `GetJwks`.

pub mod jwks;
pub mod replay;
mod replay_file;
pub mod token_endpoint;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::identity::Identity;
use crate::revocation::Revocations;
use crate::token::claims::{actors_from_act, client_id, identity_from_claims, parse_scope};
use crate::token::jws::{self, ACCESS_TOKEN_TYP, JwsError, VERDICT_TYP};
use crate::token::verify::MAX_ACT_DEPTH;
use crate::token::{AccessTokenClaims, ClaimsError, KeySet, SigningKey, VerdictClaims};

pub use jwks::{JwksFetchError, fetch_jwks};
pub use replay::{MemoryReplayGuard, RedisReplayGuard, ReplayGuard, ReplayStoreError};
pub use replay_file::FileReplayGuard;

/// The `iss` of the tokens this minter signs, unless configured otherwise.
pub const DEFAULT_MINTER_ISSUER: &str = "urn:baton:minter-issuer";

/// Why a verdict was not redeemed. Every variant refuses: no token is minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The JWS check's own code is in the message: it says which check failed.
    #[error("verdict rejected: {code}: {0}", code = .0.code())]
    Verdict(JwsError),
    /// The verdict's `iss` is not Baton's.
    #[error("verdict issuer `{found}` is not Baton's `{expected}`")]
    WrongIssuer {
        /// The verdict's `iss`, clipped.
        found: String,
        /// The issuer this minter trusts.
        expected: String,
    },
    /// The verdict's `aud` names another minter.
    #[error("verdict audience `{found}` is not this minter (`{expected}`)")]
    WrongAudience {
        /// The verdict's `aud`, clipped.
        found: String,
        /// This minter's own name.
        expected: String,
    },
    /// The verdict's `exp`, plus the leeway, has passed.
    #[error("verdict expired at {exp} (now {now})")]
    Expired {
        /// The verdict's `exp`, in seconds since the Unix epoch.
        exp: u64,
        /// The time of the check, in seconds since the Unix epoch.
        now: u64,
    },
    /// The verdict's `nbf`, less the leeway, is still ahead.
    #[error("verdict is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The verdict's `nbf`, in seconds since the Unix epoch.
        nbf: u64,
        /// The time of the check, in seconds since the Unix epoch.
        now: u64,
    },
    /// The grant the verdict carries has ended, so any token minted now would outlive it.
    #[error("the grant behind the verdict ended at {exp_max} (now {now})")]
    GrantExpired {
        /// The verdict's `exp_max`, in seconds since the Unix epoch.
        exp_max: u64,
        /// The time of the check, in seconds since the Unix epoch.
        now: u64,
    },
    /// A claim is missing or unusable: the subject, the `act` chain, `scope`, `txn` or `jti`.
    #[error("verdict claims are invalid: {0}")]
    Claims(ClaimsError),
    /// Minting would let the holder act without meeting the obligation.
    #[error("verdict carries obligations this minter does not understand: {}", backticked(.obligations))]
    ObligationNotUnderstood {
        /// Every obligation not understood, clipped.
        obligations: Vec<String>,
    },
    /// A revocation touches the verdict; holds its target, such as `transaction 0190…`.
    #[error("{0} is revoked")]
    Revoked(String),
    /// The verdict's `jti` was redeemed before.
    #[error("verdict `{jti}` was already redeemed")]
    Replayed {
        /// The verdict's `jti`.
        jti: String,
    },
    /// Unknown whether the verdict was used before, so it is treated as used.
    #[error("cannot tell whether the verdict was already redeemed")]
    ReplayStore(#[source] ReplayStoreError),
    /// The access token could not be encoded or is too large to sign.
    #[error("cannot sign the access token")]
    Signing(#[source] JwsError),
}

fn backticked(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl MintError {
    /// A stable code for callers and logs; the message may change, the code does not.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Verdict(_) => "VERDICT_INVALID",
            Self::WrongIssuer { .. } => "WRONG_ISSUER",
            Self::WrongAudience { .. } => "WRONG_AUDIENCE",
            Self::Expired { .. } => "EXPIRED",
            Self::NotYetValid { .. } => "NOT_YET_VALID",
            Self::GrantExpired { .. } => "GRANT_EXPIRED",
            Self::Claims(_) => "CLAIMS_INVALID",
            Self::ObligationNotUnderstood { .. } => "OBLIGATION_NOT_UNDERSTOOD",
            Self::Revoked(_) => "REVOKED",
            Self::Replayed { .. } => "REPLAYED",
            Self::ReplayStore(_) => "REPLAY_STORE_UNAVAILABLE",
            Self::Signing(_) => "SIGNING_FAILED",
        }
    }
}

/// An access token and the claims it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The signed token, a compact JWS of type `at+jwt`.
    pub token: String,
    /// What the token says.
    pub claims: AccessTokenClaims,
}

/// Redeems Baton's verdicts for access tokens. A minted token names the verdict it came from
/// and carries that verdict's lineage, so revoking any verdict upstream revokes it too; it
/// carries no obligations, which the minter met by understanding them.
#[derive(Debug)]
pub struct Minter {
    /// The `iss` Baton signs verdicts with.
    pub baton_issuer: String,
    /// This minter's name: the verdict `aud` it accepts.
    pub audience: String,
    /// The `iss` of the access tokens it signs; Baton trusts it with `--trusted-issuer`.
    pub issuer: String,
    /// The key access tokens are signed with.
    pub key: SigningKey,
    /// Baton's published verdict keys.
    pub baton_keys: KeySet,
    /// Where used verdicts are remembered: this process's memory, or Redis.
    pub replay: Arc<dyn ReplayGuard>,
    /// The obligations this minter knows how to enforce; a verdict with any other is refused.
    pub understood: BTreeSet<String>,
    /// Baton's revocations: a revoked transaction or verdict is never minted.
    pub revocations: Option<Arc<Revocations>>,
}

impl Minter {
    /// Clock skew tolerated on the verdict's `exp` and `nbf`, as Baton tolerates on tokens.
    pub const LEEWAY_SECS: u64 = 30;

    /// A minter with Baton's default names, its own default issuer, an in-memory replay guard
    /// and no understood obligations.
    pub fn new(key: SigningKey, baton_keys: KeySet) -> Self {
        Self {
            baton_issuer: crate::delegation::DEFAULT_ISSUER.to_owned(),
            audience: crate::delegation::DEFAULT_VERDICT_AUDIENCE.to_owned(),
            issuer: DEFAULT_MINTER_ISSUER.to_owned(),
            key,
            baton_keys,
            replay: Arc::new(MemoryReplayGuard::default()),
            understood: BTreeSet::new(),
            revocations: None,
        }
    }

    /// The public keys of the tokens this minter signs, for Baton's `--trusted-issuer`.
    pub fn jwks(&self) -> KeySet {
        KeySet::new(vec![self.key.public()])
    }

    /// Redeems `verdict` at `now` (seconds since the epoch): verifies it is Baton's, for this
    /// minter, current, free of obligations this minter cannot meet, and unused; then signs an
    /// access token for the callee it names that lives no longer than the grant.
    pub async fn mint(&self, verdict: &str, now: u64) -> Result<Minted, MintError> {
        let (_, claims) = jws::verify::<VerdictClaims>(verdict, &self.baton_keys, &[VERDICT_TYP])
            .map_err(MintError::Verdict)?;
        let (principal, actors) = self.check(&claims, now)?;
        if let Some(revocations) = &self.revocations {
            // Everything the verdict names: its principal, every actor of its chain, its
            // transaction, itself and every verdict it derives from.
            let snapshot = revocations.snapshot();
            let tokens = std::iter::once(claims.jti.as_str())
                .chain(claims.lineage.iter().map(String::as_str));
            let revoked =
                snapshot.touching(&principal, &actors, Some(claims.txn.as_str()), tokens, now);
            if let Some(r) = revoked {
                return Err(MintError::Revoked(r.target.to_string()));
            }
        }
        let holder = actors
            .last()
            .cloned()
            .ok_or(MintError::Claims(ClaimsError::Missing("act")))?;
        // Last, so a verdict refused for any other reason is not used up, and only verdicts
        // Baton signed take room in the store.
        let until = claims.exp.saturating_add(Self::LEEWAY_SECS);
        let first = self
            .replay
            .first_use(&claims.jti, until, now)
            .await
            .map_err(MintError::ReplayStore)?;
        if !first {
            return Err(MintError::Replayed { jti: claims.jti });
        }
        let claims = self.access_token_claims(claims, &holder, now);
        let token = jws::sign(&self.key, ACCESS_TOKEN_TYP, &claims).map_err(MintError::Signing)?;
        Ok(Minted { token, claims })
    }

    /// Every check of a verified verdict except revocation and its single use; returns its
    /// principal and its actors, earliest first (the last, outermost, holds what is minted).
    fn check(
        &self,
        claims: &VerdictClaims,
        now: u64,
    ) -> Result<(Identity, Vec<Identity>), MintError> {
        if claims.iss != self.baton_issuer {
            return Err(MintError::WrongIssuer {
                found: jws::clip(&claims.iss),
                expected: self.baton_issuer.clone(),
            });
        }
        if claims.aud != self.audience {
            return Err(MintError::WrongAudience {
                found: jws::clip(&claims.aud),
                expected: self.audience.clone(),
            });
        }
        if claims.exp.saturating_add(Self::LEEWAY_SECS) <= now {
            return Err(MintError::Expired {
                exp: claims.exp,
                now,
            });
        }
        if claims.nbf > now.saturating_add(Self::LEEWAY_SECS) {
            return Err(MintError::NotYetValid {
                nbf: claims.nbf,
                now,
            });
        }
        // No leeway: a token minted now would already be past the grant.
        if claims.exp_max <= now {
            return Err(MintError::GrantExpired {
                exp_max: claims.exp_max,
                now,
            });
        }
        let not_understood: Vec<String> = claims
            .obligations
            .iter()
            .filter(|o| !self.understood.contains(*o))
            .map(|o| jws::clip(o))
            .collect();
        if !not_understood.is_empty() {
            return Err(MintError::ObligationNotUnderstood {
                obligations: not_understood,
            });
        }
        let principal =
            identity_from_claims(&claims.sub, &claims.sub_kind).map_err(MintError::Claims)?;
        if parse_scope(&claims.scope).is_empty() {
            // Baton refuses a token without a scope ceiling; better not to mint one at all.
            return Err(MintError::Claims(ClaimsError::Missing("scope")));
        }
        if claims.txn.is_empty() {
            return Err(MintError::Claims(ClaimsError::Missing("txn")));
        }
        if claims.jti.is_empty() {
            // Without an id, single use cannot be enforced.
            return Err(MintError::Claims(ClaimsError::Missing("jti")));
        }
        let actors = actors_from_act(&claims.act, MAX_ACT_DEPTH).map_err(MintError::Claims)?;
        Ok((principal, actors))
    }

    /// The access token of a checked verdict: the principal, chain, scope and transaction
    /// unchanged, for the holder, until the earlier of `ttl` and the end of the grant.
    fn access_token_claims(
        &self,
        verdict: VerdictClaims,
        holder: &Identity,
        now: u64,
    ) -> AccessTokenClaims {
        let holder = client_id(holder);
        AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: verdict.sub,
            sub_kind: verdict.sub_kind,
            aud: holder.clone(),
            iat: now,
            exp: now.saturating_add(verdict.ttl).min(verdict.exp_max),
            jti: uuid::Uuid::now_v7().to_string(),
            txn: verdict.txn,
            scope: verdict.scope,
            act: Some(verdict.act),
            exp_max: verdict.exp_max,
            client_id: holder,
            verdict: Some(verdict.jti),
            lineage: verdict.lineage,
            cnf: verdict.cnf,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::identity::IdentityKind;
    use crate::token::claims::act_from_actors;
    use crate::token::{TrustedIssuer, Verifier};

    const NOW: u64 = 1_750_000_000;

    struct Fixture {
        baton: SigningKey,
        minter: Minter,
    }

    fn fixture() -> Fixture {
        let baton = SigningKey::generate();
        let minter = Minter::new(SigningKey::generate(), KeySet::new(vec![baton.public()]));
        Fixture { baton, minter }
    }

    fn chain() -> Vec<Identity> {
        vec![
            Identity::new(IdentityKind::Agent, "user-assistant"),
            Identity::new(IdentityKind::Agent, "data-analyst"),
        ]
    }

    fn verdict() -> VerdictClaims {
        VerdictClaims {
            iss: "urn:baton".to_owned(),
            aud: "urn:baton:minter".to_owned(),
            iat: NOW,
            nbf: NOW,
            exp: NOW + 60,
            jti: "verdict-1".to_owned(),
            txn: "txn-1".to_owned(),
            sub: "alice".to_owned(),
            sub_kind: "user".to_owned(),
            act: act_from_actors(&chain()).unwrap(),
            scope: "reports.generate finance.read".to_owned(),
            ttl: 900,
            exp_max: NOW + 600,
            obligations: vec![],
            policies: vec!["assistant-scopes-at-analyst".to_owned()],
            bundle_version: "b".to_owned(),
            req_hash: "sha256:x".to_owned(),
            approval: None,
            approvers: Vec::new(),
            lineage: vec!["verdict-0".to_owned()],
            cnf: None,
            lifecycle_warnings: Vec::new(),
        }
    }

    /// `claims` with the members of `patch` replaced.
    fn patched(claims: &VerdictClaims, patch: Value) -> Value {
        let mut value = serde_json::to_value(claims).unwrap();
        for (name, new) in patch.as_object().unwrap() {
            value[name] = new.clone();
        }
        value
    }

    fn sign(key: &SigningKey, claims: &impl serde::Serialize) -> String {
        jws::sign(key, VERDICT_TYP, claims).unwrap()
    }

    async fn code(minter: &Minter, token: &str, now: u64) -> &'static str {
        match minter.mint(token, now).await {
            Ok(_) => "OK",
            Err(e) => e.code(),
        }
    }

    #[tokio::test]
    async fn a_verdict_becomes_an_access_token_for_the_callee() {
        let f = fixture();
        let minted = f
            .minter
            .mint(&sign(&f.baton, &verdict()), NOW + 5)
            .await
            .unwrap();
        let v = verdict();
        assert_eq!(
            minted.claims,
            AccessTokenClaims {
                iss: DEFAULT_MINTER_ISSUER.to_owned(),
                sub: "alice".to_owned(),
                sub_kind: "user".to_owned(),
                aud: "Agent:data-analyst".to_owned(),
                iat: NOW + 5,
                // The ttl would reach past the grant: the grant wins.
                exp: NOW + 600,
                jti: minted.claims.jti.clone(),
                txn: "txn-1".to_owned(),
                scope: v.scope.clone(),
                act: Some(v.act.clone()),
                exp_max: NOW + 600,
                client_id: "Agent:data-analyst".to_owned(),
                verdict: Some("verdict-1".to_owned()),
                lineage: vec!["verdict-0".to_owned()],
                cnf: None,
            }
        );
        assert_eq!(
            uuid::Uuid::parse_str(&minted.claims.jti)
                .unwrap()
                .get_version_num(),
            7
        );

        // Baton, trusting this minter's issuer and keys, reads the same chain back.
        let verifier = Verifier::new(
            "urn:baton".to_owned(),
            KeySet::new(vec![f.baton.public()]),
            vec![TrustedIssuer {
                issuer: DEFAULT_MINTER_ISSUER.to_owned(),
                keys: f.minter.jwks(),
            }],
        );
        let upstream = verifier.verify(&minted.token, NOW + 5).unwrap();
        assert_eq!(upstream.actors, chain());
        assert_eq!(upstream.exp_max, NOW + 600);
        assert_eq!(upstream.txn, "txn-1");
    }

    #[tokio::test]
    async fn a_short_ttl_ends_the_token_before_the_grant() {
        let f = fixture();
        let claims = patched(&verdict(), json!({"ttl": 120}));
        let minted = f.minter.mint(&sign(&f.baton, &claims), NOW).await.unwrap();
        assert_eq!(minted.claims.exp, NOW + 120);
    }

    #[tokio::test]
    async fn only_baton_verdicts_for_this_minter_are_redeemed() {
        let f = fixture();
        let other = SigningKey::generate();
        let good = sign(&f.baton, &verdict());
        let cases = [
            (sign(&other, &verdict()), "VERDICT_INVALID"),
            (
                jws::sign(&f.baton, ACCESS_TOKEN_TYP, &verdict()).unwrap(),
                "VERDICT_INVALID",
            ),
            (format!("{good}x"), "VERDICT_INVALID"),
            (
                sign(&f.baton, &patched(&verdict(), json!({"iss": "urn:evil"}))),
                "WRONG_ISSUER",
            ),
            (
                sign(&f.baton, &patched(&verdict(), json!({"aud": "Agent:x"}))),
                "WRONG_AUDIENCE",
            ),
            (
                sign(&f.baton, &patched(&verdict(), json!({"ttl": null}))),
                "VERDICT_INVALID",
            ),
            (
                sign(
                    &f.baton,
                    &patched(
                        &verdict(),
                        json!({"act": {"sub": "x", "sub_kind": "robot"}}),
                    ),
                ),
                "CLAIMS_INVALID",
            ),
            (
                sign(&f.baton, &patched(&verdict(), json!({"scope": " "}))),
                "CLAIMS_INVALID",
            ),
            (
                sign(&f.baton, &patched(&verdict(), json!({"sub_kind": "robot"}))),
                "CLAIMS_INVALID",
            ),
            (
                sign(&f.baton, &patched(&verdict(), json!({"jti": ""}))),
                "CLAIMS_INVALID",
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(code(&f.minter, &token, NOW).await, expected, "{token}");
        }
        // None of the refusals used the verdict up.
        assert_eq!(code(&f.minter, &good, NOW).await, "OK");
    }

    #[tokio::test]
    async fn a_refusal_names_the_failed_check() {
        let f = fixture();
        let forged = sign(&SigningKey::generate(), &verdict());
        let err = f.minter.mint(&forged, NOW).await.unwrap_err();
        assert!(err.to_string().contains("UNKNOWN_KEY"), "{err}");
        let err = f
            .minter
            .mint(
                &sign(&f.baton, &patched(&verdict(), json!({"aud": "Agent:x"}))),
                NOW,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "verdict audience `Agent:x` is not this minter (`urn:baton:minter`)"
        );
    }

    #[tokio::test]
    async fn times_allow_the_leeway_and_no_more() {
        let f = fixture();
        let token = sign(&f.baton, &verdict());
        let exp = NOW + 60;
        let last = exp + Minter::LEEWAY_SECS - 1;
        assert_eq!(code(&f.minter, &token, last + 1).await, "EXPIRED");
        assert_eq!(
            code(&f.minter, &token, NOW - Minter::LEEWAY_SECS - 1).await,
            "NOT_YET_VALID"
        );
        let ended = sign(&f.baton, &patched(&verdict(), json!({"exp_max": NOW})));
        assert_eq!(code(&f.minter, &ended, NOW).await, "GRANT_EXPIRED");
        assert_eq!(code(&f.minter, &token, last).await, "OK");
    }

    #[tokio::test]
    async fn obligations_must_be_understood() {
        let mut f = fixture();
        let claims = patched(&verdict(), json!({"obligations": ["human_approval"]}));
        let token = sign(&f.baton, &claims);
        let err = f.minter.mint(&token, NOW).await.unwrap_err();
        assert_eq!(err.code(), "OBLIGATION_NOT_UNDERSTOOD");
        assert_eq!(
            err.to_string(),
            "verdict carries obligations this minter does not understand: `human_approval`"
        );
        f.minter.understood.insert("human_approval".to_owned());
        assert_eq!(code(&f.minter, &token, NOW).await, "OK");
    }

    #[tokio::test]
    async fn a_verdict_is_redeemed_once() {
        let f = fixture();
        let token = sign(&f.baton, &verdict());
        assert_eq!(code(&f.minter, &token, NOW).await, "OK");
        let err = f.minter.mint(&token, NOW + 1).await.unwrap_err();
        assert_eq!(err.code(), "REPLAYED");
        assert_eq!(err.to_string(), "verdict `verdict-1` was already redeemed");
        // Another verdict of the same chain is a different redemption.
        let next = sign(&f.baton, &patched(&verdict(), json!({"jti": "verdict-2"})));
        assert_eq!(code(&f.minter, &next, NOW + 1).await, "OK");
    }
}
