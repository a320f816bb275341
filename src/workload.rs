//! Workloads known by their certificates: what a client certificate says about its holder, as
//! plain data the doors hand the pipeline (no TLS or X.509 types here), and the rules that
//! make one a caller (`spiffe://corp.example/agent/{id}` → `Agent:{id}`), a gateway or an
//! admin.

use std::fmt;

use crate::identity::{Identity, IdentityKind};

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
        const_hex::encode(self.sha256)
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

/// How a certificate is recognized: by a URI subject alternative name (a SPIFFE ID), a DNS
/// one, or the SHA-256 thumbprint of the whole certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateMatch {
    /// A URI SAN, exactly: `spiffe://corp.example/gateway/envoy`.
    Uri(String),
    /// A DNS SAN, exactly: written `dns:envoy.corp.example`.
    Dns(String),
    /// The certificate's SHA-256 thumbprint: written `sha256:` and 64 hex digits, colons
    /// allowed (as `openssl x509 -fingerprint -sha256` prints it).
    Sha256([u8; 32]),
}

impl CertificateMatch {
    /// Parses `spiffe://…` (any `scheme://…`), `dns:NAME` or `sha256:HEX`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            let digits: String = hex.chars().filter(|c| *c != ':').collect();
            let mut out = [0u8; 32];
            if digits.len() != 64 || !digits.is_ascii() {
                return Err(format!("`{s}`: a SHA-256 thumbprint is 64 hex digits"));
            }
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("`{s}`: a SHA-256 thumbprint is 64 hex digits"))?;
            }
            return Ok(Self::Sha256(out));
        }
        if let Some(name) = s.strip_prefix("dns:") {
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("`{s}`: not a DNS name"));
            }
            return Ok(Self::Dns(name.to_ascii_lowercase()));
        }
        if s.contains("://") && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Ok(Self::Uri(s.to_owned()));
        }
        Err(format!(
            "`{s}` is none of `spiffe://…` (a URI), `dns:NAME` or `sha256:HEX`"
        ))
    }

    /// Whether `cert` is the one meant.
    pub fn matches(&self, cert: &PeerCertificate) -> bool {
        match self {
            Self::Uri(uri) => cert.uris.iter().any(|u| u == uri),
            Self::Dns(name) => cert.dns_names.iter().any(|d| d.eq_ignore_ascii_case(name)),
            Self::Sha256(sha) => {
                use subtle::ConstantTimeEq as _;
                bool::from(cert.sha256.ct_eq(sha))
            }
        }
    }
}

/// Certificates known by name: the gateways, or the admins.
#[derive(Debug, Clone, Default)]
pub struct KnownCertificates {
    entries: Vec<(String, CertificateMatch)>,
}

impl KnownCertificates {
    /// Entries written `NAME=MATCH`, or `MATCH` alone to be named by it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let (name, matcher) = match entry.split_once('=') {
                Some((name, m)) if !name.contains("://") && !name.contains(':') => (name, m),
                _ => (entry, entry),
            };
            if name.is_empty() {
                return Err(format!("`{entry}` has an empty name"));
            }
            parsed.push((name.to_owned(), CertificateMatch::parse(matcher)?));
        }
        Ok(Self { entries: parsed })
    }

    /// Whether none are configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an entry is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// The name of the first entry `cert` matches.
    pub fn identify(&self, cert: &PeerCertificate) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, m)| m.matches(cert))
            .map(|(name, _)| name.as_str())
    }
}

/// Which names of a certificate a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameSource {
    Uri,
    Dns,
}

/// One rule: a certificate name pattern with one `{id}`, and the identity it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRule {
    source: NameSource,
    prefix: String,
    suffix: String,
    kind: IdentityKind,
    id_prefix: String,
    id_suffix: String,
}

/// Longest workload id a rule yields, in bytes, as for every identity.
const MAX_ID_BYTES: usize = 256;

