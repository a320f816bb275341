//! `baton health`: the probe a container runs on itself. It asks gRPC health on the decision
//! port and, with `--http`, `GET /readyz` on the HTTP port, and exits 0 only if both say the
//! replica takes calls. The image has no curl or grpcurl, and needs none.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::tls::client::ClientTlsArgs;

/// The flags of `baton health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The decision port, whose gRPC health must be SERVING.
    #[arg(long, env = "BATON_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// The HTTP port, whose `/readyz` must answer 200, such as `https://127.0.0.1:8080`.
    #[arg(long, env = "BATON_HEALTH_HTTP")]
    pub http: Option<String>,
    /// How long each check may take, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// TLS for `https://` URLs; an `https://` `--http` needs `--ca`.
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

/// What the checks found, one line each, or the first that failed.
pub async fn run(args: &HealthArgs) -> anyhow::Result<String> {
    let limit = Duration::from_millis(args.timeout_ms);
    let grpc = tokio::time::timeout(limit, grpc_health(args))
        .await
        .with_context(|| format!("{}: no answer within {limit:?}", args.server))??;
    let mut report = format!("{}: gRPC health {grpc}", args.server);
    if let Some(http) = &args.http {
        let url = format!("{}/readyz", http.trim_end_matches('/'));
        let status = tokio::time::timeout(limit, get(&url, &args.tls))
            .await
            .with_context(|| format!("{url}: no answer within {limit:?}"))??;
        if status != 200 {
            bail!("{url}: {status} (the replica is not ready)");
        }
        report.push_str(&format!("\n{url}: {status}"));
    }
    Ok(report)
}

async fn grpc_health(args: &HealthArgs) -> anyhow::Result<&'static str> {
    let channel = args.tls.endpoint(&args.server)?.connect().await?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .with_context(|| format!("{}: gRPC health", args.server))?
        .into_inner();
    match answer.status() {
        ServingStatus::Serving => Ok("SERVING"),
        other => bail!("{}: gRPC health {}", args.server, other.as_str_name()),
    }
}

/// The status of `GET url`, over HTTP/1.1, with TLS for `https://`.
async fn get(url: &str, tls: &ClientTlsArgs) -> anyhow::Result<u16> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    let host = uri
        .host()
        .with_context(|| format!("`{url}` names no host"))?
        .trim_matches(['[', ']'])
        .to_owned();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("{url}: cannot connect"))?;
    let request = http::Request::get(uri.path())
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(axum::body::Body::empty())?;
    if https {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(tls)?));
        let name = ServerName::try_from(host.clone())?;
        let stream = connector
            .connect(name, tcp)
            .await
            .with_context(|| format!("{url}: TLS handshake"))?;
        send(TokioIo::new(stream), request).await
    } else {
        send(TokioIo::new(tcp), request).await
    }
}

async fn send<T>(io: T, request: http::Request<axum::body::Body>) -> anyhow::Result<u16>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    Ok(sender.send_request(request).await?.status().as_u16())
}

fn client_config(tls: &ClientTlsArgs) -> anyhow::Result<rustls::ClientConfig> {
    let Some(ca) = &tls.ca else {
        bail!("an https:// --http needs --ca");
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| read_error("--ca", ca))? {
        roots.add(cert.with_context(|| read_error("--ca", ca))?)?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| read_error("--client-cert", cert))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| read_error("--client-cert", cert))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| read_error("--client-key", key))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    })
}

fn read_error(flag: &str, path: &Path) -> String {
    format!("cannot read {flag} `{}`", path.display())
}
