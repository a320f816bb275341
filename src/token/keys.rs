//! Signing keys and the public keys that verify them: the key Baton signs verdicts with, the
//! public keys it trusts, and the set it publishes while keys rotate.
//!
//! Three kinds of key, each signing with exactly one JWS algorithm: Ed25519 (`EdDSA`,
//! RFC 8037), RSA of 2048 bits or more (`RS256`, RFC 7518 §3.3) and P-256 (`ES256`, RFC 7518
//! §3.4). Keys are read from PEM (PKCS#8 private, SPKI public) or from JWK (`OKP`/`Ed25519`,
//! `RSA`, `EC`/`P-256`). A key's `kid` is its RFC 7638 JWK thumbprint unless a JWK names one.
//!
//! ed25519-dalek reads, writes and verifies Ed25519 keys and signatures (strictly); aws-lc-rs
//! signs with them, in about half dalek's time (its table-driven base-point multiplication;
//! measured in `benches/decide.rs`, group `verdict`), and signing is most of what a cached
//! answer costs. Ed25519 is deterministic: both give the same signature, bit for bit. ring signs
//! and verifies RS256 and ES256, in constant time. ring cannot generate RSA keys: the RustCrypto `rsa` crate does
//! that, and nothing else (see [`SigningKey::generate_rs256`]).

mod pkcs;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3: 2048 or larger).
pub const RSA_MIN_BITS: usize = 2048;
/// The largest RSA modulus of a key that signs, in bits: the most ring signs with.
pub const RSA_MAX_SIGNING_BITS: usize = 4096;
/// The largest RSA modulus of a key that verifies, in bits: the most ring verifies with.
pub const RSA_MAX_VERIFYING_BITS: usize = 8192;
/// The modulus `baton keygen --alg rs256` gives a key unless told otherwise.
pub const RSA_DEFAULT_BITS: usize = 2048;

/// A JWS signing algorithm. Each kind of key signs with exactly one, so a token's `alg` has to
/// be its key's: the token never chooses how it is verified (RFC 8725 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037 §3.1), named `EdDSA` or, fully specified, `Ed25519` (RFC 9864).
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), with a modulus of 2048 bits or more.
    Rs256,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), the signature as `R || S`.
    Es256,
}

impl Algorithm {
    /// The name Baton writes in a JWS header and in a JWK's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// The algorithm a JWS `alg` or a JWK `alg` names, if Baton knows it. Names are
    /// case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "EdDSA" | "Ed25519" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why key material could not be read, parsed, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file cannot be read.
    #[error("cannot read key file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A problem with the contents of a key file; `problem` is not a `source` so that the file
    /// and the problem print together.
    #[error("key file `{}`: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        problem: Box<KeyError>,
    },
    /// The text is neither PEM nor a JSON object.
    #[error("expected a PEM key or a JWK JSON object")]
    UnknownFormat,
    /// The PEM does not parse as a key of a supported kind, or holds one too weak to use (a
    /// small-order Ed25519 point, an RSA modulus under 2048 bits).
    #[error("invalid PEM key: {0}")]
    Pem(String),
    /// The JWK is not JSON, not a signing key of a supported kind, or its members do not decode
    /// or do not agree.
    #[error("invalid JWK: {0}")]
    Jwk(String),
    /// The JWKS is not JSON, has no `keys` array, or holds a signing key of a supported kind
    /// that does not parse.
    #[error("invalid JWKS: {0}")]
    Jwks(String),
    /// The JWKS parses but holds no signing key of a supported kind.
    #[error("the JWKS holds no usable signing key (Ed25519, RSA or P-256)")]
    NoUsableKey,
    /// A private key was given where only a public one belongs, such as a published key.
    #[error("expected a public key but found a private key; publish only the public part")]
    PrivateKeyWherePublicExpected,
    /// The key could not be written out as PEM.
    #[error("cannot encode the key: {0}")]
    Encode(String),
    /// A new key could not be made.
    #[error("cannot generate the key: {0}")]
    Generate(String),
    /// The signature could not be made; ring does not say why beyond its random number
    /// generator or the key having failed.
    #[error("cannot sign with key `{kid}`")]
    Sign {
        /// The key's id.
        kid: String,
    },
}

impl KeyError {
    fn in_file(self, path: &Path) -> Self {
        Self::File {
            path: path.to_owned(),
            problem: Box::new(self),
        }
    }
}

/// The private key Baton (or a minter) signs with, its public half and its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    signer: Signer,
    /// The key as PKCS#8 v1 DER, for writing it out.
    pkcs8: Arc<Zeroizing<Vec<u8>>>,
    public: PublicKey,
}

/// What signs. ring's and aws-lc's key pairs cannot be cloned, and need not be: they are shared.
#[derive(Clone)]
enum Signer {
    Ed25519(Arc<Ed25519Signer>),
    Rs256(Arc<ring::rsa::KeyPair>),
    Es256(Arc<EcdsaKeyPair>),
}

/// An Ed25519 key, as dalek holds it and as aws-lc signs with it.
struct Ed25519Signer {
    dalek: ed25519_dalek::SigningKey,
    /// `None` only if aws-lc refused a key dalek accepted, which no valid key does; dalek
    /// then signs, with the same result, slower.
    fast: Option<aws_lc_rs::signature::Ed25519KeyPair>,
}

impl Ed25519Signer {
    fn new(dalek: ed25519_dalek::SigningKey) -> Self {
        let fast = aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(
            dalek.as_bytes(),
            dalek.verifying_key().as_bytes(),
        )
        .ok();
        Self { dalek, fast }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match &self.fast {
            Some(pair) => pair.sign(msg).as_ref().to_vec(),
            None => {
                use ed25519_dalek::Signer as _;
                self.dalek.sign(msg).to_bytes().to_vec()
            }
        }
    }
}