impl WorkloadRule {
    /// Parses `PATTERN=Type:TEMPLATE`: `spiffe://corp.example/agent/{id}=Agent:{id}`, or for a
    /// DNS name `dns:{id}.agents.corp.example=Agent:{id}`. Each side has exactly one `{id}`;
    /// the type is `User`, `Service` or `Agent`.
    pub fn parse(rule: &str) -> Result<Self, String> {
        let (pattern, target) = rule
            .rsplit_once('=')
            .ok_or_else(|| format!("`{rule}` is not `PATTERN=Type:{{id}}`"))?;
        let (source, pattern) = match pattern.strip_prefix("dns:") {
            Some(p) => (NameSource::Dns, p),
            None if pattern.contains("://") => (NameSource::Uri, pattern),
            None => {
                return Err(format!(
                    "`{pattern}` is neither a URI (`spiffe://…`) nor `dns:…`"
                ));
            }
        };
        let split = |s: &str| -> Result<(String, String), String> {
            let (before, after) = s
                .split_once("{id}")
                .ok_or_else(|| format!("`{s}` has no `{{id}}`"))?;
            if after.contains("{id}") {
                return Err(format!("`{s}` has more than one `{{id}}`"));
            }
            Ok((before.to_owned(), after.to_owned()))
        };
        let (prefix, suffix) = split(pattern)?;
        let (kind, template) = target
            .split_once(':')
            .ok_or_else(|| format!("`{target}` is not `Type:{{id}}`"))?;
        let kind = IdentityKind::parse(kind)
            .ok_or_else(|| format!("`{kind}` is not `User`, `Service` or `Agent`"))?;
        let (id_prefix, id_suffix) = split(template)?;
        Ok(Self {
            source,
            prefix,
            suffix,
            kind,
            id_prefix,
            id_suffix,
        })
    }

    /// The identity `name` stands for under this rule. The `{id}` part must be non-empty and
    /// a single segment: no `/` (a SPIFFE path cannot smuggle in a deeper one), no `.` in a
    /// DNS label, no control characters.
    fn apply(&self, name: &str) -> Option<Identity> {
        let id = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        let separator = match self.source {
            NameSource::Uri => '/',
            NameSource::Dns => '.',
        };
        if id.is_empty()
            || id.contains(separator)
            || id.contains(['?', '#', ':'])
            || id.chars().any(char::is_control)
        {
            return None;
        }
        let id = format!("{}{id}{}", self.id_prefix, self.id_suffix);
        (id.len() <= MAX_ID_BYTES).then(|| Identity::new(self.kind.clone(), id))
    }
}

/// The rules that make a client certificate a caller, in order; the first that applies wins.
#[derive(Debug, Clone, Default)]
pub struct WorkloadIdentities {
    rules: Vec<WorkloadRule>,
}

/// A certificate whose names stand for more than one identity: it proves none of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client certificate stands for both `{0}` and `{1}`")]
pub struct AmbiguousCertificate(pub String, pub String);

