//! A small certificate authority: what `baton demo-pki` writes for the compose demo, and what
//! tests make their certificates with. ECDSA P-256 keys, PEM out. Not for production: a real
//! deployment's certificates come from its own CA (cert-manager, SPIRE, a corporate PKI).

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the certificate `{name}`")]
pub struct PkiError {
    name: String,
    #[source]
    source: rcgen::Error,
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key, PKCS#8 (PEM).
    pub key_pem: String,
    /// The certificate (DER), for thumbprints.
    pub cert_der: Vec<u8>,
}

/// What a certificate names: its subject alternative names.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// The common name, for people reading the certificate.
    pub common_name: String,
    /// DNS names (`localhost`, `baton-1`).
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
    /// URIs, such as a SPIFFE ID (`spiffe://corp.example/agent/a`).
    pub uris: Vec<String>,
}

impl Subject {
    /// A server reached as `localhost` and `127.0.0.1`.
    pub fn localhost() -> Self {
        Self {
            common_name: "localhost".to_owned(),
            dns: vec!["localhost".to_owned()],
            ips: vec![IpAddr::from([127, 0, 0, 1])],
            uris: Vec::new(),
        }
    }

    /// A workload known by its SPIFFE ID.
    pub fn spiffe(id: &str) -> Self {
        Self {
            common_name: id.to_owned(),
            uris: vec![id.to_owned()],
            ..Self::default()
        }
    }
}

/// A self-signed CA that issues server and client certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients and servers trust.
    pub cert_pem: String,
    validity: Duration,
}

fn failed(name: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError {
        name: name.to_owned(),
        source,
    }
}

impl CertificateAuthority {
    /// A new CA named `name`, whose certificates are valid for `validity` from now.
    pub fn generate(name: &str, validity: Duration) -> Result<Self, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, validity);
        let key = KeyPair::generate().map_err(failed(name))?;
        let cert = params.self_signed(&key).map_err(failed(name))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            validity,
        })
    }

    /// A certificate for `subject`, usable as a server and as a client certificate (SPIFFE
    /// X.509-SVIDs are both).
    pub fn issue(&self, subject: &Subject) -> Result<Issued, PkiError> {
        let name = subject.common_name.as_str();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        let mut sans = Vec::new();
        for d in &subject.dns {
            sans.push(SanType::DnsName(
                d.clone().try_into().map_err(failed(name))?,
            ));
        }
        for ip in &subject.ips {
            sans.push(SanType::IpAddress(*ip));
        }
        for u in &subject.uris {
            sans.push(SanType::URI(u.clone().try_into().map_err(failed(name))?));
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        set_validity(&mut params, self.validity);
        let key = KeyPair::generate().map_err(failed(name))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(failed(name))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from a minute ago (clocks differ a little) for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = std::time::SystemTime::now();
    let from = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
    params.not_before = from.into();
    params.not_after = now.checked_add(validity).unwrap_or(now).into();
}