/// Prints the `kid` and the algorithm only: key material must never reach a log.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .field("alg", &self.algorithm().name())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh Ed25519 key from the operating system's random number generator.
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A fresh key of the kind that signs with `alg`; an RSA key has [`RSA_DEFAULT_BITS`].
    pub fn generate_for(alg: Algorithm) -> Result<Self, KeyError> {
        match alg {
            Algorithm::EdDsa => Ok(Self::generate()),
            Algorithm::Rs256 => Self::generate_rs256(RSA_DEFAULT_BITS),
            Algorithm::Es256 => Self::generate_es256(),
        }
    }

    /// A fresh RSA key of `bits` (2048 to 4096), which signs RS256.
    ///
    /// ring, which signs with the key in constant time, cannot generate RSA keys, so the
    /// RustCrypto `rsa` crate generates it and hands it over as PKCS#8. `rsa` 0.9 does nothing
    /// else here: its private-key operations are not constant time (the Marvin attack,
    /// RUSTSEC-2023-0071), which matters for a key that signs what an attacker asks and times,
    /// not for a one-off generation.
    pub fn generate_rs256(bits: usize) -> Result<Self, KeyError> {
        use pkcs8::EncodePrivateKey as _;
        if !(RSA_MIN_BITS..=RSA_MAX_SIGNING_BITS).contains(&bits) {
            return Err(KeyError::Generate(format!(
                "an RSA key of {bits} bits; signing keys have {RSA_MIN_BITS} to {RSA_MAX_SIGNING_BITS}"
            )));
        }
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_pkcs8_der(der.as_bytes()).map_err(KeyError::Generate)
    }

    /// A fresh P-256 key, which signs ES256.
    pub fn generate_es256() -> Result<Self, KeyError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Generate("the random number generator failed".to_owned()))?;
        Self::from_pkcs8_der(document.as_ref()).map_err(KeyError::Generate)
    }

    fn from_dalek(inner: ed25519_dalek::SigningKey) -> Self {
        let public = PublicKey::new(Material::Ed25519(inner.verifying_key()), None);
        Self {
            pkcs8: Arc::new(pkcs::ed25519_pkcs8(inner.as_bytes())),
            signer: Signer::Ed25519(Arc::new(Ed25519Signer::new(inner))),
            public,
        }
    }

    /// Reads a PEM PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`) or a private JWK.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        let trimmed = text.trim_start();
        let parsed = if trimmed.starts_with('{') {
            Self::from_jwk(trimmed)
        } else if trimmed.starts_with("-----BEGIN") {
            Self::from_pem(trimmed)
        } else {
            Err(KeyError::UnknownFormat)
        };
        parsed.map_err(|e| e.in_file(path))
    }

    /// Parses a PEM PKCS#8 private key: Ed25519 (v1, or v2 with the public key, which must
    /// match), RSA of 2048 to 4096 bits, or P-256 with its public key (as OpenSSL writes it).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pkcs::pem_decode(pem).map_err(KeyError::Pem)?;
        if label != "PRIVATE KEY" {
            return Err(KeyError::Pem(format!(
                "expected `PRIVATE KEY` (PKCS#8), found `{label}`; convert it with \
                 `openssl pkcs8 -topk8 -nocrypt`"
            )));
        }
        Self::from_pkcs8_der(&der).map_err(KeyError::Pem)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, String> {
        match pkcs::private_key(der)? {
            pkcs::Private::Ed25519 => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(Self::from_dalek)
                .map_err(|e| e.to_string()),
            pkcs::Private::Rsa { modulus } => {
                rsa_modulus_bits(modulus, RSA_MAX_SIGNING_BITS)?;
                let pair = ring::rsa::KeyPair::from_pkcs8(der)
                    .map_err(|e| format!("the RSA key is refused: {e}"))?;
                let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                let public = PublicKey::new(rsa_material(&components.n, &components.e)?, None);
                Ok(Self {
                    signer: Signer::Rs256(Arc::new(pair)),
                    pkcs8: Arc::new(Zeroizing::new(der.to_vec())),
                    public,
                })
            }
            pkcs::Private::P256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|e| format!("the P-256 key is refused: {e}"))?;
                let public = PublicKey::new(p256_material(pair.public_key().as_ref())?, None);
                // Written out again as OpenSSL writes it, whatever optional parts it came with.
                Ok(Self {
                    signer: Signer::Es256(Arc::new(pair)),
                    pkcs8: Arc::new(Zeroizing::new(der.to_vec())),
                    public,
                })
            }
        }
    }

    /// Parses a private JWK: `OKP`/`Ed25519` with `x` and `d` (RFC 8037 §2), `RSA` with every
    /// member of RFC 7518 §6.3.2 but `oth`, or `EC`/`P-256` with `x`, `y` and `d` (RFC 7518
    /// §6.2.2). The public members must be those of the private ones; a `kid` member, if any,
    /// is kept as the key's `kid`.
    pub fn from_jwk(jwk: &str) -> Result<Self, KeyError> {
        let value: Value =
            serde_json::from_str(jwk).map_err(|e| KeyError::Jwk(format!("not JSON: {e}")))?;
        let (object, kind) = jwk_object(&value)?;
        check_alg(object, kind)?;
        let mut key = match kind {
            Algorithm::EdDsa => {
                let d = fixed_member(object, "d")?
                    .ok_or_else(|| KeyError::Jwk("no private key member `d`".to_owned()))?;
                let inner = ed25519_dalek::SigningKey::from_bytes(&d);
                let x: [u8; 32] = required_fixed(object, "x")?;
                if inner.verifying_key().as_bytes() != &x {
                    return Err(KeyError::Jwk("`x` is not the public key of `d`".to_owned()));
                }
                Self::from_dalek(inner)
            }
            Algorithm::Rs256 => {
                if object.contains_key("oth") {
                    return Err(KeyError::Jwk(
                        "RSA keys with more than two primes (`oth`) are not supported".to_owned(),
                    ));
                }
                let member =
                    |name: &str| {
                        member_bytes(object, name)?.map(Zeroizing::new).ok_or_else(|| {
                        KeyError::Jwk(format!(
                            "no member `{name}`; an RSA private key needs `n`, `e`, `d`, `p`, \
                             `q`, `dp`, `dq` and `qi`"
                        ))
                    })
                    };
                let (n, e, d) = (member("n")?, member("e")?, member("d")?);
                let (p, q) = (member("p")?, member("q")?);
                let (dp, dq, qi) = (member("dp")?, member("dq")?, member("qi")?);
                rsa_modulus_bits(strip_zeros(&n), RSA_MAX_SIGNING_BITS).map_err(KeyError::Jwk)?;
                let der = pkcs::rsa_pkcs8(&pkcs::RsaPrivateParts {
                    n: &n,
                    e: &e,
                    d: &d,
                    p: &p,
                    q: &q,
                    dp: &dp,
                    dq: &dq,
                    qi: &qi,
                })
                .map_err(KeyError::Jwk)?;
                Self::from_pkcs8_der(&der).map_err(|e| {
                    KeyError::Jwk(format!("its members do not make an RSA key pair: {e}"))
                })?
            }
            Algorithm::Es256 => {
                let d = Zeroizing::new(
                    fixed_member(object, "d")?
                        .ok_or_else(|| KeyError::Jwk("no private key member `d`".to_owned()))?,
                );
                let x: [u8; 32] = required_fixed(object, "x")?;
                let y: [u8; 32] = required_fixed(object, "y")?;
                let der = pkcs::p256_pkcs8(&d, &x, &y);
                Self::from_pkcs8_der(&der).map_err(|_| {
                    KeyError::Jwk("`x` and `y` are not the public key of `d`".to_owned())
                })?
            }
        };
        if let Some(kid) = member_kid(object)? {
            key.public.kid = kid;
        }
        Ok(key)
    }

    /// The key's identifier, put in the `kid` header of every token it signs.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The algorithm the key signs with, put in the `alg` header of every token it signs.
    pub fn algorithm(&self) -> Algorithm {
        match self.signer {
            Signer::Ed25519(_) => Algorithm::EdDsa,
            Signer::Rs256(_) => Algorithm::Rs256,
            Signer::Es256(_) => Algorithm::Es256,
        }
    }

    /// The public half, with the same `kid`.
    pub fn public(&self) -> PublicKey {
        self.public.clone()
    }

    /// A signature of `msg` with the key's algorithm: Ed25519 (RFC 8032, deterministic), RSA
    /// PKCS#1 v1.5 with SHA-256 (as long as the modulus), or ECDSA P-256 with SHA-256 (64 bytes,
    /// `R || S`, RFC 7518 §3.4).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = || KeyError::Sign {
            kid: self.public.kid.clone(),
        };
        match &self.signer {
            Signer::Ed25519(key) => Ok(key.sign(msg)),
            Signer::Rs256(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut signature)
                    .map_err(|_| failed())?;
                Ok(signature)
            }
            Signer::Es256(pair) => pair
                .sign(&SystemRandom::new(), msg)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| failed()),
        }
    }

    /// The key as PEM PKCS#8 v1, as OpenSSL 3 and Python's `cryptography` write and read it.
    /// An Ed25519 key is the private key alone (RFC 8410 §7): the v2 form with the public key
    /// beside it, which `from_pem` also reads, is refused by both.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        pkcs::pem_encode("PRIVATE KEY", &self.pkcs8).map_err(KeyError::Encode)
    }
}

