//! Upstream credentials: the verdict or access token a caller presents as `subject_token`, from
//! which Baton takes the principal, the chain so far, the scope ceiling and the deadline.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::claims::{Actor, ClaimsError, actors_from_act, identity_from_claims, parse_scope};
use super::jws::{self, ACCESS_TOKEN_TYP, JwsError, VERDICT_TYP, clip};
use super::keys::KeySet;
use crate::identity::Identity;

/// Longest `act` chain accepted from a token; a deeper one is refused, not truncated. The
/// same bound holds for a token's lineage and obligations.
pub const MAX_ACT_DEPTH: usize = 32;

/// The latest instant a token may name, 9999-12-31T23:59:59Z in seconds since the epoch: the
/// last one RFC 3339 can write, and far inside what every clock type here can add without
/// overflowing. A time claim beyond it is refused, not clamped.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// Longest entry of a token's `lineage` or `obligations`, in bytes.
const MAX_ENTRY_BYTES: usize = 256;

/// What a verified upstream token says about the chain a call continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The token's subject: the principal on whose behalf the chain acts.
    pub principal: Identity,
    /// The actors of the token's `act` claim, earliest first; the last is the token's holder.
    /// Empty when nobody acted for the subject: the subject holds its own token.
    pub actors: Vec<Identity>,
    /// The scopes granted upstream: nothing further down the chain may exceed them.
    pub ceiling: BTreeSet<String>,
    /// No token further down the chain may outlive this instant (seconds since the epoch).
    pub exp_max: u64,
    /// The transaction the chain belongs to, which the next hop continues.
    pub txn: String,
    /// The token's `iss`: this Baton's issuer or a trusted minter's.
    pub issuer: String,
    /// The token's own id: a verdict's decision id, or a minted token's id.
    pub jti: String,
    /// The token's own validity, kept so a cached verification can be re-timed.
    pub exp: u64,
    /// Not valid before this instant (seconds since the epoch), if the token says.
    pub nbf: Option<u64>,
    /// Every verdict the credential derives from, earliest first: its lineage, then the
    /// verdict it is (a verdict's own `jti`) or was minted from (an access token's `verdict`).
    pub verdicts: Vec<String>,
    /// What the credential still owes, sorted: a verdict's obligations, since no token
    /// service met them when it is presented as it is, or an access token's `obligations`.
    pub obligations: Vec<String>,
    /// The certificate thumbprint (`cnf.x5t#S256`) its holder must present, if it is bound.
    pub bound_to: Option<String>,
}

impl Upstream {
    /// Who the token was issued to: its outermost actor, or the subject itself.
    pub fn holder(&self) -> &Identity {
        self.actors.last().unwrap_or(&self.principal)
    }

    /// Whether the token is still within its validity at `now`, with the same leeway
    /// [`Verifier::verify`] allows.
    pub fn is_current(&self, now: u64) -> bool {
        self.exp.saturating_add(Verifier::LEEWAY_SECS) > now
            && self
                .nbf
                .is_none_or(|nbf| nbf <= now.saturating_add(Verifier::LEEWAY_SECS))
    }
}

/// Another issuer whose access tokens Baton accepts, and its keys.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// The `iss` its access tokens carry.
    pub issuer: String,
    /// The public keys its access tokens are verified against.
    pub keys: KeySet,
}

/// Why an upstream token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token failed a check of its form, header or signature.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The `iss` is neither this Baton's issuer nor a trusted one; holds it, clipped.
    #[error("issuer `{0}` is not trusted")]
    UntrustedIssuer(String),
    /// The token's `exp`, plus the leeway, has passed.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`, in seconds since the Unix epoch.
        exp: u64,
        /// The time of the check, in seconds since the Unix epoch.
        now: u64,
    },
    /// The token's `nbf`, less the leeway, is still ahead.
    #[error("token is not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf`, in seconds since the Unix epoch.
        nbf: u64,
        /// The time of the check, in seconds since the Unix epoch.
        now: u64,
    },
    /// Without a ceiling the scopes it allows are unknown, and unknown means deny.
    #[error("token has no `scope`, so no scope ceiling")]
    NoCeiling,
    /// The signature verified, but the claims are missing or unusable.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
}

