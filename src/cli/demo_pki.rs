//! `baton demo-pki`: a demo CA and the certificates the compose demo and the TLS benchmark
//! use: Baton's server certificate, Envoy's gateway certificate, an agent's and an admin's
//! client certificates, each with its SPIFFE ID. For demos and tests only: a deployment's
//! certificates come from its own CA (cert-manager, SPIRE).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::tls::pki::{CertificateAuthority, Subject};

/// The arguments of `baton demo-pki`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoPkiArgs {
    /// The directory to write into; created if missing. Nothing is written when it already
    /// holds `ca.pem`, so a compose init step can run on every start.
    #[arg(long)]
    pub out: PathBuf,
    /// The SPIFFE trust domain of the workload certificates.
    #[arg(long, default_value = "corp.example")]
    pub trust_domain: String,
    /// More DNS names for Baton's server certificate, beside `localhost` and 127.0.0.1 (the
    /// compose service names, say).
    #[arg(long = "server-name", value_delimiter = ',')]
    pub server_names: Vec<String>,
    /// How long the certificates are valid, in days.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
}

/// What was written, one line per file, for the operator to read.
pub fn run(args: &DemoPkiArgs) -> anyhow::Result<String> {
    let out = &args.out;
    if out.join("ca.pem").exists() {
        return Ok(format!(
            "{} already holds a demo CA; nothing written",
            out.display()
        ));
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
    let validity = Duration::from_secs(args.days * 24 * 3600);
    let ca = CertificateAuthority::generate("Baton demo CA", validity)?;
    let td = &args.trust_domain;
    let mut server = Subject::localhost();
    server.common_name = "baton".to_owned();
    server.dns.extend(args.server_names.iter().cloned());
    let issued = [
        ("server", server),
        (
            "gateway",
            Subject::spiffe(&format!("spiffe://{td}/gateway/envoy")),
        ),
        (
            "agent-user-assistant",
            Subject::spiffe(&format!("spiffe://{td}/agent/user-assistant")),
        ),
        (
            "admin",
            Subject::spiffe(&format!("spiffe://{td}/admin/ops")),
        ),
    ];
    let mut written = vec![write(out, "ca.pem", &ca.cert_pem, false)?];
    for (name, subject) in issued {
        let cert = ca.issue(&subject)?;
        written.push(write(out, &format!("{name}.pem"), &cert.cert_pem, false)?);
        written.push(write(out, &format!("{name}.key"), &cert.key_pem, true)?);
    }
    Ok(written.join("\n"))
}

/// Writes `name` in `dir`, a key readable by its owner alone.
fn write(dir: &Path, name: &str, contents: &str, secret: bool) -> anyhow::Result<String> {
    use std::io::Write as _;
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Keys stay private; certificates are public, and other containers read them.
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path.display().to_string())
}
