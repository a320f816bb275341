//! Who may call the admin API: holders of a configured bearer token, each known by a name so
//! the log says which author did what. Tokens themselves are never logged or kept in clear.

use std::path::Path;
use std::sync::Arc;

use tonic::{Request, Status};

use super::status::AdminError;
use crate::named_tokens::NamedTokens;
use crate::workload::KnownCertificates;

/// The name an admin token stands for when it comes from `BATON_ADMIN_TOKEN`.
pub const ENV_TOKEN_NAME: &str = "admin";

/// The configured admin tokens and admin certificates, by name.
#[derive(Debug, Clone)]
pub struct AdminTokens {
    tokens: NamedTokens,
    certificates: KnownCertificates,
}

/// The admin tokens file cannot be read or holds a bad line, or `BATON_ADMIN_TOKEN` is too
/// short.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the admin tokens from {origin}: {problem}")]
pub struct AdminTokenError {
    origin: String,
    problem: String,
}

/// The authenticated author of an admin call, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct Author(pub String);

/// The author the interceptor authenticated. Its absence means the service was mounted
/// without the interceptor, which must refuse rather than act (or read) anonymously.
pub(super) fn author<T>(request: &Request<T>) -> Result<String, Status> {
    request
        .extensions()
        .get::<Author>()
        .map(|a| a.0.clone())
        .ok_or_else(|| AdminError::Unauthenticated.into())
}

impl AdminTokens {
    /// Reads `name token` lines (`#` starts a comment).
    pub fn from_file(path: &Path) -> Result<Self, AdminTokenError> {
        let tokens = NamedTokens::from_file(path, "admin").map_err(|problem| AdminTokenError {
            origin: format!("`{}`", path.display()),
            problem,
        })?;
        Ok(Self {
            tokens,
            certificates: KnownCertificates::default(),
        })
    }

    /// No tokens: only the admins known by `certificates`.
    pub fn certificates_only(certificates: KnownCertificates) -> Self {
        Self {
            tokens: NamedTokens::default(),
            certificates,
        }
    }

    /// The same, also admitting the admins known by `certificates`.
    pub fn with_certificates(mut self, certificates: KnownCertificates) -> Self {
        self.certificates = certificates;
        self
    }

    /// One token, named `admin`: the `BATON_ADMIN_TOKEN` variable.
    pub fn single(token: &str) -> Result<Self, AdminTokenError> {
        let tokens = NamedTokens::single(ENV_TOKEN_NAME, token.trim()).map_err(|problem| {
            AdminTokenError {
                origin: "BATON_ADMIN_TOKEN".to_owned(),
                problem,
            }
        })?;
        Ok(Self {
            tokens,
            certificates: KnownCertificates::default(),
        })
    }

    /// The name of the token presented, if it is one of ours.
    pub fn identify(&self, bearer: &str) -> Option<&str> {
        self.tokens.identify(bearer)
    }
}

/// Refuses admin calls without a known bearer token, and names the author of the others.
#[derive(Clone)]
pub struct AdminAuth {
    tokens: Arc<AdminTokens>,
}

impl AdminAuth {
    /// An interceptor that admits holders of `tokens`.
    pub fn new(tokens: AdminTokens) -> Self {
        Self {
            tokens: Arc::new(tokens),
        }
    }
}

impl tonic::service::Interceptor for AdminAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        // An admin's client certificate, verified by the admin port's client CA, names the
        // author as surely as a token; the token is checked when there is no such certificate.
        let by_certificate = request
            .extensions()
            .get::<crate::tls::PeerInfo>()
            .and_then(|p| p.certificate.as_deref())
            .and_then(|c| self.tokens.certificates.identify(c));
        let name = by_certificate.or_else(|| bearer.and_then(|b| self.tokens.identify(b)));
        match name {
            Some(name) => {
                let author = Author(name.to_owned());
                request.extensions_mut().insert(author);
                Ok(request)
            }
            None => {
                let peer = request
                    .extensions()
                    .get::<crate::tls::PeerInfo>()
                    .map(|p| p.addr)
                    .or_else(|| request.remote_addr());
                tracing::warn!(
                    peer = ?peer,
                    presented = bearer.is_some(),
                    "refused an admin call without a valid admin token"
                );
                Err(AdminError::Unauthenticated.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_author_and_nothing_else_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admins");
        std::fs::write(
            &path,
            "alice 0123456789abcdef0123 # lead\nbob fedcba9876543210fedc\n",
        )
        .unwrap();
        let tokens = AdminTokens::from_file(&path).unwrap();
        assert_eq!(tokens.identify("0123456789abcdef0123"), Some("alice"));
        assert_eq!(tokens.identify("fedcba9876543210fedc"), Some("bob"));
        assert_eq!(tokens.identify("0123456789abcdef012"), None);
        assert_eq!(tokens.identify(""), None);
        for text in ["", "alice", "alice short", "a b c"] {
            std::fs::write(&path, text).unwrap();
            assert!(AdminTokens::from_file(&path).is_err(), "accepted {text:?}");
        }
        assert!(AdminTokens::single("short").is_err());
        let env = AdminTokens::single("0123456789abcdef0123").unwrap();
        assert_eq!(env.identify("0123456789abcdef0123"), Some(ENV_TOKEN_NAME));
    }
}
