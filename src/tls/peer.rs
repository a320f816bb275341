//! A client certificate, read once per connection: its SHA-256 thumbprint and its subject
//! alternative names.

use sha2::{Digest as _, Sha256};
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::workload::PeerCertificate;

/// `id-ce-subjectAltName` (RFC 5280 §4.2.1.6).
const SUBJECT_ALT_NAME: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.29.17");

/// What the leaf certificate `der` says about its holder. `None` when it does not parse, which
/// cannot happen after rustls verified it; the caller then treats the peer as anonymous.
pub fn read(der: &[u8]) -> Option<PeerCertificate> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let mut uris = Vec::new();
    let mut dns_names = Vec::new();
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        if ext.extn_id != SUBJECT_ALT_NAME {
            continue;
        }
        let names = SubjectAltName::from_der(ext.extn_value.as_bytes()).ok()?;
        for name in names.0 {
            match name {
                GeneralName::UniformResourceIdentifier(uri) => uris.push(uri.to_string()),
                GeneralName::DnsName(dns) => dns_names.push(dns.to_string()),
                _ => {}
            }
        }
    }
    Some(PeerCertificate {
        sha256: Sha256::digest(der).into(),
        uris,
        dns_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pki::{CertificateAuthority, Subject};

    #[test]
    fn reads_the_uri_and_dns_names_and_the_thumbprint() {
        let ca = CertificateAuthority::generate("ca", std::time::Duration::from_secs(60)).unwrap();
        let issued = ca
            .issue(&Subject {
                common_name: "a".to_owned(),
                dns: vec!["a.corp.example".to_owned()],
                uris: vec!["spiffe://corp.example/agent/a".to_owned()],
                ..Subject::default()
            })
            .unwrap();
        let peer = read(&issued.cert_der).unwrap();
        assert_eq!(peer.uris, ["spiffe://corp.example/agent/a"]);
        assert_eq!(peer.dns_names, ["a.corp.example"]);
        assert_eq!(
            peer.sha256,
            <[u8; 32]>::from(Sha256::digest(&issued.cert_der))
        );
        assert_eq!(peer.x5t_s256().len(), 43);
    }

    #[test]
    fn garbage_is_no_certificate() {
        assert!(read(b"not a certificate").is_none());
        assert!(read(&[]).is_none());
    }
}