impl WorkloadIdentities {
    /// The rules `rules` spell (see [`WorkloadRule::parse`]).
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|r| WorkloadRule::parse(r.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether no rule is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The identity `cert` proves: none when no rule applies to any of its names.
    pub fn identity_of(
        &self,
        cert: &PeerCertificate,
    ) -> Result<Option<Identity>, AmbiguousCertificate> {
        let mut found: Option<Identity> = None;
        for rule in &self.rules {
            let names = match rule.source {
                NameSource::Uri => &cert.uris,
                NameSource::Dns => &cert.dns_names,
            };
            for name in names {
                let Some(identity) = rule.apply(name) else {
                    continue;
                };
                match &found {
                    Some(f) if *f != identity => {
                        return Err(AmbiguousCertificate(f.to_string(), identity.to_string()));
                    }
                    _ => found = Some(identity),
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(uris: &[&str], dns: &[&str]) -> PeerCertificate {
        PeerCertificate {
            sha256: [7; 32],
            uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn rules() -> WorkloadIdentities {
        WorkloadIdentities::parse(&[
            "spiffe://corp.example/agent/{id}=Agent:{id}",
            "spiffe://corp.example/svc/{id}=Service:{id}",
            "dns:{id}.agents.corp.example=Agent:{id}",
        ])
        .unwrap()
    }

    #[test]
    fn spiffe_ids_and_dns_names_map_to_identities() {
        let rules = rules();
        let agent = rules
            .identity_of(&cert(&["spiffe://corp.example/agent/data-analyst"], &[]))
            .unwrap();
        assert_eq!(
            agent,
            Some(Identity::new(IdentityKind::Agent, "data-analyst"))
        );
        let service = rules
            .identity_of(&cert(&["spiffe://corp.example/svc/nightly"], &[]))
            .unwrap();
        assert_eq!(
            service,
            Some(Identity::new(IdentityKind::Service, "nightly"))
        );
        let dns = rules
            .identity_of(&cert(&[], &["writer.agents.corp.example"]))
            .unwrap();
        assert_eq!(dns, Some(Identity::new(IdentityKind::Agent, "writer")));
    }

    #[test]
    fn names_outside_every_rule_prove_nothing() {
        let rules = rules();
        for c in [
            cert(&["spiffe://other.example/agent/a"], &[]),
            // A deeper path is not an id: `{id}` is one segment.
            cert(&["spiffe://corp.example/agent/a/b"], &[]),
            cert(&["spiffe://corp.example/agent/"], &[]),
            cert(&[], &["a.b.agents.corp.example"]),
            cert(&[], &[]),
        ] {
            assert_eq!(rules.identity_of(&c).unwrap(), None, "{c:?}");
        }
    }

    #[test]
    fn a_certificate_naming_two_identities_proves_none() {
        let c = cert(
            &["spiffe://corp.example/agent/a"],
            &["b.agents.corp.example"],
        );
        assert!(rules().identity_of(&c).is_err());
        // The same identity twice is no ambiguity.
        let c = cert(
            &["spiffe://corp.example/agent/a"],
            &["a.agents.corp.example"],
        );
        assert!(rules().identity_of(&c).unwrap().is_some());
    }

    #[test]
    fn malformed_rules_name_what_is_wrong() {
        for rule in [
            "spiffe://corp.example/agent/{id}",
            "spiffe://corp.example/agent=Agent:{id}",
            "spiffe://corp.example/{id}/{id}=Agent:{id}",
            "corp.example/{id}=Agent:{id}",
            "spiffe://corp.example/{id}=Tool:{id}",
            "spiffe://corp.example/{id}=Agent:fixed",
        ] {
            assert!(
                WorkloadIdentities::parse(&[rule]).is_err(),
                "accepted {rule}"
            );
        }
    }

    #[test]
    fn known_certificates_by_uri_dns_or_thumbprint() {
        let hex = "07".repeat(32);
        let known = KnownCertificates::parse(&[
            "edge=spiffe://corp.example/gateway/edge".to_owned(),
            "dns:envoy.corp.example".to_owned(),
            format!("pinned=sha256:{hex}"),
        ])
        .unwrap();
        assert_eq!(
            known.identify(&cert(&["spiffe://corp.example/gateway/edge"], &[])),
            Some("edge")
        );
        let other = PeerCertificate {
            sha256: [1; 32],
            ..cert(&[], &["Envoy.corp.example"])
        };
        assert_eq!(known.identify(&other), Some("dns:envoy.corp.example"));
        assert_eq!(known.identify(&cert(&[], &[])), Some("pinned"));
        let stranger = PeerCertificate {
            sha256: [1; 32],
            ..cert(&["spiffe://corp.example/agent/a"], &[])
        };
        assert_eq!(known.identify(&stranger), None);
        for bad in ["sha256:abc", "edge=nothing", "dns:", "plain"] {
            assert!(KnownCertificates::parse(&[bad]).is_err(), "accepted {bad}");
        }
    }
}
