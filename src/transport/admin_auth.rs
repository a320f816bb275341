//! Who may call the admin API: holders of a configured bearer token, each known by a name so
//! the log says which author did what. Tokens themselves are never logged or kept in clear.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use super::status::AdminError;

/// The name an admin token stands for when it comes from `BATON_ADMIN_TOKEN`.
pub const ENV_TOKEN_NAME: &str = "admin";
/// Shorter tokens are refused: an admin token moves the policy of every replica.
const MIN_TOKEN_LEN: usize = 16;

/// The configured admin tokens, as SHA-256 digests with their names.
#[derive(Debug, Clone)]
pub struct AdminTokens {
    tokens: Vec<([u8; 32], String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot use the admin tokens from {origin}: {problem}")]
pub struct AdminTokenError {
    origin: String,
    problem: String,
}

/// The authenticated author of an admin call, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct Author(pub String);

impl AdminTokens {
    /// Reads `name token` lines (`#` starts a comment).
    pub fn from_file(path: &Path) -> Result<Self, AdminTokenError> {
        let fail = |problem: String| AdminTokenError {
            origin: format!("`{}`", path.display()),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let mut names = HashSet::new();
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(fail(format!("line {} is not `name token`", n + 1)));
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err(fail(format!(
                    "line {}: tokens must be at least {MIN_TOKEN_LEN} characters",
                    n + 1
                )));
            }
            if !names.insert(name.to_owned()) {
                return Err(fail(format!("line {}: `{name}` appears twice", n + 1)));
            }
            tokens.push((digest(token), name.to_owned()));
        }
        if tokens.is_empty() {
            return Err(fail("no admin tokens".to_owned()));
        }
        Ok(Self { tokens })
    }

    /// One token, named [`ENV_TOKEN_NAME`]: the `BATON_ADMIN_TOKEN` variable.
    pub fn single(token: &str) -> Result<Self, AdminTokenError> {
        if token.trim().len() < MIN_TOKEN_LEN {
            return Err(AdminTokenError {
                origin: "BATON_ADMIN_TOKEN".to_owned(),
                problem: format!("tokens must be at least {MIN_TOKEN_LEN} characters"),
            });
        }
        Ok(Self {
            tokens: vec![(digest(token.trim()), ENV_TOKEN_NAME.to_owned())],
        })
    }

    /// The name of the token presented, if it is one of ours. Every entry is compared in
    /// constant time, so timing tells nothing about the tokens.
    pub fn identify(&self, bearer: &str) -> Option<&str> {
        let presented = digest(bearer);
        let mut found = None;
        for (expected, name) in &self.tokens {
            if bool::from(expected.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Refuses admin calls without a known bearer token, and names the author of the others.
#[derive(Clone)]
pub struct AdminAuth {
    tokens: Arc<AdminTokens>,
}

impl AdminAuth {
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
        match bearer.and_then(|b| self.tokens.identify(b)) {
            Some(name) => {
                let author = Author(name.to_owned());
                request.extensions_mut().insert(author);
                Ok(request)
            }
            None => {
                tracing::warn!(
                    peer = ?request.remote_addr(),
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
