//! Requests mutated at random bytes, on every gRPC door: tonic answered those it cannot decode
//! (a string that is not UTF-8, a message cut short) with `INTERNAL`. Each undecodable one must
//! get `INVALID_ARGUMENT` naming what failed, and no mutation may get `INTERNAL` or an ALLOW
//! it was not entitled to.

use std::collections::HashMap;

use baton::pb;
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use proptest::prelude::RngExt as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{TOKEN, connect, report_request, shipped_files, spawn_admin_app};

const SEED: [u8; 32] = *b"baton-undecodable-fuzz-seed-0001";
const MUTATIONS_PER_DOOR: usize = 600;

/// Sends bytes as they are and decodes the answer as `T`.
struct RawCodec<T>(std::marker::PhantomData<T>);

impl<T: Message + Default + Send + 'static> Codec for RawCodec<T> {
    type Encode = Vec<u8>;
    type Decode = T;
    type Encoder = RawEncoder;
    type Decoder = TypedDecoder<T>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> TypedDecoder<T> {
        TypedDecoder(std::marker::PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

struct TypedDecoder<T>(std::marker::PhantomData<T>);

impl<T: Message + Default> Decoder for TypedDecoder<T> {
    type Item = T;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        T::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::data_loss(e.to_string()))
    }
}

/// One door: where it is, a valid request, and whether a mutated request decodes.
struct Door {
    path: &'static str,
    admin: bool,
    valid: Vec<u8>,
    decodes: fn(&[u8]) -> bool,
}

fn decodes<T: Message + Default>(bytes: &[u8]) -> bool {
    T::decode(bytes).is_ok()
}

/// A request with the bytes 0xFF where `caller.id`'s text was.
fn authorize_with_bad_caller_id() -> Vec<u8> {
    let mut request = report_request();
    request.caller.as_mut().unwrap().id = "@@@@".into();
    let mut bytes = request.encode_to_vec();
    let at = bytes.windows(4).position(|w| w == b"@@@@").unwrap();
    bytes[at..at + 4].copy_from_slice(&[0xFF; 4]);
    bytes
}

fn check_request() -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "POST".into(),
                    path: "/reports".into(),
                    host: "data-analyst".into(),
                    headers: HashMap::from([(
                        "x-baton-caller".into(),
                        "Agent:user-assistant".into(),
                    )]),
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

fn doors() -> Vec<Door> {
    let shipped = pb::ValidateBundleRequest {
        files: shipped_files(),
    };
    vec![
        Door {
            path: "/baton.v1.DecisionService/Authorize",
            admin: false,
            valid: report_request().encode_to_vec(),
            decodes: decodes::<pb::AuthorizeRequest>,
        },
        Door {
            path: "/baton.v1.DecisionService/BatchAuthorize",
            admin: false,
            valid: pb::BatchAuthorizeRequest {
                requests: vec![report_request(), report_request()],
            }
            .encode_to_vec(),
            decodes: decodes::<pb::BatchAuthorizeRequest>,
        },
        Door {
            path: "/baton.v1.DecisionService/Exchange",
            admin: false,
            valid: pb::ExchangeRequest {
                subject_token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln".into(),
                scope: "reports.generate".into(),
                resource: "Agent:data-analyst".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            decodes: decodes::<pb::ExchangeRequest>,
        },
        Door {
            path: "/envoy.service.auth.v3.Authorization/Check",
            admin: false,
            valid: check_request().encode_to_vec(),
            decodes: decodes::<CheckRequest>,
        },
        Door {
            path: "/baton.v1.PolicyAdmin/ValidateBundle",
            admin: true,
            // Small enough that mutations land in its structure, not only in policy text.
            valid: pb::ValidateBundleRequest {
                files: shipped.files.into_iter().take(2).collect(),
            }
            .encode_to_vec(),
            decodes: decodes::<pb::ValidateBundleRequest>,
        },
        Door {
            path: "/baton.v1.Governance/Revoke",
            admin: true,
            valid: pb::RevokeRequest {
                target: Some(pb::RevocationTarget {
                    target: Some(pb::revocation_target::Target::Agent("fuzz-target".into())),
                }),
                reason: "fuzz".into(),
                expires_at: None,
            }
            .encode_to_vec(),
            decodes: decodes::<pb::RevokeRequest>,
        },
    ]
}

fn mutate(rng: &mut TestRng, base: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] = rng.random(),
            1 => bytes[at] = 0xFF,
            2 => bytes.truncate(at),
            _ => bytes.insert(at, rng.random()),
        }
    }
    bytes
}

async fn call(channel: &Channel, door: &Door, bytes: Vec<u8>) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(bytes);
    if door.admin {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    }
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(door.path);
    if door.path.ends_with("/Authorize") {
        let answer = grpc
            .unary(
                request,
                path,
                RawCodec::<pb::AuthorizeResponse>(Default::default()),
            )
            .await?;
        let _ = answer;
    } else {
        grpc.unary(request, path, RawCodec::<()>(Default::default()))
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_string_holding_0xff_is_an_invalid_argument_naming_the_field() {
    let app = spawn_admin_app().await;
    let channel = connect(&app.url).await;
    let door = &doors()[0];
    let status = call(&channel, door, authorize_with_bad_caller_id())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("EntityRef.id"), "{status:?}");
    assert!(status.message().contains("UTF-8"), "{status:?}");
    assert_eq!(
        status.get_error_details().error_info().unwrap().reason,
        "UNDECODABLE_REQUEST"
    );
}

#[tokio::test]
async fn requests_mutated_at_random_bytes_never_get_internal_on_any_door() {
    let app = spawn_admin_app().await;
    let decisions = connect(&app.url).await;
    let admin = connect(&app.admin_url).await;
    let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &SEED);
    let mut undecodable = 0;
    for door in doors() {
        let channel = if door.admin { &admin } else { &decisions };
        for _ in 0..MUTATIONS_PER_DOOR {
            let bytes = mutate(&mut rng, &door.valid);
            let decodable = (door.decodes)(&bytes);
            let answer = call(channel, &door, bytes.clone()).await;
            match answer {
                Err(status) => {
                    assert_ne!(
                        status.code(),
                        Code::Internal,
                        "{}: {status:?} for {bytes:?}",
                        door.path
                    );
                    if !decodable {
                        undecodable += 1;
                        assert_eq!(
                            status.code(),
                            Code::InvalidArgument,
                            "{}: {status:?}",
                            door.path
                        );
                    }
                }
                Ok(()) => assert!(
                    decodable,
                    "{}: an undecodable request was answered",
                    door.path
                ),
            }
        }
    }
    eprintln!(
        "{undecodable} of {} mutations were undecodable",
        6 * MUTATIONS_PER_DOOR
    );
    assert!(
        undecodable > 1000,
        "only {undecodable} undecodable mutations"
    );
}
