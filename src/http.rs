//! The HTTP side of Baton: the verdict keys at `/.well-known/jwks.json`, for minters and
//! resource servers that verify verdicts offline; the AuthZEN door ([`crate::authzen`]);
//! Prometheus metrics at `/metrics`; and the probes: `/healthz` (the process is up) and
//! `/readyz` (it takes calls, as gRPC health says).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::authzen::AuthzenApi;
use crate::pipeline::Pipeline;
use crate::readiness::Readiness;
use crate::tls::{PeerInfo, PlainListener, TlsListener};

/// Where the verdict keys are published (RFC 8615 well-known URI).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the HTTP side reads: the published keys, rendered once, the metrics the pipeline
/// keeps, and whether this replica takes calls.
pub struct HttpState {
    /// The published verdict keys as a JWKS document, rendered once.
    pub jwks: String,
    /// The pipeline whose metrics `/metrics` renders.
    pub pipeline: Arc<Pipeline>,
    /// Whether this replica takes calls, for `/readyz`.
    pub readiness: Arc<Readiness>,
    /// The AuthZEN door.
    pub authzen: Arc<AuthzenApi>,
}

impl HttpState {
    /// The state of `pipeline`'s replica, with its keys as published now.
    pub fn new(
        pipeline: Arc<Pipeline>,
        readiness: Arc<Readiness>,
        authzen: Arc<AuthzenApi>,
    ) -> Self {
        let jwks = pipeline
            .delegation()
            .keyring
            .published()
            .to_jwks()
            .to_string();
        Self {
            jwks,
            pipeline,
            readiness,
            authzen,
        }
    }
}

type State = HttpState;

/// The HTTP routes: the JWKS, the AuthZEN door, `/healthz`, `/readyz` and `/metrics`.
pub fn router(state: Arc<State>) -> Router {
    let authzen = crate::authzen::router(Arc::clone(&state.authzen));
    Router::new()
        .route(JWKS_PATH, get(jwks))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(authzen)
}

async fn jwks(Extract(state): Extract<Arc<State>>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            // Verifiers may cache briefly; rotation publishes the next key before it signs.
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        state.jwks.clone(),
    )
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> impl IntoResponse {
    if !state.readiness.is_draining() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.pipeline.render_metrics(),
    )
}

/// Serves HTTP on `listener`, over TLS when it has TLS, until `shutdown` resolves.
pub async fn run(
    listener: crate::server::Bound,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, router(state), shutdown).await
}

/// Serves `router` on `listener`, over TLS when it has TLS, until `shutdown` resolves: the
/// HTTP port and the console alike. Every request carries its peer: the address tells a
/// loopback gateway apart when no tokens are configured; the certificate, a workload or
/// gateway known by it.
pub async fn serve(
    listener: crate::server::Bound,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router.into_make_service_with_connect_info::<PeerInfo>();
    match listener.tls {
        None => {
            axum::serve(PlainListener(listener.tcp), service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            axum::serve(TlsListener::new(listener.tcp, tls)?, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