impl TokenError {
    /// A stable code for clients and metrics; the message may change, the code does not.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Jws(e) => e.code(),
            Self::UntrustedIssuer(_) => "UNTRUSTED_ISSUER",
            Self::Expired { .. } => "TOKEN_EXPIRED",
            Self::NotYetValid { .. } => "TOKEN_NOT_YET_VALID",
            Self::NoCeiling => "NO_SCOPE_CEILING",
            Self::Claims(_) => "CLAIMS_INVALID",
        }
    }
}

/// Verifies upstream tokens: verdicts of this Baton and access tokens of this Baton's issuer or
/// of trusted ones.
#[derive(Debug, Clone)]
pub struct Verifier {
    own_issuer: String,
    own_keys: KeySet,
    trusted: Vec<TrustedIssuer>,
}

/// The claims an upstream token may carry, all optional here so that a missing one is named.
/// Verdicts and access tokens both fit; their other claims are ignored.
#[derive(Deserialize)]
struct UpstreamClaims {
    iss: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    sub: Option<String>,
    sub_kind: Option<String>,
    scope: Option<String>,
    txn: Option<String>,
    jti: Option<String>,
    act: Option<Actor>,
    exp_max: Option<u64>,
    /// An access token's: the verdict it was minted from.
    verdict: Option<String>,
    #[serde(default)]
    lineage: Vec<String>,
    #[serde(default)]
    obligations: Vec<String>,
    /// RFC 7800 confirmation; only `x5t#S256` is understood.
    cnf: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Only the issuer, read before verification to choose the keys.
#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

impl Verifier {
    /// Clock skew tolerated on `exp` and `nbf`.
    pub const LEEWAY_SECS: u64 = 30;

    /// `own_keys` verify this Baton's verdicts and the tokens minted under `own_issuer`; each of
    /// `trusted` may issue access tokens only. Should `own_issuer` also be listed as trusted,
    /// the own entry wins.
    pub fn new(own_issuer: String, own_keys: KeySet, trusted: Vec<TrustedIssuer>) -> Self {
        Self {
            own_issuer,
            own_keys,
            trusted,
        }
    }

    /// The issuer of this Baton's verdicts and of the tokens verified with its own keys.
    pub fn own_issuer(&self) -> &str {
        &self.own_issuer
    }

    /// Whether `token` claims to come from an issuer this verifier knows (Baton itself or a
    /// trusted one), judged by its unverified payload's `iss` alone, whatever shape its header
    /// and signature are in. A door that finds a bearer token of its own kind verifies it as a
    /// subject token, so a damaged one is refused rather than ignored; any other bearer token
    /// is none of Baton's business and is left alone.
    pub fn claims_known_issuer(&self, token: &str) -> bool {
        let Some(payload) = jws::claimed_payload(token) else {
            return false;
        };
        let Ok(IssuerOnly { iss: Some(issuer) }) = serde_json::from_slice(&payload) else {
            return false;
        };
        issuer == self.own_issuer || self.trusted.iter().any(|t| t.issuer == issuer)
    }

