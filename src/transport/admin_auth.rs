//! Who may call the admin API: holders of a configured bearer token, each known by a name so
//! the log says which author did what. Tokens themselves are never logged or kept in clear.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tonic::{Request, Status};

use super::status::AdminError;
use crate::decision::Approver;
use crate::identity::{Identity, IdentityKind};
use crate::named_tokens::NamedTokens;
use crate::workload::KnownCertificates;

/// The name an admin token stands for when it comes from `BATON_ADMIN_TOKEN`.
pub const ENV_TOKEN_NAME: &str = "admin";

/// The configured admin tokens and admin certificates, by name, and the directory identity
/// each name stands for when it approves.
#[derive(Debug, Clone)]
pub struct AdminTokens {
    tokens: NamedTokens,
    certificates: KnownCertificates,
    approvers: HashMap<String, Identity>,
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

/// The approver an admin call is made by: the author, and the directory identity
/// `--approver` gives that name. Put in the request's extensions beside [`Author`].
pub(super) fn approver<T>(request: &Request<T>) -> Result<Approver, Status> {
    request
        .extensions()
        .get::<Approver>()
        .cloned()
        .ok_or_else(|| AdminError::Unauthenticated.into())
}

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
            approvers: HashMap::new(),
        })
    }

    /// No tokens: only the admins known by `certificates`.
    pub fn certificates_only(certificates: KnownCertificates) -> Self {
        Self {
            tokens: NamedTokens::default(),
            certificates,
            approvers: HashMap::new(),
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
            approvers: HashMap::new(),
        })
    }

    /// The same, each admin named in `entries` (`NAME=User:ID`, as `--approver` takes them)
    /// approving as that `User` of the directory. Every name must be an admin's, every
    /// identity a `User`, and no name may appear twice.
    pub fn with_approvers<S: AsRef<str>>(mut self, entries: &[S]) -> Result<Self, AdminTokenError> {
        let bad = |problem: String| AdminTokenError {
            origin: "--approver".to_owned(),
            problem,
        };
        for entry in entries {
            let entry = entry.as_ref().trim();
            let Some((name, who)) = entry.split_once('=') else {
                return Err(bad(format!("`{entry}` is not `NAME=User:ID`")));
            };
            let (name, who) = (name.trim(), who.trim());
            let identity = match who.split_once(':') {
                Some((kind, id)) if !id.is_empty() => IdentityKind::parse(kind)
                    .filter(|k| *k == IdentityKind::User)
                    .map(|k| Identity::new(k, id)),
                _ => None,
            };
            let Some(identity) = identity else {
                return Err(bad(format!(
                    "`{who}` in `{entry}` is not `User:ID`: approvers are people of the directory"
                )));
            };
            if !self.tokens.has(name) && !self.certificates.has(name) {
                return Err(bad(format!(
                    "`{name}` in `{entry}` is not the name of an admin token or admin certificate"
                )));
            }
            if self.approvers.insert(name.to_owned(), identity).is_some() {
                return Err(bad(format!("`{name}` is given an identity twice")));
            }
        }
        Ok(self)
    }

    /// The approver the admin `name` is: with the directory identity `--approver` gives it,
    /// if any.
    pub fn approver(&self, name: &str) -> Approver {
        match self.approvers.get(name) {
            Some(identity) => Approver::user(name, identity.clone()),
            None => Approver::admin(name),
        }
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
                let approver = self.tokens.approver(name);
                request.extensions_mut().insert(author);
                request.extensions_mut().insert(approver);
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

    #[test]
    fn approvers_name_users_of_admins_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admins");
        std::fs::write(
            &path,
            "carol 0123456789abcdef0123
ops fedcba9876543210fedc
",
        )
        .unwrap();
        let certs = KnownCertificates::parse(&["dave=dns:dave.example"]).unwrap();
        let tokens = AdminTokens::from_file(&path)
            .unwrap()
            .with_certificates(certs)
            .with_approvers(&["carol=User:carol", "dave = User:dave"])
            .unwrap();
        let carol = tokens.approver("carol");
        assert_eq!(carol.name(), "User:carol");
        assert_eq!(carol.admin, "carol");
        assert_eq!(tokens.approver("dave").name(), "User:dave");
        assert_eq!(tokens.approver("ops"), Approver::admin("ops"));
        for bad in [
            "carol",
            "carol=carol",
            "carol=Agent:refund-agent",
            "carol=Group:finance",
            "carol=User:",
            "mallory=User:mallory",
        ] {
            let again = AdminTokens::from_file(&path)
                .unwrap()
                .with_approvers(&[bad]);
            assert!(again.is_err(), "accepted {bad}");
        }
        let twice = AdminTokens::from_file(&path)
            .unwrap()
            .with_approvers(&["carol=User:carol", "carol=User:alice"]);
        assert!(twice.is_err());
    }
}
