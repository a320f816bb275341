//! Verified upstream tokens, remembered. An agent reuses its minted token for every call of a
//! task, and a signature check costs more than the decision. Caching is safe here because a
//! verification depends only on the token's bytes, on key sets fixed for the process, and on
//! the clock, which every hit checks again. Only successes are kept, under the exact token, so
//! nothing a caller sends can place an entry it did not earn.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::token::{TokenError, Upstream, Verifier};

/// Entries kept at most; a verdict lives two minutes and a minted token for its session.
const CAPACITY: u64 = 16_384;
/// Bounds how long an entry can sit unused; a hit re-checks the token's own times anyway.
const IDLE: Duration = Duration::from_secs(300);

/// A subject token verifier that remembers, under the token's exact bytes, what verified.
pub struct VerifiedTokens {
    verifier: Verifier,
    cache: Cache<String, Arc<Upstream>>,
}

impl VerifiedTokens {
    /// Remembers what `verifier` accepts, up to a fixed number of tokens.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            cache: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// As [`Verifier::verify`], answering repeated tokens from memory.
    pub fn verify(&self, token: &str, now: u64) -> Result<Upstream, TokenError> {
        if let Some(hit) = self.cache.get(token) {
            if hit.is_current(now) {
                return Ok(Upstream::clone(&hit));
            }
            self.cache.invalidate(token);
        }
        let upstream = self.verifier.verify(token, now)?;
        self.cache
            .insert(token.to_owned(), Arc::new(upstream.clone()));
        Ok(upstream)
    }

    /// The verifier itself, which remembers nothing.
    pub fn uncached(&self) -> &Verifier {
        &self.verifier
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::token::jws::{self, VERDICT_TYP};
    use crate::token::{KeySet, SigningKey};

    const NOW: u64 = 1_800_000_000;

    fn setup() -> (SigningKey, VerifiedTokens) {
        let key = SigningKey::generate();
        let keys = KeySet::new(vec![key.public()]);
        (
            key,
            VerifiedTokens::new(Verifier::new("urn:baton".into(), keys, Vec::new())),
        )
    }

    fn token(key: &SigningKey, exp: u64) -> String {
        let claims = json!({
            "iss": "urn:baton", "aud": "urn:baton:minter", "iat": NOW, "nbf": NOW, "exp": exp,
            "jti": "v-1", "txn": "t-1", "sub": "alice", "sub_kind": "user",
            "act": {"sub": "user-assistant", "sub_kind": "agent"}, "scope": "reports.generate",
            "ttl": 60, "exp_max": exp, "obligations": [], "policies": [], "bundle_version": "v",
            "req_hash": "h",
        });
        jws::sign(key, VERDICT_TYP, &claims).unwrap()
    }

    #[test]
    fn a_hit_answers_as_the_verifier_would() {
        let (key, tokens) = setup();
        let t = token(&key, NOW + 60);
        let first = tokens.verify(&t, NOW).unwrap();
        assert_eq!(tokens.verify(&t, NOW + 1).unwrap(), first);
        assert_eq!(tokens.uncached().verify(&t, NOW + 1).unwrap(), first);
    }

    #[test]
    fn a_cached_token_still_expires() {
        let (key, tokens) = setup();
        let t = token(&key, NOW + 60);
        tokens.verify(&t, NOW).unwrap();
        let late = NOW + 60 + Verifier::LEEWAY_SECS;
        let err = tokens.verify(&t, late).unwrap_err();
        assert_eq!(err.code(), "TOKEN_EXPIRED");
    }

    #[test]
    fn failures_are_never_remembered() {
        let (key, tokens) = setup();
        let mut t = token(&key, NOW + 60);
        // Change one signature character, whatever it was.
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        for _ in 0..2 {
            assert!(tokens.verify(&t, NOW).is_err());
        }
        assert_eq!(tokens.cache.entry_count(), 0);
    }
}
