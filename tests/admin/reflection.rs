//! The admin port's reflection, v1 and v1alpha, lists the admin services and nothing the port
//! does not serve.

use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::{connect, spawn_admin_app};

#[tokio::test]
async fn both_reflection_versions_list_exactly_the_admin_services() {
    let app = spawn_admin_app().await;
    let channel = connect(&app.admin_url).await;
    let admin = [
        "baton.v1.AuditService",
        "baton.v1.Governance",
        "baton.v1.PolicyAdmin",
    ];

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let answer = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .and_then(|r| r.message_response);
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = answer
    else {
        panic!("expected a service list, got {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort_unstable();
    let mut expected: Vec<String> = admin.iter().map(|s| (*s).to_owned()).collect();
    expected.push("grpc.reflection.v1.ServerReflection".into());
    assert_eq!(names, expected);

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let answer = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .and_then(|r| r.message_response);
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer
    else {
        panic!("expected a service list, got {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort_unstable();
    let mut expected: Vec<String> = admin.iter().map(|s| (*s).to_owned()).collect();
    expected.push("grpc.reflection.v1alpha.ServerReflection".into());
    assert_eq!(names, expected);
}
