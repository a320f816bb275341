//! Bearer tokens known by name, as gateway and admin token files list them: `name token` per
//! line, `#` starting a comment. Only SHA-256 digests are kept, and a presented token is
//! compared with every entry in constant time, so timing tells nothing about the tokens.

use std::collections::HashSet;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shorter tokens are refused.
pub const MIN_TOKEN_LEN: usize = 16;

/// Bearer tokens by name, kept as SHA-256 digests; empty when none are configured.
#[derive(Debug, Clone, Default)]
pub struct NamedTokens {
    tokens: Vec<([u8; 32], String)>,
}

impl NamedTokens {
    /// Reads `path`; the error is the problem, for the caller to place. `kind` names the tokens
    /// in messages (`gateway`, `admin`).
    pub fn from_file(path: &Path, kind: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let mut names = HashSet::new();
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("line {} is not `name token`", n + 1));
            };
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "line {}: tokens must be at least {MIN_TOKEN_LEN} characters",
                    n + 1
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(format!("line {}: {kind} `{name}` appears twice", n + 1));
            }
            tokens.push((digest(token), name.to_owned()));
        }
        if tokens.is_empty() {
            return Err(format!("no {kind} tokens"));
        }
        Ok(Self { tokens })
    }

    /// One token under `name`.
    pub fn single(name: &str, token: &str) -> Result<Self, String> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "tokens must be at least {MIN_TOKEN_LEN} characters"
            ));
        }
        Ok(Self {
            tokens: vec![(digest(token), name.to_owned())],
        })
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether a token is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tokens.iter().any(|(_, n)| n == name)
    }

    /// The name of the token presented, if it is one of these.
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
