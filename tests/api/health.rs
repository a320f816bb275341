//! The standard gRPC health service, as load balancers and Kubernetes probe it.

use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_server_and_the_decision_service_are_serving() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());

    for service in ["", "baton.v1.DecisionService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of `{service}`: {e:?}"))
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "`{service}`");
    }
}

#[tokio::test]
async fn an_unknown_service_is_not_found() {
    let app = spawn_app().await;
    let mut health = HealthClient::new(app.channel.clone());

    let status = health
        .check(HealthCheckRequest {
            service: "baton.v1.NoSuchService".to_owned(),
        })
        .await
        .expect_err("no such service");

    assert_eq!(status.code(), Code::NotFound);
}
