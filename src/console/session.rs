//! Console sessions: a login with an admin token opens one, kept in this process's memory; the
//! browser holds only its random id in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under
//! TLS). Each session has its own CSRF token, which every form carries back and every change
//! checks in constant time. A restart logs everyone out, which is the safe side.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ConsoleState;
use std::sync::Arc;

/// How long a session lasts from login: a working day.
pub const SESSION_SECS: u64 = 8 * 3600;

/// Sessions beyond this many push out the one closest to expiring: a flood of logins by
/// token holders cannot grow memory without bound.
const MAX_SESSIONS: usize = 10_000;

/// The cookie's name: with TLS, `__Host-` makes browsers refuse it unless it is `Secure`,
/// host-only and for `/`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-baton-console"
    } else {
        "baton-console"
    }
}

/// One logged-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// The admin token's name: the author of everything done in this session.
    pub author: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl Session {
    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// 32 bytes from the operating system's CSPRNG, in hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    const_hex::encode(bytes)
}

/// Sessions are found by the SHA-256 of their id, so a lookup's timing says nothing about
/// the ids themselves.
fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Opens a session for `author` at `now`; its id, for the cookie, and the session.
    pub fn open(&self, author: &str, now: u64) -> (String, Session) {
        let id = random_token();
        let session = Session {
            author: author.to_owned(),
            csrf: random_token(),
            expires_at: now.saturating_add(SESSION_SECS),
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.expires_at > now);
        if open.len() >= MAX_SESSIONS {
            let oldest = open
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                open.remove(&oldest);
            }
        }
        open.insert(key(&id), session.clone());
        (id, session)
    }

    /// The session `id` names, if it is open at `now`.
    pub fn get(&self, id: &str, now: u64) -> Option<Session> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(id);
        match open.get(&k) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                open.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id`.
    pub fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&key(id));
    }
}

/// The value of the cookie `name` in a `Cookie` header.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that gives the browser session `id`.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure_attr = if secure { "; Secure" } else { "" };
    format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure_attr}",
        cookie_name(secure)
    )
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(secure: bool) -> String {
    let secure_attr = if secure { "; Secure" } else { "" };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure_attr}",
        cookie_name(secure)
    )
}

/// A request from a logged-in operator: the session and its id. Without one, a page is
/// redirected to the login form and anything else is refused with 403.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The session's id, as the cookie holds it.
    pub id: String,
    /// The session.
    pub session: Session,
}

impl Signed {
    /// The 403 refusal of a change whose form did not carry the session's CSRF token
    /// `presented`; `None` when it did.
    pub fn refuse_forged(&self, presented: &str) -> Option<Response> {
        if self.session.csrf_matches(presented) {
            return None;
        }
        tracing::warn!(author = %self.session.author, "console refused a change without its CSRF token");
        Some(forbidden(
            "the form's CSRF token is missing or wrong; reload the page",
        ))
    }
}

/// A plain 403.
pub fn forbidden(why: &'static str) -> Response {
    (StatusCode::FORBIDDEN, why).into_response()
}

impl FromRequestParts<Arc<ConsoleState>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Self::Rejection> {
        let now = state.governance.clock().unix();
        let found = cookie(parts, cookie_name(state.secure))
            .and_then(|id| state.sessions.get(id, now).map(|s| (id.to_owned(), s)));
        match found {
            Some((id, session)) => Ok(Self { id, session }),
            None if parts.method == Method::GET || parts.method == Method::HEAD => {
                Err(Redirect::to("/login").into_response())
            }
            None => Err(forbidden("no console session: log in first")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_close_and_never_share_tokens() {
        let sessions = Sessions::default();
        let (id, s) = sessions.open("alice", 100);
        let (other, t) = sessions.open("bob", 100);
        assert_ne!(id, other);
        assert_ne!(s.csrf, t.csrf);
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.get(&id, 101).unwrap().author, "alice");
        assert!(sessions.get(&id, 100 + SESSION_SECS).is_none());
        assert!(sessions.get("nope", 101).is_none());
        sessions.close(&other);
        assert!(sessions.get(&other, 101).is_none());
        assert!(t.csrf_matches(&t.csrf));
        assert!(!t.csrf_matches(""));
        assert!(!t.csrf_matches(&s.csrf));
    }

    #[test]
    fn the_cookie_is_secure_and_host_only_under_tls() {
        let tls = set_cookie("abc", true);
        assert!(tls.starts_with("__Host-baton-console=abc;"), "{tls}");
        for attribute in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
            assert!(tls.contains(attribute), "{tls}");
        }
        assert!(!tls.contains("Domain"), "{tls}");
        let plain = set_cookie("abc", false);
        assert!(plain.starts_with("baton-console=abc;") && !plain.contains("Secure"));
        assert!(clear_cookie(true).contains("Max-Age=0"));
    }
}
