//! Ed25519 key material: the key Baton signs verdicts with, the public keys it trusts, and the
//! set it publishes while keys rotate.
//!
//! Keys are read from PEM (PKCS#8 private, SPKI public) or from JWK (RFC 8037 `OKP`/`Ed25519`).
//! A key's `kid` is its RFC 7638 JWK thumbprint unless a JWK names one itself.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Why key material could not be read, parsed or encoded.
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
    /// The PEM does not parse as an Ed25519 key, or holds a weak (small-order) one.
    #[error("invalid PEM key: {0}")]
    Pem(String),
    /// The JWK is not JSON, not an Ed25519 `OKP` signing key, or its members do not decode
    /// or do not agree.
    #[error("invalid JWK: {0}")]
    Jwk(String),
    /// The JWKS is not JSON, has no `keys` array, or holds an Ed25519 key that does not parse.
    #[error("invalid JWKS: {0}")]
    Jwks(String),
    /// The JWKS parses but holds no Ed25519 signing key.
    #[error("the JWKS holds no usable Ed25519 signing key")]
    NoUsableKey,
    /// A private key was given where only a public one belongs, such as a published key.
    #[error("expected a public key but found a private key; publish only the public part")]
    PrivateKeyWherePublicExpected,
    /// The key could not be written out as PEM.
    #[error("cannot encode the key: {0}")]
    Encode(String),
}

impl KeyError {
    fn in_file(self, path: &Path) -> Self {
        Self::File {
            path: path.to_owned(),
            problem: Box::new(self),
        }
    }
}

/// The private key Baton signs with, and its `kid`.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    kid: String,
}

/// Prints the `kid` only: key material must never reach a log.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    fn from_dalek(inner: ed25519_dalek::SigningKey) -> Self {
        let kid = thumbprint(inner.verifying_key().as_bytes());
        Self { inner, kid }
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

    /// Parses a PEM PKCS#8 Ed25519 private key, v1 or v2 (with the public key, which must match).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map(Self::from_dalek)
            .map_err(|e| KeyError::Pem(e.to_string()))
    }

    /// Parses a private JWK: `{"kty":"OKP","crv":"Ed25519","x":..,"d":..}` (RFC 8037 §2). `x`
    /// must be the public key of `d`; a `kid` member, if any, is kept as the key's `kid`.
    pub fn from_jwk(jwk: &str) -> Result<Self, KeyError> {
        let value: Value =
            serde_json::from_str(jwk).map_err(|e| KeyError::Jwk(format!("not JSON: {e}")))?;
        let object = ed25519_object(&value)?;
        let d = member_bytes(object, "d")?
            .ok_or_else(|| KeyError::Jwk("no private key member `d`".to_owned()))?;
        let inner = ed25519_dalek::SigningKey::from_bytes(&d);
        let x = member_bytes(object, "x")?
            .ok_or_else(|| KeyError::Jwk("no public key member `x`".to_owned()))?;
        if inner.verifying_key().as_bytes() != &x {
            return Err(KeyError::Jwk("`x` is not the public key of `d`".to_owned()));
        }
        let mut key = Self::from_dalek(inner);
        if let Some(kid) = member_kid(object)? {
            key.kid = kid;
        }
        Ok(key)
    }

    /// The key's identifier, put in the `kid` header of every token it signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, with the same `kid`.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
            kid: self.kid.clone(),
        }
    }

    /// An Ed25519 (RFC 8032, deterministic) signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.inner.sign(msg).to_bytes()
    }

    /// The key as PEM PKCS#8 v1 (RFC 8410 §7: the private key alone), as OpenSSL 3 and
    /// Python's `cryptography` write and read it. The v2 form with the public key beside it,
    /// which `from_pem` also reads, is refused by both.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        use base64::Engine as _;
        let mut der = Vec::with_capacity(PKCS8_V1_ED25519_PREFIX.len() + 32);
        der.extend_from_slice(&PKCS8_V1_ED25519_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }
}

