//! The standard gRPC health service, with `Watch` streams that end when the port drains.
//!
//! tonic-health's own streams stay open for as long as the client keeps them, and a graceful
//! shutdown waits for every open call: one watcher held each shutdown for the whole drain
//! timeout. Here a watch tells its watcher `NOT_SERVING` and then ends once draining starts, as
//! Kubernetes and Envoy health checkers expect of a leaving replica.

use std::pin::Pin;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthService;

/// Updates a watcher has not read yet; a watcher only ever needs the latest status.
const WATCH_BUFFER: usize = 4;

/// [`HealthService`] whose watches end when `draining` turns true.
pub struct DrainingHealth {
    inner: HealthService,
    draining: watch::Receiver<bool>,
}

impl DrainingHealth {
    /// Serves `inner`'s statuses; `draining` turns true once, when shutdown starts.
    pub fn new(inner: HealthService, draining: watch::Receiver<bool>) -> Self {
        Self { inner, draining }
    }
}

#[tonic::async_trait]
impl Health for DrainingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut statuses = self.inner.watch(request).await?.into_inner();
        let mut draining = self.draining.clone();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            let not_serving = i32::from(ServingStatus::NotServing);
            let mut last = None;
            loop {
                tokio::select! {
                    // A watch opened while draining, or draining starts: say so, and end.
                    // Only whether it drained: the guard the wait returns is not `Send`.
                    drained = async { draining.wait_for(|d| *d).await.is_ok() } => {
                        // Said once: the status the reporter set may have gone out already.
                        if drained && last != Some(not_serving) {
                            let leaving = HealthCheckResponse { status: not_serving };
                            let _ = tx.send(Ok(leaving)).await;
                        }
                        return;
                    }
                    status = statuses.next() => {
                        let Some(status) = status else { return };
                        last = status.as_ref().ok().map(|s| s.status);
                        if tx.send(status).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