/// A public key that verifies signatures, and its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: Material,
    kid: String,
}

/// The public key itself, checked when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Not a small-order point.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// Big-endian without leading zeros: a modulus of 2048 to 8192 bits, an odd exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The coordinates of a point on P-256, not the point at infinity.
    P256 { x: [u8; 32], y: [u8; 32] },
}

impl PublicKey {
    fn new(material: Material, kid: Option<String>) -> Self {
        let kid = kid.unwrap_or_else(|| thumbprint(&material));
        Self { material, kid }
    }

    /// Parses a PEM SPKI public key (`-----BEGIN PUBLIC KEY-----`) of Ed25519, RSA (2048 to
    /// 8192 bits) or P-256 (an uncompressed point).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pkcs::pem_decode(pem).map_err(KeyError::Pem)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::Pem(format!(
                "expected `PUBLIC KEY` (SPKI), found `{label}`"
            )));
        }
        let material = match pkcs::public_key(&der).map_err(KeyError::Pem)? {
            pkcs::Public::Ed25519(x) => ed25519_material(x),
            pkcs::Public::Rsa { n, e } => rsa_material(n, e),
            pkcs::Public::P256(point) => p256_material(point),
        }
        .map_err(KeyError::Pem)?;
        Ok(Self::new(material, None))
    }

    /// Parses a public JWK: `{"kty":"OKP","crv":"Ed25519","x":..}`, `{"kty":"RSA","n":..,
    /// "e":..}` or `{"kty":"EC","crv":"P-256","x":..,"y":..}`. A `kid` member is kept as the
    /// key's `kid` (tokens of other issuers name their keys that way); without one the `kid` is
    /// the thumbprint. A JWK that says it is not for signatures (`use`) or for another algorithm
    /// (`alg`), or that carries the private key `d`, is refused.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let (object, kind) = jwk_object(jwk)?;
        if object.contains_key("d") {
            return Err(KeyError::PrivateKeyWherePublicExpected);
        }
        if let Some(usage) = object.get("use")
            && usage.as_str() != Some("sig")
        {
            return Err(KeyError::Jwk(format!("`use` is {usage}, not \"sig\"")));
        }
        check_alg(object, kind)?;
        let material = match kind {
            Algorithm::EdDsa => {
                let x: [u8; 32] = required_fixed(object, "x")?;
                ed25519_material(&x)
            }
            Algorithm::Rs256 => {
                let required = |name: &str| {
                    member_bytes(object, name)?
                        .ok_or_else(|| KeyError::Jwk(format!("no member `{name}`")))
                };
                rsa_material(&required("n")?, &required("e")?)
            }
            Algorithm::Es256 => {
                let x: [u8; 32] = required_fixed(object, "x")?;
                let y: [u8; 32] = required_fixed(object, "y")?;
                let mut point = [0x04; 65];
                point[1..33].copy_from_slice(&x);
                point[33..].copy_from_slice(&y);
                p256_material(&point)
            }
        }
        .map_err(KeyError::Jwk)?;
        Ok(Self::new(material, member_kid(object)?))
    }

    /// The key's id: its RFC 7638 thumbprint unless a JWK named one.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm whose signatures this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            Material::Ed25519(_) => Algorithm::EdDsa,
            Material::Rsa { .. } => Algorithm::Rs256,
            Material::P256 { .. } => Algorithm::Es256,
        }
    }

    /// The key as a JWK, as a JWKS endpoint publishes it: its members, `kid`, `alg` and `use`.
    pub fn to_jwk(&self) -> Value {
        let mut jwk = match &self.material {
            Material::Ed25519(key) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.as_bytes()),
            }),
            Material::Rsa { n, e } => json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(n),
                "e": URL_SAFE_NO_PAD.encode(e),
            }),
            Material::P256 { x, y } => json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(x),
                "y": URL_SAFE_NO_PAD.encode(y),
            }),
        };
        if let Some(members) = jwk.as_object_mut() {
            members.insert("kid".to_owned(), json!(self.kid));
            members.insert("alg".to_owned(), json!(self.algorithm().name()));
            members.insert("use".to_owned(), json!("sig"));
        }
        jwk
    }

    /// The key as PEM SPKI, as `from_pem` reads it.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let point;
        let public = match &self.material {
            Material::Ed25519(key) => pkcs::Public::Ed25519(key.as_bytes()),
            Material::Rsa { n, e } => pkcs::Public::Rsa { n, e },
            Material::P256 { x, y } => {
                point = uncompressed(x, y);
                pkcs::Public::P256(&point)
            }
        };
        let der = pkcs::spki_der(&public).map_err(KeyError::Encode)?;
        pkcs::pem_encode("PUBLIC KEY", &der).map_err(KeyError::Encode)
    }

    /// Whether `sig` is a valid signature of `msg` by this key, with its one algorithm.
    /// Ed25519 is verified under RFC 8032's strict rules (canonical `S`, no small-order `R` or
    /// key), so a signature cannot be altered into another valid one; RS256 signatures are
    /// deterministic. ES256 signatures are not unique (`S` and `n - S` both verify, as for
    /// every ECDSA verifier), so nothing may take a token's bytes for its identity.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Ed25519(key) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|sig| key.verify_strict(msg, &sig).is_ok()),
            Material::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            Material::P256 { x, y } => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, uncompressed(x, y))
                    .verify(msg, sig)
                    .is_ok()
            }
        }
    }
}

fn ed25519_material(x: &[u8]) -> Result<Material, String> {
    let x: &[u8; 32] = x
        .try_into()
        .map_err(|_| format!("an Ed25519 public key is 32 bytes, not {}", x.len()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(x)
        .map_err(|_| "the Ed25519 public key is not a curve point".to_owned())?;
    // A small-order key verifies forged signatures under non-strict rules and never under
    // strict ones: either way it is a mistake worth naming when the key is loaded.
    if key.is_weak() {
        return Err("the public key is a weak (small-order) point".to_owned());
    }
    Ok(Material::Ed25519(key))
}

/// An RSA public key, refused unless ring verifies with it: a modulus of [`RSA_MIN_BITS`] to
/// [`RSA_MAX_VERIFYING_BITS`], an odd exponent from 3 to 2^33 - 1.
fn rsa_material(n: &[u8], e: &[u8]) -> Result<Material, String> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    rsa_modulus_bits(n, RSA_MAX_VERIFYING_BITS)?;
    if n.last().is_none_or(|low| low % 2 == 0) {
        return Err("the RSA modulus is even".to_owned());
    }
    let exponent = (e.len() <= 5)
        .then(|| {
            e.iter()
                .fold(0u64, |value, byte| value << 8 | u64::from(*byte))
        })
        .filter(|e| (3..1 << 33).contains(e) && e % 2 == 1);
    if exponent.is_none() {
        return Err("the RSA public exponent is not an odd number from 3 to 2^33 - 1".to_owned());
    }
    Ok(Material::Rsa {
        n: n.to_vec(),
        e: e.to_vec(),
    })
}

/// The size of an RSA modulus, refused below [`RSA_MIN_BITS`] or above `max_bits`.
fn rsa_modulus_bits(n: &[u8], max_bits: usize) -> Result<usize, String> {
    let n = strip_zeros(n);
    let bits = n.first().map_or(0, |high| {
        (n.len() - 1) * 8 + (8 - high.leading_zeros() as usize)
    });
    if bits < RSA_MIN_BITS {
        return Err(format!(
            "the RSA modulus has {bits} bits; at least {RSA_MIN_BITS} are required"
        ));
    }
    if bits > max_bits {
        return Err(format!(
            "the RSA modulus has {bits} bits; at most {max_bits} are supported"
        ));
    }
    Ok(bits)
}

/// A P-256 public key from its SEC 1 encoding, refused unless it is an uncompressed point on
/// the curve.
fn p256_material(point: &[u8]) -> Result<Material, String> {
    let coordinates = match point.split_first() {
        Some((0x04, coordinates)) if coordinates.len() == 64 => coordinates,
        Some((0x02 | 0x03, _)) => {
            return Err("compressed P-256 points are not supported".to_owned());
        }
        _ => return Err("not an uncompressed P-256 point of 65 bytes".to_owned()),
    };
    // ring checks a point only when it verifies with it, where a bad point is one more
    // signature that fails. ECDH on the same curve checks it now: it refuses a point off the
    // curve or at infinity, and nothing else about an ephemeral agreement can fail.
    let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, point);
    let ephemeral = ring::agreement::EphemeralPrivateKey::generate(
        &ring::agreement::ECDH_P256,
        &SystemRandom::new(),
    )
    .map_err(|_| "the random number generator failed".to_owned())?;
    ring::agreement::agree_ephemeral(ephemeral, &peer, |_| ())
        .map_err(|_| "the point is not on the P-256 curve".to_owned())?;
    let (x, y) = coordinates.split_at(32);
    Ok(Material::P256 {
        x: x.try_into()
            .map_err(|_| "a P-256 coordinate is 32 bytes".to_owned())?,
        y: y.try_into()
            .map_err(|_| "a P-256 coordinate is 32 bytes".to_owned())?,
    })
}