/// The DER of an Ed25519 PKCS#8 v1 key before its 32 private bytes (RFC 8410 §7):
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }`.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A public key that verifies signatures, and its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
    kid: String,
}

impl PublicKey {
    /// Parses a PEM SPKI Ed25519 public key (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let inner = ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| KeyError::Pem(e.to_string()))?;
        Self::from_dalek(inner, None).map_err(KeyError::Pem)
    }

    /// Parses a public JWK `{"kty":"OKP","crv":"Ed25519","x":..}`. A `kid` member is kept as the
    /// key's `kid` (tokens of other issuers name their keys that way); without one the `kid` is
    /// the thumbprint. A JWK that says it is not for signatures (`use`, `alg`) or that carries
    /// the private key `d` is refused.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let object = ed25519_object(jwk)?;
        if object.contains_key("d") {
            return Err(KeyError::PrivateKeyWherePublicExpected);
        }
        if let Some(usage) = object.get("use")
            && usage.as_str() != Some("sig")
        {
            return Err(KeyError::Jwk(format!("`use` is {usage}, not \"sig\"")));
        }
        if let Some(alg) = object.get("alg")
            && !matches!(alg.as_str(), Some("EdDSA" | "Ed25519"))
        {
            return Err(KeyError::Jwk(format!("`alg` is {alg}, not \"EdDSA\"")));
        }
        let x = member_bytes(object, "x")?
            .ok_or_else(|| KeyError::Jwk("no public key member `x`".to_owned()))?;
        let inner = ed25519_dalek::VerifyingKey::from_bytes(&x)
            .map_err(|_| KeyError::Jwk("`x` is not an Ed25519 public key".to_owned()))?;
        Self::from_dalek(inner, member_kid(object)?).map_err(KeyError::Jwk)
    }

    fn from_dalek(inner: ed25519_dalek::VerifyingKey, kid: Option<String>) -> Result<Self, String> {
        // A small-order key verifies forged signatures under non-strict rules and never under
        // strict ones: either way it is a mistake worth naming when the key is loaded.
        if inner.is_weak() {
            return Err("the public key is a weak (small-order) point".to_owned());
        }
        let kid = kid.unwrap_or_else(|| thumbprint(inner.as_bytes()));
        Ok(Self { inner, kid })
    }

    /// The key's id: its RFC 7638 thumbprint unless a JWK named one.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key as a JWK, as a JWKS endpoint publishes it.
    pub fn to_jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.inner.as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// The key as PEM SPKI, as `from_pem` reads it.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyError::Encode(e.to_string()))
    }

    /// Whether `sig` is a valid signature of `msg` under RFC 8032's strict rules: canonical `S`,
    /// no small-order `R` or key, so a signature cannot be altered into another valid one.
    pub fn verify_strict(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.inner.verify_strict(msg, &sig).is_ok()
    }
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
    /// meant for encryption, are skipped; an Ed25519 signing key that does not parse is an error.
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
            if is_ed25519_signing_jwk(jwk) {
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
        } else if trimmed.starts_with("-----BEGIN PUBLIC KEY-----") {
            Ok(Self::new(vec![PublicKey::from_pem(trimmed)?]))
        } else if trimmed.starts_with("-----BEGIN PRIVATE KEY-----") {
            Err(KeyError::PrivateKeyWherePublicExpected)
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
/// one stays published until every token it signed has expired.
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

/// The RFC 7638 JWK thumbprint of an Ed25519 key: base64url(SHA-256) of the required members in
/// lexicographic order without whitespace (RFC 8037 §2 names them `crv`, `kty`, `x`).
fn thumbprint(public: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Whether a JWKS entry is one this module uses: `OKP`/`Ed25519`, not marked for encryption or
/// for another algorithm.
fn is_ed25519_signing_jwk(jwk: &Value) -> bool {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    member("kty") == Some("OKP")
        && member("crv") == Some("Ed25519")
        && jwk.get("use").is_none_or(|u| u.as_str() == Some("sig"))
        && jwk
            .get("alg")
            .is_none_or(|a| matches!(a.as_str(), Some("EdDSA" | "Ed25519")))
}

/// The members of a JWK, checked to be an Ed25519 key.
fn ed25519_object(jwk: &Value) -> Result<&Map<String, Value>, KeyError> {
    let object = jwk
        .as_object()
        .ok_or_else(|| KeyError::Jwk("not a JSON object".to_owned()))?;
    let kty = object.get("kty").and_then(Value::as_str);
    if kty != Some("OKP") {
        return Err(KeyError::Jwk(format!(
            "`kty` is {}, not \"OKP\"",
            describe(object.get("kty"))
        )));
    }
    let crv = object.get("crv").and_then(Value::as_str);
    if crv != Some("Ed25519") {
        return Err(KeyError::Jwk(format!(
            "`crv` is {}, not \"Ed25519\"",
            describe(object.get("crv"))
        )));
    }
    Ok(object)
}

fn describe(member: Option<&Value>) -> String {
    member.map_or_else(|| "missing".to_owned(), Value::to_string)
}

/// A 32-byte base64url member (`x` or `d`), if present.
fn member_bytes(object: &Map<String, Value>, name: &str) -> Result<Option<[u8; 32]>, KeyError> {
    let Some(value) = object.get(name) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| KeyError::Jwk(format!("`{name}` is not a string")))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyError::Jwk(format!("`{name}` is not base64url without padding")))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyError::Jwk(format!("`{name}` is {} bytes, not 32", b.len())))?;
    Ok(Some(bytes))
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
    use super::*;

    // RFC 8037 appendix A.1 and A.3.
    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    fn rfc8037_private_jwk() -> String {
        json!({"kty": "OKP", "crv": "Ed25519", "d": RFC8037_D, "x": RFC8037_X}).to_string()
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
    fn signatures_match_the_rfc8037_example() {
        // RFC 8037 A.4: the JWS of "Example of Ed25519 signing" under header {"alg":"EdDSA"}.
        let key = SigningKey::from_jwk(&rfc8037_private_jwk()).unwrap();
        let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let sig = key.sign(input);
        assert_eq!(
            URL_SAFE_NO_PAD.encode(sig),
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
        assert!(key.public().verify_strict(input, &sig));
        assert!(!key.public().verify_strict(b"other", &sig));
        assert!(!key.public().verify_strict(input, &sig[..63]));
    }

    #[test]
    fn private_pem_round_trips() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.sign(b"m"), key.sign(b"m"));
        // v1, as OpenSSL writes it: 48 bytes, version 0, no public key.
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], PKCS8_V1_ED25519_PREFIX);
        // The v2 form other tools write still loads.
        use ed25519_dalek::pkcs8::EncodePrivateKey as _;
        let v2 = key.inner.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert_eq!(SigningKey::from_pem(&v2).unwrap().kid(), key.kid());
    }

    #[test]
    fn openssl_reads_the_keys_written_and_baton_reads_openssls() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.pem");
        let key = SigningKey::generate();
        std::fs::write(&ours, key.to_pkcs8_pem().unwrap()).unwrap();
        let public = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&ours)
            .output()
            .expect("openssl runs");
        assert!(
            public.status.success(),
            "{}",
            String::from_utf8_lossy(&public.stderr)
        );
        let theirs = String::from_utf8(public.stdout).unwrap();
        assert_eq!(PublicKey::from_pem(&theirs).unwrap(), key.public());
        let generated = dir.path().join("theirs.pem");
        let made = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&generated)
            .status()
            .expect("openssl runs");
        assert!(made.success());
        SigningKey::from_file(&generated).unwrap();
    }

    #[test]
    fn public_pem_and_jwk_round_trip() {
        let public = SigningKey::generate().public();
        let pem = public.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), public);
        let jwk = public.to_jwk();
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], public.kid());
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap(), public);
    }

    #[test]
    fn a_jwk_kid_is_kept() {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "2025-01"});
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap().kid(), "2025-01");
    }

    #[test]
    fn bad_jwks_are_refused_with_the_reason() {
        let cases = [
            (json!([]), "not a JSON object"),
            (json!({"kty": "RSA"}), "`kty`"),
            (
                json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_X}),
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
        let private = serde_json::from_str(&rfc8037_private_jwk()).unwrap();
        assert!(matches!(
            PublicKey::from_jwk(&private),
            Err(KeyError::PrivateKeyWherePublicExpected)
        ));
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
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::from_jwk(&rfc8037_private_jwk()).unwrap();
        assert_eq!(
            format!("{key:?}"),
            format!("SigningKey {{ kid: \"{RFC8037_THUMBPRINT}\", .. }}")
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
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "X25519", "x": RFC8037_X},
            {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "use": "enc"},
            a.to_jwk(),
        ]});
        let parsed = KeySet::from_jwks_json(&mixed.to_string()).unwrap();
        assert_eq!(parsed.keys(), std::slice::from_ref(&a));
        assert_eq!(parsed.get(a.kid()), Some(&a));
        assert_eq!(parsed.get(b.kid()), None);

        let none = json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]});
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
        let new = SigningKey::generate();
        let ring = Keyring::new(new.clone(), vec![old.public(), new.public()]);
        assert_eq!(ring.signer().kid(), new.kid());
        assert_eq!(ring.published().keys(), &[new.public(), old.public()]);
    }

    #[test]
    fn files_are_read_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };

        let pem = write("key.pem", &key.to_pkcs8_pem().unwrap());
        assert_eq!(SigningKey::from_file(&pem).unwrap().kid(), key.kid());
        let jwk = write("key.jwk", &rfc8037_private_jwk());
        assert_eq!(
            SigningKey::from_file(&jwk).unwrap().kid(),
            RFC8037_THUMBPRINT
        );

        let expected = KeySet::new(vec![key.public()]);
        let spki = write("pub.pem", &key.public().to_pem().unwrap());
        assert_eq!(KeySet::from_file(&spki).unwrap(), expected);
        let single = write("pub.jwk", &key.public().to_jwk().to_string());
        assert_eq!(KeySet::from_file(&single).unwrap(), expected);
        let jwks = write("jwks.json", &expected.to_jwks().to_string());
        assert_eq!(KeySet::from_file(&jwks).unwrap(), expected);

        // A private key where a public one belongs is refused, not quietly accepted.
        let err = KeySet::from_file(&pem).unwrap_err().to_string();
        assert!(
            err.contains("key.pem") && err.contains("private key"),
            "{err}"
        );
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
