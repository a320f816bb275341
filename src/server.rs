//! Serves the gRPC doors on bound listeners until shutdown: the decision port (with health and
//! reflection) and the admin port (behind the admin tokens). The application decides what is
//! served where; tests bind port 0 and pass the listeners in.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

use crate::coalesced_writes::CoalescedWrites;
use crate::pb::audit_service_server::AuditServiceServer;
use crate::pb::decision_service_server::DecisionServiceServer;
use crate::pb::governance_server::GovernanceServer;
use crate::pb::policy_admin_server::PolicyAdminServer;
use crate::readiness::Readiness;
use crate::tls::ServerTls;
use crate::transport::{
    AdminApi, AdminAuth, AdminTokens, AuditApi, DecisionApi, DrainingHealth, ExtAuthzApi,
    GovernanceApi, UndecodableLayer,
};
use envoy_types::ext_authz::v3::pb::AuthorizationServer;

/// Why a gRPC port stopped serving, or never started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The descriptor sets for server reflection do not load.
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound listener, and its TLS when it serves TLS.
pub struct Bound {
    /// The listening socket.
    pub tcp: TcpListener,
    /// Its TLS configuration, reloaded when the files change; plaintext without.
    pub tls: Option<Arc<ServerTls>>,
}

/// Every gRPC port's router: its services under the layer that answers undecodable requests
/// with `INVALID_ARGUMENT`.
type LayeredRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<UndecodableLayer, tower::layer::util::Identity>,
>;

/// Serves `router` on `listener` until `signal`: plaintext, or over TLS with every handshake
/// off the accept path.
async fn serve_router(
    router: LayeredRouter,
    listener: Bound,
    signal: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    match listener.tls {
        None => {
            // Without TCP_NODELAY, small responses wait for delayed ACKs: about 40 ms a call.
            let incoming = TcpIncoming::from(listener.tcp)
                .with_nodelay(Some(true))
                .map(|accepted| accepted.map(CoalescedWrites::new));
            router.serve_with_incoming_shutdown(incoming, signal).await
        }
        Some(tls) => {
            let incoming = ReceiverStream::new(crate::tls::incoming::accept(listener.tcp, tls))
                .map(|conn| Ok::<_, std::io::Error>(CoalescedWrites::new(conn)));
            router.serve_with_incoming_shutdown(incoming, signal).await
        }
    }
}

/// How the decision port is served.
pub struct DecisionPort {
    /// The decision service.
    pub api: DecisionApi,
    /// Envoy's `ext_authz` door, served beside it.
    pub ext_authz: ExtAuthzApi,
    /// Whether the replica takes calls; set to draining when shutdown starts.
    pub readiness: Arc<Readiness>,
    /// Largest message decoded.
    pub max_message_bytes: usize,
    /// How long in-flight calls get after shutdown starts.
    pub drain_timeout: Duration,
}

/// Reflection v1 (grpcurl and most tools) and v1alpha (older ones) listing only `services`,
/// the ones this port serves, and themselves: every Baton service shares one descriptor set, and
/// a port listing the others' would send clients to methods that answer `UNIMPLEMENTED`.
#[allow(clippy::type_complexity)]
fn reflection(
    services: &[&str],
) -> Result<
    (
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
        >,
        tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1alpha::server_reflection_server::ServerReflection,
        >,
    ),
    ServeError,
> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    let v1 = builder()
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()?;
    let v1alpha = builder()
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()?;
    Ok((v1, v1alpha))
}

/// Serves the decision port until `shutdown`, then drains for at most its drain timeout.
pub async fn serve_decisions(
    listener: Bound,
    port: DecisionPort,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let readiness = port.readiness;
    let drain_timeout = port.drain_timeout;
    let health = tonic_health::server::HealthReporter::new();
    let (draining_watches, watches_drain) = tokio::sync::watch::channel(false);
    let health_service = HealthServer::new(DrainingHealth::new(
        HealthService::from_health_reporter(health.clone()),
        watches_drain,
    ));
    if readiness.is_draining() {
        health
            .set_not_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
    } else {
        health
            .set_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
    }

    let (reflection_v1, reflection_v1alpha) =
        reflection(&["baton.v1.DecisionService", "grpc.health.v1.Health"])?;

    let decisions =
        DecisionServiceServer::new(port.api).max_decoding_message_size(port.max_message_bytes);
    let ext_authz =
        AuthorizationServer::new(port.ext_authz).max_decoding_message_size(port.max_message_bytes);

    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        // Load balancers and health watchers learn first that this replica is leaving; `/readyz`
        // says the same from here on.
        readiness.start_draining();
        health
            .set_not_serving::<DecisionServiceServer<DecisionApi>>()
            .await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        // Open health watches end now rather than hold the drain to its timeout.
        draining_watches.send_replace(true);
        let _ = draining_tx.send(());
    };
    let router = Server::builder()
        .layer(UndecodableLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(decisions)
        .add_service(ext_authz);
    let server = serve_router(router, listener, signal);
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

/// The services of the admin port.
pub struct AdminPort {
    /// `baton.v1.PolicyAdmin`: pushing, listing, activating and rolling back bundles.
    pub admin: AdminApi,
    /// `baton.v1.Governance`: revocations and human approvals.
    pub governance: GovernanceApi,
    /// `baton.v1.AuditService`: queries of the audit trail.
    pub audit: AuditApi,
    /// The tokens every call must present one of.
    pub tokens: AdminTokens,
    /// Largest message decoded: a whole bundle travels in one.
    pub max_message_bytes: usize,
}

/// Serves the admin API (`baton.v1.PolicyAdmin`, `baton.v1.Governance` and
/// `baton.v1.AuditService`) on its own listener until `shutdown`. Every call must present one
/// of the admin tokens: the audit trail says who acted on whose behalf, which no gateway or
/// agent on the decision port may read.
pub async fn serve_admin(
    listener: Bound,
    port: AdminPort,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let admin = PolicyAdminServer::new(port.admin)
        .max_decoding_message_size(port.max_message_bytes)
        .max_encoding_message_size(port.max_message_bytes);
    let (reflection_v1, reflection_v1alpha) = reflection(&[
        "baton.v1.PolicyAdmin",
        "baton.v1.Governance",
        "baton.v1.AuditService",
    ])?;
    let auth = AdminAuth::new(port.tokens);
    let governance = GovernanceServer::new(port.governance);
    let audit = AuditServiceServer::new(port.audit);
    let router = Server::builder()
        .layer(UndecodableLayer)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(admin, auth.clone()))
        .add_service(InterceptedService::new(governance, auth.clone()))
        .add_service(InterceptedService::new(audit, auth));
    serve_router(router, listener, shutdown).await?;
    Ok(())
}
