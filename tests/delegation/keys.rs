//! The verdict keys Baton publishes, over gRPC and HTTP, and a key rotation.

use baton::pb::GetJwksRequest;
use baton::token::{KeySet, Keyring, SigningKey};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::Code;

use crate::helpers::*;

/// A plain HTTP/1.1 GET: the status line, the headers (names lowercased) and the body.
async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> (String, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn rotating(old: &SigningKey, new: &SigningKey) -> Options {
    Options {
        keyring: Some(Keyring::new(new.clone(), vec![old.public()])),
        ..Options::default()
    }
}

#[tokio::test]
async fn grpc_and_http_publish_the_same_keys_during_a_rotation() {
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let baton = spawn_baton_with(rotating(&old, &new)).await;

    let over_grpc = baton
        .client
        .clone()
        .get_jwks(GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .jwks;
    let (status, headers, over_http) = http_get(baton.http_addr, "/.well-known/jwks.json").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/jwk-set+json")
    );

    let grpc_keys = KeySet::from_jwks_json(&over_grpc).unwrap();
    let http_keys = KeySet::from_jwks_json(&over_http).unwrap();
    assert_eq!(grpc_keys, http_keys);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&over_grpc).unwrap(),
        serde_json::from_str::<serde_json::Value>(&over_http).unwrap()
    );
    // The signing key first, then the one still published for the tokens it signed.
    let kids: Vec<&str> = grpc_keys.keys().iter().map(|k| k.kid()).collect();
    assert_eq!(kids, [new.kid(), old.kid()]);
    assert_eq!(grpc_keys, KeySet::new(vec![new.public(), old.public()]));
    assert!(!over_grpc.contains("\"d\""), "no private key is published");

    // What the in-process minter fetched at start is that same set.
    assert_eq!(baton.minter.baton_keys, grpc_keys);

    let (status, _, _) = http_get(baton.http_addr, "/.well-known/nothing-here").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn a_verdict_signed_before_a_rotation_still_verifies() {
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let minter_key = SigningKey::generate();
    let before = spawn_baton_with(Options {
        keyring: Some(Keyring::new(old.clone(), Vec::new())),
        minter_key: Some(minter_key.clone()),
        ..Options::default()
    })
    .await;
    let hop1 = before
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop1);
    assert_eq!(segment(&hop1.verdict, 0)["kid"], old.kid());

    // The same deployment after the rotation: the new key signs, the old one is still published.
    let after = spawn_baton_with(Options {
        minter_key: Some(minter_key),
        ..rotating(&old, &new)
    })
    .await;
    let hop2 = after
        .authorize(next_hop(
            "Agent:user-assistant",
            "Agent:data-analyst",
            &hop1.verdict,
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop2);
    assert_eq!(segment(&hop2.verdict, 0)["kid"], new.kid());
    assert_eq!(hop2.transaction_id, hop1.transaction_id);
    // A minter that fetched the rotated keys redeems verdicts of either key.
    after.minter.mint(&hop1.verdict, now()).await.unwrap();
    after.minter.mint(&hop2.verdict, now()).await.unwrap();

    // Once the old key is no longer published, its verdicts are worthless.
    let finished = spawn_baton_with(Options {
        keyring: Some(Keyring::new(new.clone(), Vec::new())),
        ..Options::default()
    })
    .await;
    let message = assert_refused(
        finished
            .try_authorize(next_hop(
                "Agent:user-assistant",
                "Agent:data-analyst",
                &hop1.verdict,
                &["reports.generate"],
            ))
            .await,
        Code::Unauthenticated,
        "UNKNOWN_KEY",
    );
    assert!(message.contains(old.kid()), "{message}");
    let err = finished
        .minter
        .mint(&hop1.verdict, now())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VERDICT_INVALID");
}
