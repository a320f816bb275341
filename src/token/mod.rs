//! Signed verdicts and the tokens minted from them: Ed25519, RSA and P-256 keys, strict compact
//! JWS, the claims with their RFC 8693 `act` chain, and the verification of upstream credentials.
//!
//! - [`keys`]: signing and public keys, key sets by `kid`, and the keyring that rotates them.
//! - [`jws`]: compact JWS signing and strict verification.
//! - [`claims`]: verdict and access token claims, and the `act` chain.
//! - [`verify`]: a caller's `subject_token` turned into the principal, chain and scope ceiling.

pub mod claims;
pub mod jws;
pub mod keys;
pub mod verify;

pub use claims::{AccessTokenClaims, Actor, ApproverClaim, ClaimsError, VerdictClaims};
pub use jws::{ACCESS_TOKEN_TYP, Header, JwsError, MAX_TOKEN_BYTES, VERDICT_TYP};
pub use keys::{Algorithm, KeyError, KeySet, Keyring, PublicKey, SigningKey};
pub use verify::{TokenError, TrustedIssuer, Upstream, Verifier};
