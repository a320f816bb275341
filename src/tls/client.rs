//! How Baton's own clients (the CLI, `baton-minter`, the load example) reach a listener: an
//! `https://` URL speaks TLS, trusting `--ca` (else the system's roots), presenting
//! `--client-cert`/`--client-key` when given.

use std::path::PathBuf;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The client side of TLS, as flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// CA certificates (PEM) that sign Baton's certificate, for an `https://` server; the
    /// system's roots without it.
    #[arg(long, env = "BATON_CA")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) to present, for a listener with `--client-auth`.
    #[arg(
        long,
        env = "BATON_CLIENT_CERT",
        requires = "client_key",
        global = true
    )]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of `--client-cert`.
    #[arg(
        long,
        env = "BATON_CLIENT_KEY",
        requires = "client_cert",
        global = true
    )]
    pub client_key: Option<PathBuf>,
}

/// Why a client cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The URL does not parse.
    #[error("`{url}` is not a valid URL")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        #[source]
        source: tonic::transport::Error,
    },
    /// A file cannot be read.
    #[error("cannot read {setting} `{path}`")]
    File {
        /// The flag it was given with.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Certificates were given for a plaintext URL: they would go unused, and whoever gave
    /// them expects TLS.
    #[error("`{url}` is not `https://`, but TLS files are given")]
    NotHttps {
        /// The URL as given.
        url: String,
    },
    /// tonic refused the TLS settings.
    #[error("the TLS settings are refused")]
    Tls(#[source] tonic::transport::Error),
}

impl ClientTlsArgs {
    fn any(&self) -> bool {
        self.ca.is_some() || self.client_cert.is_some()
    }

    /// An endpoint for `url`, over TLS when it is `https://`.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, ClientTlsError> {
        let endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|source| ClientTlsError::Url {
                url: url.to_owned(),
                source,
            })?;
        if !url.starts_with("https://") {
            if self.any() {
                return Err(ClientTlsError::NotHttps {
                    url: url.to_owned(),
                });
            }
            return Ok(endpoint);
        }
        endpoint
            .tls_config(self.config()?)
            .map_err(ClientTlsError::Tls)
    }

    fn config(&self) -> Result<ClientTlsConfig, ClientTlsError> {
        let read = |setting, path: &PathBuf| {
            std::fs::read(path).map_err(|source| ClientTlsError::File {
                setting,
                path: path.clone(),
                source,
            })
        };
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read("--ca", ca)?)),
            None => config.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            config = config.identity(Identity::from_pem(
                read("--client-cert", cert)?,
                read("--client-key", key)?,
            ));
        }
        Ok(config)
    }
}
