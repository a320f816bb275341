//! Clients of a TLS listener: gRPC through `baton::tls::client` (as the CLI and the minter
//! connect), a bare handshake that shows the server's certificate, and HTTPS GETs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::{self, Decision};
use baton::tls::client::ClientTlsArgs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::Channel;

use crate::pki::Files;

/// What the client trusts and presents.
pub fn tls_args(ca: &Path, identity: Option<&Files>) -> ClientTlsArgs {
    ClientTlsArgs {
        ca: Some(ca.to_owned()),
        client_cert: identity.map(|f| f.cert.clone()),
        client_key: identity.map(|f| f.key.clone()),
    }
}

/// A gRPC channel to `addr` over TLS.
pub async fn connect(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<&Files>,
) -> Result<Channel, tonic::transport::Error> {
    tls_args(ca, identity)
        .endpoint(&format!("https://{addr}"))
        .unwrap()
        .connect()
        .await
}

/// A first hop a loopback gateway may assert: alice asks her assistant for a report.
pub fn first_hop() -> pb::AuthorizeRequest {
    let entity = |kind: &str, id: &str| pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    };
    pb::AuthorizeRequest {
        caller: Some(entity("User", "alice")),
        callee: Some(entity("Agent", "user-assistant")),
        principal: Some(entity("User", "alice")),
        scopes: vec!["reports.generate".to_owned()],
        ..Default::default()
    }
}

/// Asks the first hop on `channel`; whether it was answered with an ALLOW.
pub async fn allowed(channel: &Channel) -> Result<bool, tonic::Status> {
    let answer = DecisionServiceClient::new(channel.clone())
        .authorize(first_hop())
        .await?
        .into_inner();
    Ok(answer.decision == Decision::Allow as i32)
}

fn client_config(ca_pem: &str, identity: Option<&Files>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match identity {
        Some(files) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&files.cert).unwrap()],
                PrivateKeyDer::from_pem_file(&files.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// Handshakes with `addr` and returns the leaf certificate it served, or the handshake's error.
pub async fn served_certificate(addr: SocketAddr, ca_pem: &str) -> std::io::Result<Vec<u8>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem, None)));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].to_vec())
}

/// GETs `path` over HTTPS/1.1; the status, or the connection's error.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    ca_pem: &str,
    identity: Option<&Files>,
) -> Result<u16, String> {
    https(addr, "GET", path, None, ca_pem, identity)
        .await
        .map(|(status, _)| status)
}

/// Sends `method` to `path` over HTTPS/1.1, with `body` as JSON; the status and body, or the
/// connection's error.
pub async fn https(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    ca_pem: &str,
    identity: Option<&Files>,
) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::TokioIo;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca_pem, identity)));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<axum::body::Bytes>>(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(axum::body::Bytes::from(bytes)))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
