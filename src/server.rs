//! Runs the gRPC server on a bound listener until `shutdown` resolves, then drains in-flight
//! calls. Tests bind port 0 and pass the listener in.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::pb::audit_service_server::AuditServiceServer;
use crate::pb::decision_service_server::DecisionServiceServer;
use crate::pb::governance_server::GovernanceServer;
use crate::pb::policy_admin_server::PolicyAdminServer;
use crate::policy_store::replica::Replica;
use crate::state::State;
use crate::transport::{AdminApi, AdminAuth, AdminTokens, AuditApi, DecisionApi, GovernanceApi};

/// Largest message the transport decodes; the per-field limits are far below it, so a request
/// that passes this gets a precise `INVALID_ARGUMENT` instead. Beyond it tonic refuses the
/// message before decoding, with `OUT_OF_RANGE`.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// How long in-flight calls get to finish after shutdown starts. Streams that never end on their
/// own, such as health watches, would otherwise hold the process forever.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves until `shutdown`, then drains for at most [`DEFAULT_DRAIN_TIMEOUT`].
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    run_with_drain(listener, state, shutdown, DEFAULT_DRAIN_TIMEOUT).await
}

pub async fn run_with_drain(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()> + Send,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    if state.is_ready() {
        health
            .set_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
    } else {
        health
            .set_not_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
    }

    // grpcurl and most tools speak v1; older ones only v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let readiness = state.clone();
    let decisions = DecisionServiceServer::new(DecisionApi::new(state))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);

    // Without TCP_NODELAY, small responses wait for delayed ACKs: about 40 ms a call.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        // Load balancers and health watchers learn first that this replica is leaving; `/readyz`
        // says the same from here on.
        readiness.readiness.start_draining();
        health
            .set_not_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let _ = draining_tx.send(());
    };
    let server = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(decisions)
        .serve_with_incoming_shutdown(incoming, signal);
    let deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        () = deadline => tracing::warn!(?drain_timeout, "stopped with calls still open after the drain timeout"),
    }
    Ok(())
}

/// Serves the admin API (`baton.v1.PolicyAdmin`, `baton.v1.Governance` and
/// `baton.v1.AuditService`) on its own listener until `shutdown`. Every call must present one of
/// `tokens`: the audit trail says who acted on whose behalf, which no gateway or agent on the
/// decision port may read.
pub async fn run_admin(
    listener: TcpListener,
    replica: Arc<Replica>,
    tokens: AdminTokens,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    // A whole bundle travels in one message; past the bundle limit, the transport refuses it.
    let max_message = replica
        .limits()
        .max_bytes
        .saturating_add(1024 * 1024)
        .max(MAX_MESSAGE_BYTES);
    let admin = PolicyAdminServer::new(AdminApi::new(replica.clone()))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let auth = AdminAuth::new(tokens);
    let governance = GovernanceServer::new(GovernanceApi::new(replica.state().clone()));
    let audit = AuditServiceServer::new(AuditApi::new(replica.state().clone()));
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .add_service(reflection)
        .add_service(InterceptedService::new(admin, auth.clone()))
        .add_service(InterceptedService::new(governance, auth.clone()))
        .add_service(InterceptedService::new(audit, auth))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}