fn uncompressed(x: &[u8; 32], y: &[u8; 32]) -> [u8; 65] {
    let mut point = [0x04; 65];
    point[1..33].copy_from_slice(x);
    point[33..].copy_from_slice(y);
    point
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The RFC 7638 JWK thumbprint: base64url(SHA-256) of the required members in lexicographic
/// order without whitespace: `crv`, `kty`, `x` for `OKP` (RFC 8037 §2); `e`, `kty`, `n` for
/// `RSA`; `crv`, `kty`, `x`, `y` for `EC` (RFC 7638 §3.2).
fn thumbprint(material: &Material) -> String {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let canonical = match material {
        Material::Ed25519(key) => {
            format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                b64(key.as_bytes())
            )
        }
        Material::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n)),
        Material::P256 { x, y } => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            b64(x),
            b64(y)
        ),
    };
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// Public keys by `kid`: the keys of one issuer, old and new while they rotate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    // A handful of keys at most: a scan beats a map, and keeps the published order.
    keys: Vec<PublicKey>,
}

impl KeySet {
    /// A set of `keys`; of several with the same `kid`, the first is kept.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        let mut set = Self { keys: Vec::new() };
        for key in keys {
            set.insert(key);
        }
        set
    }

    fn insert(&mut self, key: PublicKey) {
        if self.get(key.kid()).is_none() {
            self.keys.push(key);
        }
    }

    /// The key with this `kid`, if the set has one.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }

    /// Every key, in the order given; the order a JWKS publishes them in.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses a JWKS `{"keys":[...]}` (RFC 7517 §5). Keys of other types or curves, and keys
    /// meant for encryption or for another algorithm, are skipped; a signing key of a supported
    /// kind that does not parse (an RSA modulus under 2048 bits, say) is an error.
    pub fn from_jwks_json(jwks: &str) -> Result<Self, KeyError> {
        let value: Value =
            serde_json::from_str(jwks).map_err(|e| KeyError::Jwks(format!("not JSON: {e}")))?;
        Self::from_jwks_value(&value)
    }

    fn from_jwks_value(value: &Value) -> Result<Self, KeyError> {
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::Jwks("no `keys` array".to_owned()))?;
        let mut set = Self::default();
        for (i, jwk) in keys.iter().enumerate() {
            if is_signing_jwk(jwk) {
                let key = PublicKey::from_jwk(jwk)
                    .map_err(|e| KeyError::Jwks(format!("key {i}: {e}")))?;
                set.insert(key);
            }
        }
        if set.is_empty() {
            return Err(KeyError::NoUsableKey);
        }
        Ok(set)
    }

    /// Reads a JWKS file, a single public JWK, or a PEM SPKI public key.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        Self::from_text(&text).map_err(|e| e.in_file(path))
    }

    fn from_text(text: &str) -> Result<Self, KeyError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with('{') {
            let value: Value = serde_json::from_str(trimmed)
                .map_err(|e| KeyError::Jwks(format!("not JSON: {e}")))?;
            if value.get("keys").is_some() {
                Self::from_jwks_value(&value)
            } else {
                Ok(Self::new(vec![PublicKey::from_jwk(&value)?]))
            }
        } else if let Some(rest) = trimmed.strip_prefix("-----BEGIN ") {
            // `PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`.
            let label = rest.split("-----").next().unwrap_or_default();
            if label.ends_with("PRIVATE KEY") {
                Err(KeyError::PrivateKeyWherePublicExpected)
            } else {
                Ok(Self::new(vec![PublicKey::from_pem(trimmed)?]))
            }
        } else {
            Err(KeyError::UnknownFormat)
        }
    }

    /// The set as a JWKS document.
    pub fn to_jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(PublicKey::to_jwk).collect::<Vec<_>>() })
    }

    /// The keys of both sets; where a `kid` is in both, this set's key is kept.
    pub fn merged(&self, other: &KeySet) -> KeySet {
        let mut set = self.clone();
        for key in &other.keys {
            set.insert(key.clone());
        }
        set
    }
}

/// The key Baton signs with and the keys it publishes. Rotation: a new key signs while the old
/// one stays published until every token it signed has expired. The keys need not be of one
/// kind: each token's `alg` follows the key that signed it.
#[derive(Debug, Clone)]
pub struct Keyring {
    signer: SigningKey,
    published: KeySet,
}

impl Keyring {
    /// Publishes the signer's public key first, then `extra_published` (of the same `kid`, the
    /// first is kept).
    pub fn new(signer: SigningKey, extra_published: Vec<PublicKey>) -> Self {
        let mut keys = Vec::with_capacity(extra_published.len() + 1);
        keys.push(signer.public());
        keys.extend(extra_published);
        Self {
            published: KeySet::new(keys),
            signer,
        }
    }

