//! A CA of the test's own and the certificates it issues, written to a temporary directory.

use std::path::PathBuf;
use std::time::Duration;

use baton::tls::pki::{CertificateAuthority, Issued, Subject};
use tempfile::TempDir;

/// A CA, its certificate on disk, and a directory for what it issues.
pub struct Pki {
    pub ca: CertificateAuthority,
    pub dir: TempDir,
}

/// A certificate and key written to files.
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub issued: Issued,
}

impl Pki {
    pub fn new() -> Self {
        let ca =
            CertificateAuthority::generate("baton test CA", Duration::from_secs(3600)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
        Self { ca, dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `subject` and writes it as `<name>.pem` and `<name>.key`.
    pub fn issue(&self, name: &str, subject: &Subject) -> Files {
        let issued = self.ca.issue(subject).unwrap();
        let cert = self.dir.path().join(format!("{name}.pem"));
        let key = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        Files { cert, key, issued }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, name: &str) -> Files {
        self.issue(name, &Subject::localhost())
    }
}
