//! Who may assert a chain without a signed credential. Only a gateway Baton trusts can vouch for
//! a principal, and by default only for a first hop: deeper hops prove their chain with a
//! `subject_token`.

use std::net::SocketAddr;
use std::path::Path;

use super::DelegationError;
use crate::decision::DecisionRequest;
use crate::named_tokens::NamedTokens;
use crate::workload::{KnownCertificates, PeerCertificate};

/// Which requests without a `subject_token` are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AssertedChains {
    /// None: every hop presents a token.
    Never,
    /// A first hop (no earlier hops, no ceiling) from a trusted gateway.
    #[default]
    FirstHop,
    /// Any chain a trusted gateway asserts.
    Any,
}

/// How gateways prove who they are to Baton.
#[derive(Debug, Clone, Default)]
pub struct Gateways {
    /// Empty, with no certificates either: gateways are the callers on the loopback interface,
    /// the embedded default.
    tokens: NamedTokens,
    /// Gateways known by their client certificate (SPIFFE ID, DNS name or thumbprint).
    certificates: KnownCertificates,
}

/// The gateway tokens file cannot be read, holds a malformed line, or holds no token.
#[derive(Debug, thiserror::Error)]
#[error("cannot read gateway tokens from `{path}`: {problem}")]
pub struct GatewayFileError {
    path: String,
    problem: String,
}

impl Gateways {
    /// Reads `name token` lines; `#` starts a comment.
    pub fn from_file(path: &Path) -> Result<Self, GatewayFileError> {
        let tokens =
            NamedTokens::from_file(path, "gateway").map_err(|problem| GatewayFileError {
                path: path.display().to_string(),
                problem,
            })?;
        Ok(Self {
            tokens,
            certificates: KnownCertificates::default(),
        })
    }

    /// The same, also trusting the gateways that present one of `certificates`.
    pub fn with_certificates(mut self, certificates: KnownCertificates) -> Self {
        self.certificates = certificates;
        self
    }

    /// The gateway a call comes from: the one whose client certificate or bearer token it
    /// presents or, when neither tokens nor certificates are configured, a caller on the
    /// loopback interface.
    pub fn identify(
        &self,
        bearer: Option<&str>,
        peer: Option<SocketAddr>,
        certificate: Option<&PeerCertificate>,
    ) -> Option<String> {
        if self.tokens.is_empty() && self.certificates.is_empty() {
            return peer
                .filter(|p| p.ip().is_loopback())
                .map(|_| "loopback".to_owned());
        }
        self.authenticated(bearer, certificate)
    }

    /// The gateway a call proves to be by its certificate or token; never the loopback
    /// default, which vouches for nobody's workload certificate.
    pub fn authenticated(
        &self,
        bearer: Option<&str>,
        certificate: Option<&PeerCertificate>,
    ) -> Option<String> {
        if let Some(name) = certificate.and_then(|c| self.certificates.identify(c)) {
            return Some(name.to_owned());
        }
        self.tokens.identify(bearer?).map(str::to_owned)
    }
}

/// Admits a request that carries no `subject_token`.
pub fn admit_asserted(
    request: &DecisionRequest,
    mode: AssertedChains,
    gateway: Option<&str>,
) -> Result<(), DelegationError> {
    let first_hop = request.delegation_chain.is_empty() && request.ceiling.is_none();
    let refuse = |why: &str| Err(DelegationError::AssertedChainRefused(why.to_owned()));
    match (mode, gateway) {
        (AssertedChains::Never, _) => refuse(
            "this Baton accepts no asserted chains: present the previous hop's credential as `subject_token`",
        ),
        (_, None) => refuse(
            "only a trusted gateway may assert a chain without `subject_token`: authenticate as one, or present the previous hop's credential",
        ),
        (AssertedChains::FirstHop, Some(_)) if !first_hop => refuse(
            "a hop after the first must present the previous hop's credential as `subject_token`",
        ),
        (AssertedChains::FirstHop | AssertedChains::Any, Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tokens_only_loopback_callers_are_gateways() {
        let g = Gateways::default();
        assert_eq!(
            g.identify(None, "127.0.0.1:9".parse().ok(), None)
                .as_deref(),
            Some("loopback")
        );
        assert_eq!(
            g.identify(None, "[::1]:9".parse().ok(), None).as_deref(),
            Some("loopback")
        );
        assert_eq!(g.identify(Some("x"), "10.1.2.3:9".parse().ok(), None), None);
        assert_eq!(g.identify(None, None, None), None);
    }

    #[test]
    fn configured_tokens_name_their_gateway_and_nothing_else_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateways");
        std::fs::write(
            &path,
            "# gateways\nedge  0123456789abcdef0123\nbatch fedcba9876543210fedc # jobs\n",
        )
        .unwrap();
        let g = Gateways::from_file(&path).unwrap();
        assert_eq!(
            g.identify(Some("0123456789abcdef0123"), None, None)
                .as_deref(),
            Some("edge")
        );
        assert_eq!(
            g.identify(Some("fedcba9876543210fedc"), None, None)
                .as_deref(),
            Some("batch")
        );
        assert_eq!(g.identify(Some("0123456789abcdef012"), None, None), None);
        // Loopback is no longer enough once tokens are configured.
        assert_eq!(g.identify(None, "127.0.0.1:1".parse().ok(), None), None);
    }

    #[test]
    fn malformed_gateway_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "",
            "edge",
            "edge short",
            "a 0123456789abcdef0123\na 0123456789abcdef0124",
            "a b c",
        ] {
            let path = dir.path().join("g");
            std::fs::write(&path, text).unwrap();
            assert!(Gateways::from_file(&path).is_err(), "accepted {text:?}");
        }
    }
}