    /// The key that signs verdicts.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Every public key published, the signer's first: what verdicts are verified against.
    pub fn published(&self) -> &KeySet {
        &self.published
    }
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The kind of key a JWK is, by its `kty` and `crv`, if it is one this module reads.
fn jwk_kind(object: &Map<String, Value>) -> Option<Algorithm> {
    let member = |name: &str| object.get(name).and_then(Value::as_str);
    match (member("kty")?, member("crv")) {
        ("OKP", Some("Ed25519")) => Some(Algorithm::EdDsa),
        ("RSA", _) => Some(Algorithm::Rs256),
        ("EC", Some("P-256")) => Some(Algorithm::Es256),
        _ => None,
    }
}

/// Whether a JWKS entry is one this module uses: a key of a supported kind, not marked for
/// encryption or for another algorithm.
fn is_signing_jwk(jwk: &Value) -> bool {
    let Some(object) = jwk.as_object() else {
        return false;
    };
    jwk_kind(object).is_some_and(|kind| {
        jwk.get("use").is_none_or(|u| u.as_str() == Some("sig"))
            && jwk
                .get("alg")
                .is_none_or(|a| a.as_str().and_then(Algorithm::from_name) == Some(kind))
    })
}

/// The members of a JWK and the algorithm its kind of key signs with; a JWK of a kind this
/// module does not read is refused, naming the member at fault.
fn jwk_object(jwk: &Value) -> Result<(&Map<String, Value>, Algorithm), KeyError> {
    let object = jwk
        .as_object()
        .ok_or_else(|| KeyError::Jwk("not a JSON object".to_owned()))?;
    if let Some(kind) = jwk_kind(object) {
        return Ok((object, kind));
    }
    let expected_crv = match object.get("kty").and_then(Value::as_str) {
        Some("OKP") => "\"Ed25519\"",
        Some("EC") => "\"P-256\"",
        _ => {
            return Err(KeyError::Jwk(format!(
                "`kty` is {}, not \"OKP\", \"RSA\" or \"EC\"",
                describe(object.get("kty"))
            )));
        }
    };
    Err(KeyError::Jwk(format!(
        "`crv` is {}, not {expected_crv}",
        describe(object.get("crv"))
    )))
}

/// Refuses a JWK whose `alg` is not the one its kind of key signs with.
fn check_alg(object: &Map<String, Value>, kind: Algorithm) -> Result<(), KeyError> {
    match object.get("alg") {
        Some(alg) if alg.as_str().and_then(Algorithm::from_name) != Some(kind) => Err(
            KeyError::Jwk(format!("`alg` is {alg}, not \"{}\"", kind.name())),
        ),
        _ => Ok(()),
    }
}

fn describe(member: Option<&Value>) -> String {
    member.map_or_else(|| "missing".to_owned(), Value::to_string)
}

/// A base64url member, if present.
fn member_bytes(object: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, KeyError> {
    let Some(value) = object.get(name) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| KeyError::Jwk(format!("`{name}` is not a string")))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map(Some)
        .map_err(|_| KeyError::Jwk(format!("`{name}` is not base64url without padding")))
}

/// A 32-byte base64url member (an Ed25519 `x` or `d`, a P-256 `x`, `y` or `d`), if present.
fn fixed_member(object: &Map<String, Value>, name: &str) -> Result<Option<[u8; 32]>, KeyError> {
    let Some(bytes) = member_bytes(object, name)?.map(Zeroizing::new) else {
        return Ok(None);
    };
    let fixed: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Jwk(format!("`{name}` is {} bytes, not 32", bytes.len())))?;
    Ok(Some(fixed))
}

fn required_fixed(object: &Map<String, Value>, name: &str) -> Result<[u8; 32], KeyError> {
    fixed_member(object, name)?.ok_or_else(|| KeyError::Jwk(format!("no member `{name}`")))
}

