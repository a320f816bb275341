//! The HTTP side of Baton: the verdict keys at `/.well-known/jwks.json`, for minters and
//! resource servers that verify verdicts offline.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::state::State;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(JWKS_PATH, get(jwks))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

async fn jwks(Extract(state): Extract<Arc<State>>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            // Verifiers may cache briefly; rotation publishes the next key before it signs.
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        state.jwks_json(),
    )
}

/// Serves HTTP on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
