//! The admin API as the command line reaches it: where it is, the credential it presents, and
//! how a refused call is printed. Shared by `baton policy`, `baton govern` and `baton audit`.

use std::path::Path;

use anyhow::Context as _;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::bundle::read_dir;
use crate::pb::{self, policy_admin_client::PolicyAdminClient};

/// Where the admin API is, and the token to present.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminConnection {
    /// The admin API's address.
    #[arg(
        long,
        env = "BATON_ADMIN_SERVER",
        default_value = "http://127.0.0.1:50052"
    )]
    pub server: String,
    /// The admin bearer token; prefer the environment variable, which `ps` does not show.
    /// Not needed when `--client-cert` is an admin's certificate.
    #[arg(
        long,
        env = "BATON_ADMIN_TOKEN",
        hide_env_values = true,
        required_unless_present = "client_cert"
    )]
    pub token: Option<String>,
    /// TLS to an `https://` admin API.
    #[command(flatten)]
    pub tls: crate::tls::client::ClientTlsArgs,
}

pub(crate) fn bundle_files(dir: &Path) -> anyhow::Result<Vec<pb::BundleFile>> {
    let files = read_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(files
        .into_iter()
        .map(|f| pb::BundleFile {
            name: f.name,
            content: f.text,
        })
        .collect())
}

/// A connection to the admin API.
pub(crate) async fn channel(admin: &AdminConnection) -> anyhow::Result<Channel> {
    admin
        .tls
        .endpoint(&admin.server)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", admin.server))
}

pub(crate) async fn client(admin: &AdminConnection) -> anyhow::Result<PolicyAdminClient<Channel>> {
    let channel = channel(admin).await?;
    // A bundle travels whole; the server enforces its own limit.
    Ok(PolicyAdminClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX))
}

pub(crate) fn authorized<T>(
    admin: &AdminConnection,
    message: T,
) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = &admin.token {
        let value = MetadataValue::try_from(format!("Bearer {}", token.trim()))
            .context("the admin token is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// A refused call as the CLI prints it: the code, the message, and each field a BadRequest names.
pub(crate) fn describe_status(status: tonic::Status) -> anyhow::Error {
    use std::fmt::Write as _;
    use tonic_types::StatusExt;
    let mut message = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            let _ = write!(message, "\n  {}: {}", v.field, v.description);
        }
    }
    anyhow::anyhow!(message)
}