    /// Verifies `token` at `now` (seconds since the epoch) and reads the chain it carries.
    ///
    /// One signature check and two small JSON parses, no I/O: cheap enough per request that
    /// nothing is cached here; a cache keyed by token would belong to the caller.
    pub fn verify(&self, token: &str, now: u64) -> Result<Upstream, TokenError> {
        // The issuer only picks the keys; the same bytes are then verified under them.
        let unverified: IssuerOnly = serde_json::from_slice(&jws::unverified_payload(token)?)
            .map_err(|e| JwsError::Malformed(format!("claims: {}", clip(&e.to_string()))))?;
        let issuer = unverified.iss.ok_or(ClaimsError::Missing("iss"))?;
        let (keys, typs): (&KeySet, &[&str]) = if issuer == self.own_issuer {
            (&self.own_keys, &[VERDICT_TYP, ACCESS_TOKEN_TYP])
        } else if let Some(trusted) = self.trusted.iter().find(|t| t.issuer == issuer) {
            // A verdict is Baton's own word: another issuer's verdict means nothing here.
            (&trusted.keys, &[ACCESS_TOKEN_TYP])
        } else {
            return Err(TokenError::UntrustedIssuer(clip(&issuer)));
        };
        let (header, raw) = jws::verify::<Box<RawValue>>(token, keys, typs)?;
        let claims: UpstreamClaims = serde_json::from_str(raw.get())
            .map_err(|e| ClaimsError::Unparsable(clip(&e.to_string())))?;
        let is_verdict = header
            .typ
            .as_deref()
            .is_some_and(|typ| jws::same_typ(typ, VERDICT_TYP));
        read_upstream(claims, is_verdict, now)
    }
}

/// A time claim, refused beyond [`MAX_TIMESTAMP`].
fn timestamp(value: Option<u64>, claim: &'static str) -> Result<Option<u64>, ClaimsError> {
    match value {
        Some(t) if t > MAX_TIMESTAMP => Err(ClaimsError::Invalid {
            claim,
            reason: "lies beyond the year 9999".to_owned(),
        }),
        other => Ok(other),
    }
}

/// A list claim of short, non-empty entries, at most [`MAX_ACT_DEPTH`] of them.
fn entries(values: Vec<String>, claim: &'static str) -> Result<Vec<String>, ClaimsError> {
    let invalid = |reason: String| ClaimsError::Invalid { claim, reason };
    if values.len() > MAX_ACT_DEPTH {
        return Err(invalid(format!("has more than {MAX_ACT_DEPTH} entries")));
    }
    if values
        .iter()
        .any(|v| v.is_empty() || v.len() > MAX_ENTRY_BYTES)
    {
        return Err(invalid(format!(
            "has an entry that is empty or longer than {MAX_ENTRY_BYTES} bytes"
        )));
    }
    Ok(values)
}

fn read_upstream(
    claims: UpstreamClaims,
    is_verdict: bool,
    now: u64,
) -> Result<Upstream, TokenError> {
    let issuer = claims.iss.ok_or(ClaimsError::Missing("iss"))?;
    let exp = timestamp(claims.exp, "exp")?.ok_or(ClaimsError::Missing("exp"))?;
    let nbf = timestamp(claims.nbf, "nbf")?;
    let exp_max = timestamp(claims.exp_max, "exp_max")?;
    if exp.saturating_add(Verifier::LEEWAY_SECS) <= now {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = nbf
        && nbf > now.saturating_add(Verifier::LEEWAY_SECS)
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    let sub = claims.sub.ok_or(ClaimsError::Missing("sub"))?;
    let sub_kind = claims.sub_kind.ok_or(ClaimsError::Missing("sub_kind"))?;
    let principal = identity_from_claims(&sub, &sub_kind)?;
    let ceiling = parse_scope(claims.scope.as_deref().unwrap_or_default());
    if ceiling.is_empty() {
        return Err(TokenError::NoCeiling);
    }
    let txn = non_empty(claims.txn, "txn")?;
    let jti = non_empty(claims.jti, "jti")?;
    let actors = match &claims.act {
        Some(act) => actors_from_act(act, MAX_ACT_DEPTH)?,
        // Nobody acted for the subject: the subject holds its own token.
        None => Vec::new(),
    };
    let mut verdicts = entries(claims.lineage, "lineage")?;
    let own = if is_verdict {
        Some(jti.clone())
    } else {
        match claims.verdict {
            Some(v) if v.is_empty() || v.len() > MAX_ENTRY_BYTES => {
                return Err(ClaimsError::Invalid {
                    claim: "verdict",
                    reason: format!("must be 1 to {MAX_ENTRY_BYTES} bytes"),
                }
                .into());
            }
            other => other,
        }
    };
    verdicts.extend(own);
    let mut obligations = entries(claims.obligations, "obligations")?;
    obligations.sort_unstable();
    obligations.dedup();
    let bound_to = claims.cnf.map(confirmation).transpose()?;
    Ok(Upstream {
        principal,
        actors,
        ceiling,
        exp_max: exp_max.unwrap_or(exp),
        txn,
        issuer,
        jti,
        exp,
        nbf,
        verdicts,
        obligations,
        bound_to,
    })
}

/// The thumbprint of a `cnf` claim. A binding Baton cannot check (`jkt`, `jwk`, anything but
/// `x5t#S256`) fails the token: accepting it unbound would hand it to anyone.
fn confirmation(cnf: serde_json::Map<String, serde_json::Value>) -> Result<String, ClaimsError> {
    let invalid = |reason: &str| ClaimsError::Invalid {
        claim: "cnf",
        reason: reason.to_owned(),
    };
    if cnf.len() != 1 {
        return Err(invalid("must hold exactly `x5t#S256`"));
    }
    match cnf.get("x5t#S256") {
        Some(serde_json::Value::String(x5t)) if is_thumbprint(x5t) => Ok(x5t.clone()),
        _ => Err(invalid(
            "must hold exactly `x5t#S256`, a base64url SHA-256 thumbprint",
        )),
    }
}

/// Whether `s` is a SHA-256 thumbprint in base64url without padding: 43 characters.
pub fn is_thumbprint(s: &str) -> bool {
    use base64::Engine as _;
    s.len() == 43
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .is_ok_and(|d| d.len() == 32)
}

fn non_empty(value: Option<String>, claim: &'static str) -> Result<String, ClaimsError> {
    match value {
        None => Err(ClaimsError::Missing(claim)),
        Some(v) if v.is_empty() => Err(ClaimsError::Invalid {
            claim,
            reason: "empty".to_owned(),
        }),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::identity::IdentityKind;
    use crate::token::claims::{AccessTokenClaims, VerdictClaims, act_from_actors, client_id};
    use crate::token::keys::SigningKey;

    const NOW: u64 = 1_750_000_000;
    const OWN: &str = "https://baton.example";
    const MINTER: &str = "https://minter.example";

    struct Fixture {
        own: SigningKey,
        minter: SigningKey,
        verifier: Verifier,
    }

    fn fixture() -> Fixture {
        let own = SigningKey::generate();
        let minter = SigningKey::generate();
        let verifier = Verifier::new(
            OWN.to_owned(),
            KeySet::new(vec![own.public()]),
            vec![TrustedIssuer {
                issuer: MINTER.to_owned(),
                keys: KeySet::new(vec![minter.public()]),
            }],
        );
        Fixture {
            own,
            minter,
            verifier,
        }
    }

    fn alice() -> Identity {
        Identity::new(IdentityKind::User, "alice")
    }

    fn chain() -> Vec<Identity> {
        vec![
            Identity::new(IdentityKind::Agent, "assistant"),
            Identity::new(IdentityKind::Agent, "analyst"),
        ]
    }

    fn verdict(iss: &str) -> VerdictClaims {
        let act = act_from_actors(&chain());
        VerdictClaims {
            iss: iss.to_owned(),
            aud: "Agent:analyst".to_owned(),
            iat: NOW,
            nbf: NOW,
            exp: NOW + 300,
            jti: "v-1".to_owned(),
            txn: "txn-1".to_owned(),
            sub: "alice".to_owned(),
            sub_kind: "user".to_owned(),
            act: act.unwrap(),
            scope: "calendar:read email:read".to_owned(),
            ttl: 300,
            exp_max: NOW + 3600,
            obligations: vec![],
            policies: vec!["p1".to_owned()],
            bundle_version: "b1".to_owned(),
            req_hash: "h".to_owned(),
            approval: None,
            approvers: Vec::new(),
            lineage: Vec::new(),
            cnf: None,
            lifecycle_warnings: Vec::new(),
        }
    }

    fn access_token(iss: &str) -> AccessTokenClaims {
        let holder = chain().last().cloned().unwrap();
        AccessTokenClaims {
            iss: iss.to_owned(),
            sub: "alice".to_owned(),
            sub_kind: "user".to_owned(),
            aud: "Agent:analyst".to_owned(),
            iat: NOW,
            exp: NOW + 300,
            jti: "at-1".to_owned(),
            txn: "txn-1".to_owned(),
            scope: "calendar:read".to_owned(),
            act: act_from_actors(&chain()),
            exp_max: NOW + 3600,
            client_id: client_id(&holder),
            verdict: Some("v-0".to_owned()),
            lineage: Vec::new(),
            cnf: None,
        }
    }

    fn code(result: Result<Upstream, TokenError>) -> &'static str {
        result.map(|_| "OK").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn an_own_verdict_is_accepted() {
        let f = fixture();
        let token = jws::sign(&f.own, VERDICT_TYP, &verdict(OWN)).unwrap();
        let upstream = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(
            upstream,
            Upstream {
                principal: alice(),
                actors: chain(),
                ceiling: ["calendar:read", "email:read"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                exp_max: NOW + 3600,
                txn: "txn-1".to_owned(),
                issuer: OWN.to_owned(),
                jti: "v-1".to_owned(),
                exp: upstream.exp,
                nbf: upstream.nbf,
                verdicts: vec!["v-1".to_owned()],
                obligations: Vec::new(),
                bound_to: None,
            }
        );
    }

    #[test]
    fn a_verdicts_lineage_and_obligations_are_what_it_derives_from_and_owes() {
        let f = fixture();
        let mut claims = verdict(OWN);
        claims.lineage = vec!["v-0".to_owned()];
        claims.obligations = vec!["watermark".to_owned(), "log".to_owned()];
        let token = jws::sign(&f.own, VERDICT_TYP, &claims).unwrap();
        let upstream = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(upstream.verdicts, ["v-0", "v-1"]);
        assert_eq!(upstream.obligations, ["log", "watermark"]);
        // A minted token names the verdict it came from, after that verdict's lineage; the
        // minter met the verdict's obligations, so none are owed.
        let mut minted = access_token(MINTER);
        minted.lineage = vec!["v-a".to_owned()];
        let token = jws::sign(&f.minter, ACCESS_TOKEN_TYP, &minted).unwrap();
        let upstream = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(upstream.verdicts, ["v-a", "v-0"]);
        assert!(upstream.obligations.is_empty());
    }

    #[test]
    fn access_tokens_of_the_own_and_trusted_issuers_are_accepted() {
        let f = fixture();
        let trusted = jws::sign(&f.minter, ACCESS_TOKEN_TYP, &access_token(MINTER)).unwrap();
        let upstream = f.verifier.verify(&trusted, NOW).unwrap();
        assert_eq!(upstream.issuer, MINTER);
        assert_eq!(upstream.actors, chain());
        assert_eq!(upstream.ceiling.len(), 1);
        let own = jws::sign(&f.own, ACCESS_TOKEN_TYP, &access_token(OWN)).unwrap();
        assert_eq!(f.verifier.verify(&own, NOW).unwrap().issuer, OWN);
    }

    #[test]
    fn issuers_and_their_keys_are_not_interchangeable() {
        let f = fixture();
        let untrusted =
            jws::sign(&f.minter, ACCESS_TOKEN_TYP, &access_token("https://evil")).unwrap();
        let err = f.verifier.verify(&untrusted, NOW).unwrap_err();
        assert_eq!(err, TokenError::UntrustedIssuer("https://evil".to_owned()));
        assert_eq!(err.code(), "UNTRUSTED_ISSUER");

        // A trusted issuer may not speak for Baton: its verdicts are refused...
        let verdict_of_minter = jws::sign(&f.minter, VERDICT_TYP, &verdict(MINTER)).unwrap();
        assert_eq!(
            code(f.verifier.verify(&verdict_of_minter, NOW)),
            "WRONG_TOKEN_TYPE"
        );
        // ...and so is a token naming Baton as its issuer but signed with the minter's key.
        let claims_own = jws::sign(&f.minter, VERDICT_TYP, &verdict(OWN)).unwrap();
        assert_eq!(code(f.verifier.verify(&claims_own, NOW)), "UNKNOWN_KEY");
        let no_iss = jws::sign(&f.own, VERDICT_TYP, &json!({"sub": "alice"})).unwrap();
        assert_eq!(code(f.verifier.verify(&no_iss, NOW)), "CLAIMS_INVALID");
        assert_eq!(
            code(f.verifier.verify("not a token", NOW)),
            "TOKEN_MALFORMED"
        );
    }

    #[test]
    fn rs256_and_es256_keys_sign_for_baton_and_for_trusted_issuers() {
        let rsa = SigningKey::generate_rs256(2048).unwrap();
        let p256 = SigningKey::generate_es256().unwrap();
        let verifier = Verifier::new(
            OWN.to_owned(),
            KeySet::new(vec![p256.public()]),
            vec![TrustedIssuer {
                issuer: MINTER.to_owned(),
                keys: KeySet::new(vec![rsa.public(), p256.public()]),
            }],
        );
        let own = jws::sign(&p256, VERDICT_TYP, &verdict(OWN)).unwrap();
        assert_eq!(segment_alg(&own), "ES256");
        assert_eq!(verifier.verify(&own, NOW).unwrap().issuer, OWN);
        for key in [&rsa, &p256] {
            let token = jws::sign(key, ACCESS_TOKEN_TYP, &access_token(MINTER)).unwrap();
            assert_eq!(segment_alg(&token), key.algorithm().name());
            assert_eq!(verifier.verify(&token, NOW).unwrap().issuer, MINTER);
        }
        // Baton's own keys are still its own: the minter's RSA key does not sign verdicts.
        let forged = jws::sign(&rsa, VERDICT_TYP, &verdict(OWN)).unwrap();
        assert_eq!(code(verifier.verify(&forged, NOW)), "UNKNOWN_KEY");
    }

    #[test]
    fn a_header_alg_other_than_the_trusted_keys_is_refused() {
        // The minter's key is Ed25519: a token that names it with RS256, ES256, HS256 or
        // `none` is refused whatever its signature, as is an RS256 token naming no such key.
        let f = fixture();
        let claims = serde_json::to_string(&access_token(MINTER)).unwrap();
        for alg in ["RS256", "ES256", "HS256", "none"] {
            let header = json!({"alg": alg, "typ": ACCESS_TOKEN_TYP, "kid": f.minter.kid()});
            let input = format!("{}.{}", b64(header.to_string()), b64(&claims));
            let signature = f.minter.sign(input.as_bytes()).unwrap();
            let token = format!("{input}.{}", b64(&signature));
            let err = f.verifier.verify(&token, NOW).unwrap_err();
            assert_eq!(err.code(), "ALGORITHM_NOT_ALLOWED", "{alg}: {err}");
        }
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn segment_alg(token: &str) -> String {
        use base64::Engine as _;
        let header = token.split('.').next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        serde_json::from_slice::<Value>(&header).unwrap()["alg"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn expiry_allows_the_leeway_and_no_more() {
        let f = fixture();
        let token = jws::sign(&f.own, VERDICT_TYP, &verdict(OWN)).unwrap();
        let exp = NOW + 300;
        assert_eq!(code(f.verifier.verify(&token, exp)), "OK");
        let last = exp + Verifier::LEEWAY_SECS - 1;
        assert_eq!(code(f.verifier.verify(&token, last)), "OK");
        let err = f.verifier.verify(&token, last + 1).unwrap_err();
        assert_eq!(err, TokenError::Expired { exp, now: last + 1 });
        assert_eq!(err.code(), "TOKEN_EXPIRED");
    }

    #[test]
    fn a_token_from_the_future_is_refused_beyond_the_leeway() {
        let f = fixture();
        let token = jws::sign(&f.own, VERDICT_TYP, &verdict(OWN)).unwrap();
        let early = NOW - Verifier::LEEWAY_SECS;
        assert_eq!(code(f.verifier.verify(&token, early)), "OK");
        let err = f.verifier.verify(&token, early - 1).unwrap_err();
        assert_eq!(err.code(), "TOKEN_NOT_YET_VALID");
    }

    /// `claims` with the members of `patch` set, or removed where `patch` has them null.
    fn patched(claims: &impl serde::Serialize, patch: Value) -> Value {
        let mut value = serde_json::to_value(claims).unwrap();
        let members = value.as_object_mut().unwrap();
        for (name, new) in patch.as_object().unwrap() {
            if new.is_null() {
                members.remove(name);
            } else {
                members.insert(name.clone(), new.clone());
            }
        }
        value
    }

    #[test]
    fn a_missing_or_empty_scope_is_no_ceiling() {
        let f = fixture();
        for scope in [Value::Null, json!(""), json!("  ")] {
            let claims = patched(&verdict(OWN), json!({ "scope": scope }));
            let token = jws::sign(&f.own, VERDICT_TYP, &claims).unwrap();
            let err = f.verifier.verify(&token, NOW).unwrap_err();
            assert_eq!(err, TokenError::NoCeiling, "{scope}");
            assert_eq!(err.code(), "NO_SCOPE_CEILING");
        }
    }

    #[test]
    fn a_bound_token_names_its_thumbprint() {
        let f = fixture();
        let x5t = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let claims = patched(&verdict(OWN), json!({"cnf": {"x5t#S256": x5t}}));
        let token = jws::sign(&f.own, VERDICT_TYP, &claims).unwrap();
        let upstream = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(upstream.bound_to.as_deref(), Some(x5t));
    }

    #[test]
    fn without_act_the_subject_holds_its_own_token() {
        let f = fixture();
        let claims = patched(&access_token(MINTER), json!({"act": null, "exp_max": null}));
        let token = jws::sign(&f.minter, ACCESS_TOKEN_TYP, &claims).unwrap();
        let upstream = f.verifier.verify(&token, NOW).unwrap();
        assert_eq!(upstream.principal, alice());
        assert!(upstream.actors.is_empty());
        assert_eq!(upstream.holder(), &alice());
        // Without `exp_max` the token's own expiry is the deadline.
        assert_eq!(upstream.exp_max, NOW + 300);
    }

    #[test]
    fn claims_that_cannot_name_a_chain_are_refused() {
        let f = fixture();
        let deep: Vec<Identity> = (0..=MAX_ACT_DEPTH)
            .map(|i| Identity::new(IdentityKind::Agent, format!("a{i}")))
            .collect();
        let cases = [
            // A binding Baton cannot check is no binding it may ignore.
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
            json!({"cnf": {"x5t#S256": "short"}}),
            json!({"cnf": {}}),
            json!({"cnf": "x"}),
            json!({"exp": null}),
            json!({"exp": "soon"}),
            json!({"sub": null}),
            json!({"sub": ""}),
            json!({"sub_kind": null}),
            json!({"sub_kind": "robot"}),
            json!({"sub_kind": "User"}),
            json!({"txn": null}),
            json!({"jti": ""}),
            json!({"act": {"sub": "x", "sub_kind": "robot"}}),
            json!({"act": act_from_actors(&deep)}),
            json!({"exp_max": -1}),
            json!({"exp_max": 9_223_372_036_854_775_808u64}),
            json!({"exp_max": MAX_TIMESTAMP + 1}),
            json!({"exp": u64::MAX}),
            json!({"nbf": MAX_TIMESTAMP + 1}),
            json!({"lineage": [""]}),
            json!({"lineage": vec!["v"; MAX_ACT_DEPTH + 1]}),
            json!({"obligations": ["x".repeat(300)]}),
        ];
        for patch in cases {
            let claims = patched(&verdict(OWN), patch.clone());
            let token = jws::sign(&f.own, VERDICT_TYP, &claims).unwrap();
            let err = f.verifier.verify(&token, NOW).unwrap_err();
            assert_eq!(err.code(), "CLAIMS_INVALID", "{patch}: {err}");
        }
        // The deepest chain allowed still passes.
        let deepest = &deep[1..];
        let claims = patched(&verdict(OWN), json!({"act": act_from_actors(deepest)}));
        let token = jws::sign(&f.own, VERDICT_TYP, &claims).unwrap();
        assert_eq!(f.verifier.verify(&token, NOW).unwrap().actors, deepest);
    }
}
