//! Workloads known by their certificates: what a client certificate says about its holder, as
//! plain data the doors hand the pipeline (no TLS or X.509 types here).

use std::fmt;

/// The client certificate a call came with, reduced to what identifies its holder.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// SHA-256 of the leaf certificate's DER: RFC 8705's `x5t#S256`, and a gateway's
    /// fingerprint.
    pub sha256: [u8; 32],
    /// URI subject alternative names, such as a SPIFFE ID (`spiffe://corp.example/agent/a`).
    pub uris: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
}

impl PeerCertificate {
    /// The thumbprint as RFC 8705 §3.1 writes it in `cnf`: base64url without padding.
    pub fn x5t_s256(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.sha256)
    }

    /// The thumbprint as lowercase hex, as `openssl x509 -fingerprint -sha256` prints it (less
    /// the colons).
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("sha256", &self.sha256_hex())
            .field("uris", &self.uris)
            .field("dns_names", &self.dns_names)
            .finish()
    }
}
