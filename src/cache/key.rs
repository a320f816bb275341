//! The identity of a decision: a SHA-256 over everything it depends on.

use sha2::{Digest, Sha256};

/// Covers the bundle version, the request as evaluated ([`DecisionRequest::digest`]: identities,
/// chain, scopes in order, context, ceiling), the upstream credential's latest expiry, and the
/// shared cache epoch, which revocations and bundle activations replace.
///
/// [`DecisionRequest::digest`]: crate::decision::DecisionRequest::digest
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionKey([u8; 32]);

impl DecisionKey {
    /// `latest_expiry` is the upstream token's `exp_max` (seconds since the epoch), if any.
    pub fn new(
        version: &str,
        request_digest: &[u8; 32],
        latest_expiry: Option<u64>,
        epoch: u64,
    ) -> Self {
        let mut h = Sha256::new();
        h.update((version.len() as u64).to_be_bytes());
        h.update(version.as_bytes());
        h.update(request_digest);
        match latest_expiry {
            Some(exp_max) => {
                h.update([1]);
                h.update(exp_max.to_be_bytes());
            }
            None => h.update([0]),
        }
        h.update(epoch.to_be_bytes());
        Self(h.finalize().into())
    }

    /// The SHA-256 digest itself.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}
