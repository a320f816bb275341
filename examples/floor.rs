//! The transport's floor: a tonic server that serves Baton's `DecisionService` and does no
//! work. `Authorize` decodes the request and answers an empty response; every other method is
//! unimplemented. `benches/compare.sh` runs it beside Baton under the same load, so Baton's
//! figures read as a multiple of what tonic, HTTP/2 and the kernel cost by themselves.
//!
//! ```text
//! TOKIO_WORKER_THREADS=1 cargo run --release --example floor -- 127.0.0.1:50051
//! ```

use baton::pb;
use baton::pb::decision_service_server::{DecisionService, DecisionServiceServer};
use tonic::{Request, Response, Status};

struct Floor;

#[tonic::async_trait]
impl DecisionService for Floor {
    async fn authorize(
        &self,
        _request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        Ok(Response::new(pb::AuthorizeResponse::default()))
    }

    async fn batch_authorize(
        &self,
        _request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        Err(Status::unimplemented("the floor answers Authorize only"))
    }

    async fn exchange(
        &self,
        _request: Request<pb::ExchangeRequest>,
    ) -> Result<Response<pb::ExchangeResponse>, Status> {
        Err(Status::unimplemented("the floor answers Authorize only"))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Err(Status::unimplemented("the floor answers Authorize only"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned())
        .parse()?;
    // TCP_NODELAY, as Baton's listeners set it: otherwise small responses wait for ACKs.
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(DecisionServiceServer::new(Floor))
        .serve_with_shutdown(listen, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
