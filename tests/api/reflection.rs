//! Server reflection, v1 and v1alpha, so grpcurl and older tools can discover the API.

use prost::Message as _;
use prost_types::FileDescriptorProto;
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::spawn_app;

async fn ask_v1(
    app: &crate::helpers::TestApp,
    request: v1::server_reflection_request::MessageRequest,
) -> v1::server_reflection_response::MessageResponse {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("a reflection stream")
        .into_inner();
    responses
        .message()
        .await
        .expect("a reflection response")
        .expect("one response per request")
        .message_response
        .expect("a response body")
}

#[tokio::test]
async fn v1_lists_the_decision_and_health_services() {
    let app = spawn_app().await;

    let response = ask_v1(
        &app,
        v1::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await;

    let v1::server_reflection_response::MessageResponse::ListServicesResponse(list) = response
    else {
        panic!("expected a service list, got {response:?}");
    };
    let mut names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    // Only what this port serves: the admin services share the descriptor set but live on
    // the admin port, and listing them here sent clients to `UNIMPLEMENTED`.
    assert_eq!(
        names,
        [
            "baton.v1.DecisionService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection"
        ]
    );
}

#[tokio::test]
async fn v1_describes_the_decision_service() {
    let app = spawn_app().await;

    let response = ask_v1(
        &app,
        v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "baton.v1.DecisionService".to_owned(),
        ),
    )
    .await;

    let v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) = response
    else {
        panic!("expected file descriptors, got {response:?}");
    };
    let files: Vec<FileDescriptorProto> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).expect("a file descriptor"))
        .collect();
    let decision = files
        .iter()
        .find(|f| f.package() == "baton.v1")
        .unwrap_or_else(|| panic!("no baton.v1 file in {files:?}"));
    let service = decision
        .service
        .iter()
        .find(|s| s.name() == "DecisionService")
        .expect("the file declares DecisionService");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        ["Authorize", "BatchAuthorize", "Exchange", "GetJwks"]
    );
}

#[tokio::test]
async fn v1alpha_lists_the_decision_service() {
    let app = spawn_app().await;
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone());

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let response = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("a reflection stream")
        .into_inner()
        .message()
        .await
        .expect("a reflection response")
        .and_then(|r| r.message_response);

    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response
    else {
        panic!("expected a service list, got {response:?}");
    };
    let mut names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "baton.v1.DecisionService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"
        ]
    );
}
