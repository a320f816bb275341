//! A listener's TLS: its certificate and key, the clients it asks for a certificate, and the
//! rustls configuration made of them, made again whenever one of the files changes.
//!
//! The whole `ServerConfig` is swapped, not only the certificate: a rotated client CA bundle
//! then takes effect the same way. A handshake takes the configuration current when it starts,
//! so connections already open are never touched by a reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, WebPkiClientVerifier};

/// How often the files are looked at by default. cert-manager and SPIRE rotate well before
/// expiry, so a second's delay costs nothing.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client may present one, which must then verify against the client CA.
    Optional,
    /// A client without a certificate the client CA signed is refused in the handshake.
    Required,
}

/// The TLS settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to.
    pub client_ca: Option<PathBuf>,
    /// Whether clients are asked for a certificate.
    pub client_auth: ClientAuth,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
    /// The longest a client may take to finish its handshake before the connection is
    /// dropped: a silent client holds a socket and a task, never a server thread.
    pub handshake_timeout: Duration,
}

impl ListenerTls {
    /// `cert` and `key`, no client certificates, the default reload interval.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
            client_auth: ClientAuth::None,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            handshake_timeout: super::HANDSHAKE_TIMEOUT,
        }
    }

    /// The same, asking clients for a certificate `client_ca` signed.
    pub fn with_clients(mut self, client_ca: impl Into<PathBuf>, auth: ClientAuth) -> Self {
        self.client_ca = Some(client_ca.into());
        self.client_auth = auth;
        self
    }
}

/// Why a listener's TLS configuration cannot be made. Each names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM.
    #[error("{setting} `{path}`: {problem}")]
    File {
        /// The flag the file was given with.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Client certificates are asked for, but no CA says which to accept.
    #[error("--client-auth {mode} needs --client-ca")]
    NoClientCa {
        /// The mode asked for.
        mode: &'static str,
    },
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("the TLS configuration is refused: {0}")]
    Rustls(String),
}

/// A listener's current rustls configuration, made again when its files change.
pub struct ServerTls {
    settings: ListenerTls,
    alpn: Vec<Vec<u8>>,
    current: ArcSwap<ServerConfig>,
    stamps: Mutex<Vec<Option<Stamp>>>,
}

/// What tells a file changed: its modification time and length.
type Stamp = (SystemTime, u64);

impl ServerTls {
    /// Loads `settings` now, so a bad file stops startup; `alpn` is what the listener speaks
    /// (`h2` for gRPC).
    pub fn load(settings: ListenerTls, alpn: Vec<Vec<u8>>) -> Result<Arc<Self>, TlsError> {
        if settings.client_auth != ClientAuth::None && settings.client_ca.is_none() {
            return Err(TlsError::NoClientCa {
                mode: match settings.client_auth {
                    ClientAuth::Required => "required",
                    _ => "optional",
                },
            });
        }
        let stamps = stamps(&settings);
        let config = build(&settings, &alpn)?;
        Ok(Arc::new(Self {
            settings,
            alpn,
            current: ArcSwap::from_pointee(config),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The configuration a handshake starting now uses.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// The settings it was loaded from.
    pub fn settings(&self) -> &ListenerTls {
        &self.settings
    }

    /// Makes the configuration again if a file changed since last looked at. A file that does
    /// not load (a rotation half written, a key that does not match yet) keeps the old one in
    /// service: the next change is tried again. Returns whether a new one took over.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&self.settings);
        {
            let Ok(mut seen) = self.stamps.lock() else {
                return false;
            };
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match build(&self.settings, &self.alpn) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files changed but do not load; the previous certificate stays in service");
                false
            }
        }
    }

    /// Looks at the files every reload interval until the returned task is aborted or this
    /// configuration is dropped.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let interval = self.settings.reload_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                // File reads and a key parse: off the runtime's worker threads.
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    }
}

fn stamps(settings: &ListenerTls) -> Vec<Option<Stamp>> {
    let stamp = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    [
        Some(settings.cert.as_path()),
        Some(settings.key.as_path()),
        settings.client_ca.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(stamp)
    .collect()
}

fn file_error(setting: &'static str, path: &Path) -> impl FnOnce(String) -> TlsError {
    let path = path.to_owned();
    move |problem| TlsError::File {
        setting,
        path,
        problem,
    }
}

/// Every certificate of a PEM file; an empty file is an error.
pub fn certificates(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(setting, path)(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error(setting, path)("holds no certificate".to_owned()));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn private_key(setting: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(setting, path)(e.to_string()))
}

/// A root store of every certificate in a PEM file.
pub fn roots(setting: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(setting, path)? {
        roots
            .add(cert)
            .map_err(|e| file_error(setting, path)(e.to_string()))?;
    }
    Ok(roots)
}

fn build(settings: &ListenerTls, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let certs = certificates("--tls-cert", &settings.cert)?;
    let key = private_key("--tls-key", &settings.key)?;
    let rustls_error = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let builder = ServerConfig::builder();
    let builder = match (&settings.client_ca, settings.client_auth) {
        (Some(ca), ClientAuth::Optional | ClientAuth::Required) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots("--client-ca", ca)?));
            let verifier = if settings.client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(rustls_error)?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}
