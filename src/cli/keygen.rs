//! `baton keygen`: a fresh signing key (Ed25519 by default, RSA or P-256 on request), and its
//! public half as a JWKS for verifiers.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::token::keys::{RSA_DEFAULT_BITS, RSA_MAX_SIGNING_BITS, RSA_MIN_BITS};
use crate::token::{Algorithm, KeySet, SigningKey};

/// The algorithm the new key signs with, which decides its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519 (`EdDSA`): small keys and signatures, deterministic, the fastest to sign.
    #[default]
    Ed25519,
    /// RSA PKCS#1 v1.5 with SHA-256 (`RS256`), the algorithm every RFC 9068 resource server
    /// supports.
    Rs256,
    /// ECDSA on P-256 with SHA-256 (`ES256`).
    Es256,
}

impl From<KeyAlgorithm> for Algorithm {
    fn from(alg: KeyAlgorithm) -> Self {
        match alg {
            KeyAlgorithm::Ed25519 => Algorithm::EdDsa,
            KeyAlgorithm::Rs256 => Algorithm::Rs256,
            KeyAlgorithm::Es256 => Algorithm::Es256,
        }
    }
}

/// The arguments of `baton keygen`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PEM PKCS#8, which OpenSSL 3 and Python `cryptography`
    /// read). Refuses to overwrite.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to write the public key as a JWKS, for `--publish-key` or `--trusted-issuer`.
    #[arg(long)]
    pub jwks_out: Option<PathBuf>,
    /// The algorithm the key signs with; tokens it signs carry it as their `alg`.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::Ed25519)]
    pub alg: KeyAlgorithm,
    /// The size of an RSA key's modulus, with `--alg rs256`: 2048 to 4096.
    #[arg(long, value_name = "BITS", value_parser = clap::value_parser!(u16).range(RSA_MIN_BITS as i64..=RSA_MAX_SIGNING_BITS as i64))]
    pub bits: Option<u16>,
}

/// Writes the key files and returns the new key's id.
pub fn run(args: &KeygenArgs) -> anyhow::Result<String> {
    let key = match (args.alg, args.bits) {
        (KeyAlgorithm::Rs256, bits) => {
            SigningKey::generate_rs256(bits.map_or(RSA_DEFAULT_BITS, usize::from))?
        }
        (alg, None) => SigningKey::generate_for(alg.into())?,
        (_, Some(_)) => anyhow::bail!("--bits sizes RSA keys; it needs --alg rs256"),
    };
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
