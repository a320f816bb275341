//! `baton keygen`: a fresh Ed25519 signing key, and its public half as a JWKS for verifiers.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::token::{KeySet, SigningKey};

/// The arguments of `baton keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PEM PKCS#8). Refuses to overwrite.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the public key as a JWKS, for `--publish-key` or `--trusted-issuer`.
    #[arg(long)]
    pub jwks_out: Option<PathBuf>,
}

/// Writes the key files and returns the new key's id.
pub fn run(args: &KeygenArgs) -> anyhow::Result<String> {
    let key = SigningKey::generate();
    let pem = key.to_pkcs8_pem()?;
    write_new(&args.out, pem.as_bytes())?;
    if let Some(path) = &args.jwks_out {
        let jwks = KeySet::new(vec![key.public()]).to_jwks();
        write_new(path, serde_json::to_string_pretty(&jwks)?.as_bytes())?;
    }
    Ok(key.kid().to_owned())
}

fn write_new(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create `{}`", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write `{}`", path.display()))
}
