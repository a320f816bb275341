//! The web console: what a security team sees and does, in a browser, on a listener of its own
//! (`--console-listen`), served only with admin tokens. An operator logs in with a named admin
//! token and gets a session ([`session`]); pages are rendered on the server ([`maud`]), usable
//! without JavaScript, with one small script that streams live decisions by server-sent events.
//!
//! A door like the gRPC services: it reads through the pipeline, the audit trail, the replica
//! and the bundle, and acts only through the same domain calls as the admin API
//! ([`crate::governance::Governance`] for revocations and approvals, the [`Replica`] for
//! rollbacks), with the session's admin token name as the author.
//!
//! - [`session`]: login sessions and CSRF tokens; [`login`]: the login and logout forms.
//! - `layout`: the page frame and shared formatting.
//! - `decisions`: live decisions and the SSE stream; `transaction`: one transaction's
//!   delegation tree as a graph; `approvals`: the approvals inbox; `agents`: agents, who may
//!   call them, and the kill switch; `bundles`: revisions and rollback.

mod agents;
mod approvals;
mod bundles;
mod decisions;
mod layout;
pub mod login;
mod pace;
mod review;
pub mod session;
mod trail;
mod transaction;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use crate::governance::Governance;
use crate::pipeline::Pipeline;
use crate::policy_store::replica::Replica;
use crate::transport::AdminTokens;

use self::session::Sessions;

/// What the console reads and acts through.
pub struct ConsoleState {
    pipeline: Arc<Pipeline>,
    replica: Arc<Replica>,
    governance: Governance,
    tokens: AdminTokens,
    sessions: Sessions,
    /// Whether the listener has TLS: the session cookie is then `Secure`.
    secure: bool,
    /// Turns true when the application stops, ending every live stream so shutdown need not
    /// wait for browsers to hang up.
    stopping: watch::Receiver<bool>,
}

impl ConsoleState {
    /// The console of `pipeline` and `replica`, admitting holders of `tokens`.
    pub fn new(
        pipeline: Arc<Pipeline>,
        replica: Arc<Replica>,
        tokens: AdminTokens,
        secure: bool,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            governance: Governance::of(&pipeline),
            pipeline,
            replica,
            tokens,
            sessions: Sessions::default(),
            secure,
            stopping,
        }
    }
}

/// Every console page declares what it may load: only its own stylesheet and script, no
/// inline script, no framing; and pages are never cached, since they show live state.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The console's routes.
pub fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/decisions") }))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/decisions", get(decisions::page))
        .route("/decisions/stream", get(decisions::stream))
        .route("/transactions/{id}", get(transaction::page))
        .route("/approvals", get(approvals::page))
        .route("/approvals/{id}/decide", post(approvals::decide))
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::page))
        .route("/agents/{id}/revoke", post(agents::revoke))
        .route("/agents/{id}/lift", post(agents::lift))
        .route("/bundles", get(bundles::page))
        .route("/review", get(review::page))
        .route("/bundles/rollback", post(bundles::rollback))
        .route(
            "/static/console.css",
            get(|| async { asset("text/css; charset=utf-8", layout::CSS) }),
        )
        .route(
            "/static/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", layout::LIVE_JS) }),
        )
        .layer(axum::middleware::map_response(harden))
        .with_state(state)
}

/// Serves the console on `listener`, over TLS when it has TLS, until `shutdown` resolves.
pub async fn run(
    listener: crate::server::Bound,
    state: Arc<ConsoleState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::http::serve(listener, router(state), shutdown).await
}