fn member_kid(object: &Map<String, Value>) -> Result<Option<String>, KeyError> {
    match object.get("kid") {
        None => Ok(None),
        Some(Value::String(kid)) if !kid.is_empty() => Ok(Some(kid.clone())),
        Some(_) => Err(KeyError::Jwk("`kid` is not a non-empty string".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// aws-lc signs exactly as dalek would (Ed25519 is deterministic), and dalek verifies it:
    /// swapping the signer changed no verdict's bytes.
    #[test]
    fn aws_lc_signs_ed25519_exactly_as_dalek() {
        use ed25519_dalek::{Signer as _, Verifier as _};
        for i in 0..32_usize {
            let key = SigningKey::generate();
            let Signer::Ed25519(inner) = &key.signer else {
                panic!("an Ed25519 key")
            };
            assert!(inner.fast.is_some(), "aws-lc takes every dalek key");
            let msg = vec![u8::try_from(i).unwrap(); i * 97];
            let signature = key.sign(&msg).unwrap();
            assert_eq!(signature, inner.dalek.sign(&msg).to_bytes());
            let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
            inner
                .dalek
                .verifying_key()
                .verify(&msg, &signature)
                .unwrap();
            assert!(key.public().verify(&msg, &signature.to_bytes()));
        }
    }

    // RFC 8037 appendix A.1 and A.3.
    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    // RFC 7638 §3.1: an RSA key and its thumbprint.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    const RFC7638_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    // RFC 7515 appendix A.2 (RS256) and A.3 (ES256): keys, one signing input, signatures.
    const RFC7515_INPUT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const RFC7515_ES256_INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    const RFC7515_RS256_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    const RFC7515_ES256_SIGNATURE: &str =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    fn rfc7515_rsa_jwk() -> Value {
        json!({
            "kty": "RSA",
            "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
            "e": "AQAB",
            "d": "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ",
            "p": "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc",
            "q": "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc",
            "dp": "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0",
            "dq": "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU",
            "qi": "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U",
        })
    }

    fn rfc7515_ec_jwk() -> Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
        })
    }

    /// `jwk` without its private members: what a JWKS publishes.
    fn public_part(jwk: &Value) -> Value {
        let mut public = jwk.clone();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            public.as_object_mut().unwrap().remove(private);
        }
        public
    }

    /// One RSA key for every test that needs one: generating it is the slow part.
    fn rsa_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate_rs256(RSA_DEFAULT_BITS).unwrap())
    }

    /// A key of each kind.
    fn keys_of_every_kind() -> Vec<SigningKey> {
        vec![
            SigningKey::generate(),
            rsa_key().clone(),
            SigningKey::generate_es256().unwrap(),
        ]
    }

    /// An RSA key of 1024 bits, which ring would refuse too; made with `rsa`, as PKCS#8 PEM.
    fn short_rsa_pem() -> (String, String) {
        use pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
        let private = key.to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap().to_string();
        let public = key
            .to_public_key()
            .to_public_key_pem(pkcs8::LineEnding::LF)
            .unwrap();
        (private, public)
    }

    fn rfc8037_private_jwk() -> String {
        json!({"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": RFC8037_X}).to_string()
    }

    fn der_of(pem: &str) -> Vec<u8> {
        pkcs::pem_decode(pem).unwrap().1.to_vec()
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_of_the_rfc8037_example() {
        let public =
            PublicKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap();
        assert_eq!(public.kid(), RFC8037_THUMBPRINT);
        let private = SigningKey::from_jwk(&rfc8037_private_jwk()).unwrap();
        assert_eq!(private.kid(), RFC8037_THUMBPRINT);
        assert_eq!(private.public(), public);
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_of_its_rsa_example() {
        // RFC 7638 §3.1 gives the key with `alg` and `kid`; the thumbprint covers e, kty, n.
        let mut jwk = json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256"});
        let public = PublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(public.kid(), RFC7638_THUMBPRINT);
        assert_eq!(public.algorithm(), Algorithm::Rs256);
        // A named kid is kept, and the key is the same.
        jwk["kid"] = json!("2011-04-29");
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap().kid(), "2011-04-29");
        // A leading zero (not minimal, RFC 7518 §6.3.1.1) does not change the thumbprint.
        let mut n = vec![0];
        n.extend(URL_SAFE_NO_PAD.decode(RFC7638_N).unwrap());
        let padded = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"});
        assert_eq!(PublicKey::from_jwk(&padded).unwrap(), public);
    }

    #[test]
    fn signatures_match_the_rfc8037_example() {
        // RFC 8037 A.4: the JWS of "Example of Ed25519 signing" under header {"alg":"EdDSA"}.
        let key = SigningKey::from_jwk(&rfc8037_private_jwk()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::EdDsa);
        let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let sig = key.sign(input).unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&sig),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
        assert!(key.public().verify(input, &sig));
        assert!(!key.public().verify(b"other", &sig));
        assert!(!key.public().verify(input, &sig[..63]));
    }

    #[test]
    fn rs256_signatures_match_the_rfc7515_example() {
        // RS256 (PKCS#1 v1.5) is deterministic: the RFC's key gives the RFC's signature.
        let key = SigningKey::from_jwk(&rfc7515_rsa_jwk().to_string()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Rs256);
        let sig = key.sign(RFC7515_INPUT.as_bytes()).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(&sig), RFC7515_RS256_SIGNATURE);
        let public = PublicKey::from_jwk(&public_part(&rfc7515_rsa_jwk())).unwrap();
        assert_eq!(key.public(), public);
        assert!(public.verify(RFC7515_INPUT.as_bytes(), &sig));
        assert!(!public.verify(RFC7515_ES256_INPUT.as_bytes(), &sig));
        assert!(!public.verify(RFC7515_INPUT.as_bytes(), &sig[1..]));
    }

    #[test]
    fn es256_signatures_of_the_rfc7515_example_verify() {
        // ECDSA is randomized: the RFC's signature verifies, and so do this key's own.
        let key = SigningKey::from_jwk(&rfc7515_ec_jwk().to_string()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Es256);
        let public = PublicKey::from_jwk(&public_part(&rfc7515_ec_jwk())).unwrap();
        assert_eq!(key.public(), public);
        let rfc = URL_SAFE_NO_PAD.decode(RFC7515_ES256_SIGNATURE).unwrap();
        assert!(public.verify(RFC7515_ES256_INPUT.as_bytes(), &rfc));
        assert!(!public.verify(RFC7515_INPUT.as_bytes(), &rfc));
        let own = key.sign(RFC7515_INPUT.as_bytes()).unwrap();
        assert_eq!(own.len(), 64, "R || S, not DER");
        assert!(public.verify(RFC7515_INPUT.as_bytes(), &own));
        let mut flipped = own.clone();
        flipped[40] ^= 1;
        assert!(!public.verify(RFC7515_INPUT.as_bytes(), &flipped));
    }

    #[test]
    fn every_kind_signs_and_verifies_and_no_other_key_verifies() {
        let keys = keys_of_every_kind();
        for key in &keys {
            let sig = key.sign(b"message").unwrap();
            assert!(key.public().verify(b"message", &sig), "{key:?}");
            assert!(!key.public().verify(b"massage", &sig), "{key:?}");
            for other in keys.iter().filter(|other| other.kid() != key.kid()) {
                assert!(!other.public().verify(b"message", &sig), "{other:?}");
            }
        }
        let algs: Vec<&str> = keys.iter().map(|k| k.algorithm().name()).collect();
        assert_eq!(algs, ["EdDSA", "RS256", "ES256"]);
    }

    #[test]
    fn private_pem_round_trips() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.sign(b"m").unwrap(), key.sign(b"m").unwrap());
        // v1, as OpenSSL writes it: 48 bytes, version 0, no public key.
        let der = der_of(&pem);
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], pkcs::PKCS8_V1_ED25519_PREFIX);
        // The v2 form other tools write still loads.
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let Signer::Ed25519(inner) = &key.signer else {
            panic!("an Ed25519 key")
        };
        let v2 = inner.dalek.to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap();
        assert_eq!(SigningKey::from_pem(&v2).unwrap().kid(), key.kid());
    }

    #[test]
    fn rsa_and_p256_private_pem_round_trips() {
        for key in keys_of_every_kind() {
            let pem = key.to_pkcs8_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
            let back = SigningKey::from_pem(&pem).unwrap();
            assert_eq!(back.kid(), key.kid());
            assert_eq!(back.algorithm(), key.algorithm());
            assert_eq!(back.public(), key.public());
            assert!(key.public().verify(b"m", &back.sign(b"m").unwrap()));
        }
        // A P-256 key read from a JWK is written as OpenSSL writes one.
        let from_jwk = SigningKey::from_jwk(&rfc7515_ec_jwk().to_string()).unwrap();
        let der = der_of(&from_jwk.to_pkcs8_pem().unwrap());
        assert_eq!(der.len(), 138);
        let generated = der_of(
            &SigningKey::generate_es256()
                .unwrap()
                .to_pkcs8_pem()
                .unwrap(),
        );
        assert_eq!(der[..36], generated[..36]);
        // An RSA key read from a JWK too.
        let rsa = SigningKey::from_jwk(&rfc7515_rsa_jwk().to_string()).unwrap();
        let back = SigningKey::from_pem(&rsa.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(back.kid(), rsa.kid());
    }

    #[test]
    fn openssl_reads_the_keys_written_and_baton_reads_openssls() {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let output = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        for key in keys_of_every_kind() {
            let ours = dir.path().join(format!("{}.pem", key.algorithm()));
            std::fs::write(&ours, key.to_pkcs8_pem().unwrap()).unwrap();
            let theirs = openssl(&["pkey", "-pubout", "-in", ours.to_str().unwrap()]);
            assert_eq!(PublicKey::from_pem(&theirs).unwrap(), key.public());
            assert_eq!(theirs, key.public().to_pem().unwrap(), "same SPKI bytes");
        }
        let generated = [
            (
                "ed25519.pem",
                vec!["-algorithm", "ed25519"],
                Algorithm::EdDsa,
            ),
            (
                "rsa.pem",
                vec!["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                Algorithm::Rs256,
            ),
            (
                "ec.pem",
                vec!["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                Algorithm::Es256,
            ),
        ];
        for (name, args, alg) in generated {
            let path = dir.path().join(name);
            let mut all = vec!["genpkey"];
            all.extend(args);
            all.extend(["-out", path.to_str().unwrap()]);
            openssl(&all);
            let key = SigningKey::from_file(&path).unwrap();
            assert_eq!(key.algorithm(), alg);
            let public = openssl(&["pkey", "-pubout", "-in", path.to_str().unwrap()]);
            assert_eq!(PublicKey::from_pem(&public).unwrap(), key.public());
        }
        // OpenSSL's traditional forms are named, with the conversion that helps.
        let traditional = dir.path().join("traditional.pem");
        let rsa = dir.path().join("rsa.pem");
        openssl(&[
            "pkey",
            "-in",
            rsa.to_str().unwrap(),
            "-traditional",
            "-out",
            traditional.to_str().unwrap(),
        ]);
        let err = SigningKey::from_file(&traditional).unwrap_err().to_string();
        assert!(
            err.contains("`RSA PRIVATE KEY`") && err.contains("openssl pkcs8"),
            "{err}"
        );
    }

    #[test]
    fn public_pem_and_jwk_round_trip() {
        for key in keys_of_every_kind() {
            let public = key.public();
            let pem = public.to_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
            assert_eq!(PublicKey::from_pem(&pem).unwrap(), public);
            let jwk = public.to_jwk();
            assert_eq!(jwk["alg"], public.algorithm().name());
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["kid"], public.kid());
            assert!(jwk.get("d").is_none());
            assert_eq!(PublicKey::from_jwk(&jwk).unwrap(), public);
        }
        let kinds: Vec<(Value, Value)> = keys_of_every_kind()
            .iter()
            .map(|key| {
                let jwk = key.public().to_jwk();
                (jwk["kty"].clone(), jwk["alg"].clone())
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (json!("OKP"), json!("EdDSA")),
                (json!("RSA"), json!("RS256")),
                (json!("EC"), json!("ES256")),
            ]
        );
    }

    #[test]
    fn a_jwk_kid_is_kept() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "2025-01"});
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap().kid(), "2025-01");
        let mut ec = rfc7515_ec_jwk();
        ec["kid"] = json!("ec-1");
        assert_eq!(SigningKey::from_jwk(&ec.to_string()).unwrap().kid(), "ec-1");
    }

    #[test]
    fn short_and_odd_rsa_keys_are_refused() {
        let (private, public) = short_rsa_pem();
        let err = SigningKey::from_pem(&private).unwrap_err().to_string();
        assert!(err.contains("1024 bits; at least 2048"), "{err}");
        let err = PublicKey::from_pem(&public).unwrap_err().to_string();
        assert!(err.contains("1024 bits; at least 2048"), "{err}");
        let err = SigningKey::generate_rs256(1024).unwrap_err().to_string();
        assert!(err.contains("1024 bits"), "{err}");
        assert!(
            SigningKey::generate_rs256(8192).is_err(),
            "ring signs up to 4096"
        );

        let n = URL_SAFE_NO_PAD.decode(RFC7638_N).unwrap();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let short = json!({"kty": "RSA", "n": b64(&n[..255]), "e": "AQAB"});
        let err = PublicKey::from_jwk(&short).unwrap_err().to_string();
        assert!(err.contains("2040 bits"), "{err}");
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        let cases = [
            (json!({"kty": "RSA", "n": b64(&even), "e": "AQAB"}), "even"),
            (json!({"kty": "RSA", "n": RFC7638_N, "e": "AQ"}), "exponent"),
            (json!({"kty": "RSA", "n": RFC7638_N, "e": "Ag"}), "exponent"),
            (
                json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAAAAAB"}),
                "exponent",
            ),
            (json!({"kty": "RSA", "e": "AQAB"}), "`n`"),
            (json!({"kty": "RSA", "n": RFC7638_N}), "`e`"),
        ];
        for (jwk, expected) in cases {
            let err = PublicKey::from_jwk(&jwk).unwrap_err().to_string();
            assert!(err.contains(expected), "{jwk}: {err}");
        }
        // In a JWKS, a short key of a kind Baton reads is an error, not skipped.
        let jwks = json!({"keys": [rsa_key().public().to_jwk(), short]});
        let err = KeySet::from_jwks_json(&jwks.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 1") && err.contains("2040 bits"), "{err}");
    }

    #[test]
    fn bad_p256_keys_are_refused() {
        let public = public_part(&rfc7515_ec_jwk());
        let other = SigningKey::generate_es256().unwrap().public().to_jwk();
        let mut off_curve = public.clone();
        off_curve["y"] = other["y"].clone();
        let err = PublicKey::from_jwk(&off_curve).unwrap_err().to_string();
        assert!(err.contains("not on the P-256 curve"), "{err}");
        let mut short = public.clone();
        short["x"] = json!("AAAA");
        let err = PublicKey::from_jwk(&short).unwrap_err().to_string();
        assert!(err.contains("`x` is 3 bytes"), "{err}");
        let mut no_y = public.clone();
        no_y.as_object_mut().unwrap().remove("y");
        assert!(
            PublicKey::from_jwk(&no_y)
                .unwrap_err()
                .to_string()
                .contains("`y`")
        );

        // A private key whose public members are another key's.
        let mut mismatched = rfc7515_ec_jwk();
        mismatched["x"] = other["x"].clone();
        mismatched["y"] = other["y"].clone();
        let err = SigningKey::from_jwk(&mismatched.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the public key of `d`"), "{err}");

        // A compressed point in an SPKI document.
        let der = pkcs::spki_der(&pkcs::Public::P256(&[0x02; 33])).unwrap();
        let pem = pkcs::pem_encode("PUBLIC KEY", &der).unwrap();
        let err = PublicKey::from_pem(&pem).unwrap_err().to_string();
        assert!(err.contains("compressed"), "{err}");
    }

    #[test]
    fn an_rsa_jwk_must_be_complete_and_consistent() {
        let full = rfc7515_rsa_jwk();
        let mut no_crt = full.clone();
        no_crt.as_object_mut().unwrap().remove("qi");
        let err = SigningKey::from_jwk(&no_crt.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`qi`"), "{err}");
        let mut three_primes = full.clone();
        three_primes["oth"] = json!([]);
        let err = SigningKey::from_jwk(&three_primes.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`oth`"), "{err}");
        let mut other_n = full.clone();
        other_n["n"] = json!(RFC7638_N);
        let err = SigningKey::from_jwk(&other_n.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not make an RSA key pair"), "{err}");
    }

    #[test]
    fn bad_jwks_are_refused_with_the_reason() {
        let cases = [
            (json!([]), "not a JSON object"),
            (json!({"kty": "oct", "k": "AAAA"}), "`kty`"),
            (json!({"kty": "RSA"}), "`n`"),
            (
                json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_X}),
                "`crv`",
            ),
            (
                json!({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}),
                "`crv`",
            ),
            (json!({"kty": "OKP", "crv": "Ed25519"}), "`x`"),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
                "3 bytes",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": format!("{RFC8037_X}=")}),
                "base64url",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "use": "enc"}),
                "`use`",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "alg": "ES256"}),
                "`alg`",
            ),
            (
                json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "PS256"}),
                "`alg`",
            ),
            (
                json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "ES256"}),
                "`alg`",
            ),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": 7}),
                "`kid`",
            ),
            // The identity point: small order.
            (
                json!({"kty": "OKP", "crv": "Ed25519",
                       "x": URL_SAFE_NO_PAD.encode({ let mut b = [0u8; 32]; b[0] = 1; b })}),
                "weak",
            ),
        ];
        for (jwk, expected) in cases {
            let err = PublicKey::from_jwk(&jwk).unwrap_err().to_string();
            assert!(err.contains(expected), "{jwk}: {err}");
        }
        for private in [
            rfc8037_private_jwk(),
            rfc7515_rsa_jwk().to_string(),
            rfc7515_ec_jwk().to_string(),
        ] {
            let private = serde_json::from_str(&private).unwrap();
            assert!(matches!(
                PublicKey::from_jwk(&private),
                Err(KeyError::PrivateKeyWherePublicExpected)
            ));
        }
    }

    #[test]
    fn a_private_jwk_must_be_consistent() {
        let other_x = SigningKey::generate().public().to_jwk()["x"].clone();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": other_x});
        let err = SigningKey::from_jwk(&jwk.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("`x` is not the public key"),
            "{err}"
        );
        let no_d = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}).to_string();
        assert!(SigningKey::from_jwk(&no_d).is_err());
        let no_d = public_part(&rfc7515_ec_jwk()).to_string();
        assert!(
            SigningKey::from_jwk(&no_d)
                .unwrap_err()
                .to_string()
                .contains("`d`")
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::from_jwk(&rfc8037_private_jwk()).unwrap();
        assert_eq!(
            format!("{key:?}"),
            format!("SigningKey {{ kid: \"{RFC8037_THUMBPRINT}\", alg: \"EdDSA\", .. }}")
        );
        let rsa = rsa_key();
        assert_eq!(
            format!("{rsa:?}"),
            format!(
                "SigningKey {{ kid: \"{}\", alg: \"RS256\", .. }}",
                rsa.kid()
            )
        );
    }

    #[test]
    fn jwks_round_trips_and_skips_other_keys() {
        let a = SigningKey::generate().public();
        let b = SigningKey::generate().public();
        let set = KeySet::new(vec![a.clone(), b.clone(), a.clone()]);
        assert_eq!(set.keys().len(), 2);
        let jwks = set.to_jwks();
        assert_eq!(KeySet::from_jwks_json(&jwks.to_string()).unwrap(), set);

        let mixed = json!({"keys": [
            {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "use": "enc"},
            {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "PS256"},
            {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RSA-OAEP"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "alg": "ECDH-ES"},
            {"kty": "OKP", "crv": "X25519", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "use": "enc"},
            {"kty": "oct", "k": "AAAA"},
            "not an object",
            a.to_jwk(),
        ]});
        let parsed = KeySet::from_jwks_json(&mixed.to_string()).unwrap();
        assert_eq!(parsed.keys(), std::slice::from_ref(&a));
        assert_eq!(parsed.get(a.kid()), Some(&a));
        assert_eq!(parsed.get(b.kid()), None);

        let none = json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]});
        assert!(matches!(
            KeySet::from_jwks_json(&none.to_string()),
            Err(KeyError::NoUsableKey)
        ));
        let broken = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!"}]});
        let err = KeySet::from_jwks_json(&broken.to_string()).unwrap_err();
        assert!(err.to_string().contains("key 0"), "{err}");
        assert!(KeySet::from_jwks_json("{}").is_err());
        assert!(KeySet::from_jwks_json("nope").is_err());
    }

    #[test]
    fn a_jwks_holds_keys_of_every_kind() {
        let publics: Vec<PublicKey> = keys_of_every_kind()
            .iter()
            .map(SigningKey::public)
            .collect();
        let set = KeySet::new(publics.clone());
        let jwks = set.to_jwks();
        let parsed = KeySet::from_jwks_json(&jwks.to_string()).unwrap();
        assert_eq!(parsed, set);
        for key in &publics {
            assert_eq!(parsed.get(key.kid()), Some(key));
        }
        // The RFC 7515 keys as another issuer publishes them, with their own kids.
        let mut rsa = public_part(&rfc7515_rsa_jwk());
        rsa["kid"] = json!("2010-12-29");
        let mut ec = public_part(&rfc7515_ec_jwk());
        ec["kid"] = json!("e9bc097a-ce51-4036-9562-d2ade882db0d");
        let theirs = KeySet::from_jwks_json(&json!({"keys": [rsa, ec]}).to_string()).unwrap();
        assert_eq!(
            theirs.get("2010-12-29").unwrap().algorithm(),
            Algorithm::Rs256
        );
        let ec = theirs.get("e9bc097a-ce51-4036-9562-d2ade882db0d").unwrap();
        assert_eq!(ec.algorithm(), Algorithm::Es256);
    }

    #[test]
    fn merged_keeps_each_kid_once() {
        let a = SigningKey::generate().public();
        let b = SigningKey::generate().public();
        let c = SigningKey::generate().public();
        let left = KeySet::new(vec![a.clone(), b.clone()]);
        let right = KeySet::new(vec![b.clone(), c.clone()]);
        assert_eq!(left.merged(&right).keys(), &[a, b, c]);
    }

    #[test]
    fn keyring_publishes_the_signer_and_the_old_keys() {
        let old = SigningKey::generate();
        let new = SigningKey::generate_es256().unwrap();
        let ring = Keyring::new(new.clone(), vec![old.public(), new.public()]);
        assert_eq!(ring.signer().kid(), new.kid());
        assert_eq!(ring.published().keys(), &[new.public(), old.public()]);
    }

    proptest::proptest! {
        #[test]
        fn reading_keys_never_panics_on_any_der(
            der in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            index in 0usize..2000,
            byte in proptest::prelude::any::<u8>(),
        ) {
            // Random bytes, and real keys of every kind with one byte changed.
            let mut documents = vec![der];
            for key in keys_of_every_kind() {
                documents.push(key.pkcs8.to_vec());
                documents.push(der_of(&key.public().to_pem().unwrap()));
            }
            for mut document in documents {
                if !document.is_empty() {
                    let at = index % document.len();
                    document[at] = byte;
                }
                for label in ["PRIVATE KEY", "PUBLIC KEY"] {
                    let pem = pkcs::pem_encode(label, &document).unwrap();
                    let _ = SigningKey::from_pem(&pem);
                    let _ = PublicKey::from_pem(&pem);
                }
            }
        }

        #[test]
        fn reading_jwks_never_panics_on_any_members(
            kty in "OKP|RSA|EC|oct",
            crv in "Ed25519|P-256|P-384|X25519",
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let (a, b) = (URL_SAFE_NO_PAD.encode(a), URL_SAFE_NO_PAD.encode(b));
            let public = json!({"kty": kty, "crv": crv, "n": a, "e": b, "x": b, "y": b});
            let _ = PublicKey::from_jwk(&public);
            let _ = KeySet::from_jwks_json(&json!({"keys": [public]}).to_string());
            let private = json!({"kty": kty, "crv": crv, "n": a, "e": b, "x": b, "y": b,
                "d": a, "p": b, "q": b, "dp": b, "dq": b, "qi": b});
            let _ = SigningKey::from_jwk(&private.to_string());
        }
    }

    #[test]
    fn files_are_read_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        for key in keys_of_every_kind() {
            let alg = key.algorithm().name();
            let pem = write(&format!("{alg}.pem"), &key.to_pkcs8_pem().unwrap());
            assert_eq!(SigningKey::from_file(&pem).unwrap().kid(), key.kid());

            let expected = KeySet::new(vec![key.public()]);
            let spki = write(&format!("{alg}.pub.pem"), &key.public().to_pem().unwrap());
            assert_eq!(KeySet::from_file(&spki).unwrap(), expected);
            let single = write(&format!("{alg}.jwk"), &key.public().to_jwk().to_string());
            assert_eq!(KeySet::from_file(&single).unwrap(), expected);
            let jwks = write(&format!("{alg}.jwks"), &expected.to_jwks().to_string());
            assert_eq!(KeySet::from_file(&jwks).unwrap(), expected);

            // A private key where a public one belongs is refused, not quietly accepted.
            let err = KeySet::from_file(&pem).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{alg}.pem")) && err.contains("private key"),
                "{err}"
            );
        }
        let jwk = write("key.jwk", &rfc8037_private_jwk());
        assert_eq!(
            SigningKey::from_file(&jwk).unwrap().kid(),
            RFC8037_THUMBPRINT
        );
        let rsa_jwk = write("rsa.jwk", &rfc7515_rsa_jwk().to_string());
        assert_eq!(
            SigningKey::from_file(&rsa_jwk).unwrap().algorithm(),
            Algorithm::Rs256
        );
        let traditional = write(
            "ec.pem",
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        );
        assert!(matches!(
            KeySet::from_file(&traditional).unwrap_err(),
            KeyError::File { problem, .. } if matches!(*problem, KeyError::PrivateKeyWherePublicExpected)
        ));
        let junk = write("junk", "hello");
        let err = SigningKey::from_file(&junk).unwrap_err().to_string();
        assert!(err.contains("`") && err.contains("junk"), "{err}");
        let missing = dir.path().join("missing");
        assert!(matches!(
            SigningKey::from_file(&missing),
            Err(KeyError::Read { .. })
        ));
        let bad_pem = write(
            "bad.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(matches!(
            SigningKey::from_file(&bad_pem),
            Err(KeyError::File { .. })
        ));
    }
}
