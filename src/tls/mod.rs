//! TLS for Baton's own listeners and clients, and the certificate authority tests and the
//! compose demo make their certificates with. rustls with the ring provider throughout.
//!
//! - [`server`]: a listener's certificate, key and client CA, reloaded when the files change.
//! - [`incoming`]: connections accepted over TLS, with the client's certificate read once.
//! - [`peer`]: a client certificate reduced to its thumbprint and names.
//! - [`client`]: how Baton's own clients (the CLI, the minter) reach a TLS listener.
//! - [`pki`]: a small CA issuing server and client (workload) certificates.

pub mod client;
pub mod incoming;
pub mod peer;
pub mod pki;
pub mod server;

pub use self::incoming::{HANDSHAKE_TIMEOUT, PeerInfo, PlainListener, TlsConn, TlsListener};
pub use self::server::{ClientAuth, ListenerTls, ServerTls, TlsError};

/// ALPN of the gRPC listeners: HTTP/2 only.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN of the HTTP listener: HTTP/2 or HTTP/1.1.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// ALPN protocols as rustls wants them.
pub fn alpn(protocols: &[&[u8]]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.to_vec()).collect()
}

/// Makes ring the process's rustls provider. rustls infers it from crate features only while
/// ring is the one provider built; should a dependency ever enable a second, every TLS setup
/// would fail at run time instead. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
