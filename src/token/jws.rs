//! Compact JWS (RFC 7515 §7.1) signed with Ed25519 (`EdDSA`, RFC 8037), RSA (`RS256`) or P-256
//! (`ES256`), verified strictly: the one algorithm of the key the `kid` names, an explicit type,
//! no extensions, and every check its own error.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::keys::{Algorithm, KeySet, SigningKey};

/// The `typ` of a verdict signed by Baton.
pub const VERDICT_TYP: &str = "baton-verdict+jwt";
/// The `typ` of an RFC 9068 access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Longer tokens are refused before any decoding; a real chain fits in a fraction of this.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// The JOSE header members that verification looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signing algorithm as the token names it: `EdDSA` (or `Ed25519`), `RS256` or `ES256`,
    /// and always the algorithm of the key that verified the token.
    pub alg: String,
    /// The token type, such as [`VERDICT_TYP`]; compared as RFC 7515 §4.1.9 says.
    pub typ: Option<String>,
    /// The id of the key that signed the token.
    pub kid: Option<String>,
}

/// Why a token was refused (or, for `Encode`, could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// The token is longer than [`MAX_TOKEN_BYTES`]; refused before any decoding.
    #[error("token is {len} bytes, more than the {MAX_TOKEN_BYTES} allowed")]
    TooLarge {
        /// The token's length, in bytes.
        len: usize,
    },
    /// The token's segments, header or claims are not what a compact JWS must hold; holds
    /// what was wrong.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm other than `EdDSA` (`Ed25519`), `RS256` or `ES256`;
    /// holds it, clipped.
    #[error(
        "algorithm `{0}` is not allowed; tokens must be signed with `EdDSA`, `RS256` or `ES256`"
    )]
    Algorithm(String),
    /// The header names an algorithm the key its `kid` names does not sign with: an RS256
    /// header on an Ed25519 key, say. Same code as [`JwsError::Algorithm`].
    #[error("algorithm `{alg}` is not allowed for key `{kid}`, which signs with `{expected}`")]
    KeyAlgorithm {
        /// The header's `alg`, clipped.
        alg: String,
        /// The key's `kid`, clipped.
        kid: String,
        /// The one algorithm of that key.
        expected: Algorithm,
    },
    /// The header has `crit`, whose extensions Baton does not understand (RFC 7515 §4.1.11).
    #[error("header member `{0}` is not supported")]
    Unsupported(String),
    /// The `typ` is absent or not one the verifier accepts here.
    #[error("{}", wrong_type(.found.as_deref(), .expected))]
    Type {
        /// The token's `typ`, if it has one.
        found: Option<String>,
        /// The types accepted.
        expected: Vec<String>,
    },
    /// The header has no `kid`, or no trusted key has it; holds the `kid`.
    #[error("{}", unknown_key(.0.as_deref()))]
    UnknownKey(Option<String>),
    /// The signature does not verify under the key the `kid` names.
    #[error("signature does not verify")]
    Signature,
    /// Signing only: the header or claims could not be serialized.
    #[error("cannot encode the token: {0}")]
    Encode(String),
    /// Signing only: the key could not sign; holds why.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

fn wrong_type(found: Option<&str>, expected: &[String]) -> String {
    let expected = expected
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    match found {
        Some(typ) => format!("token type `{}` is not {expected}", clip(typ)),
        None => format!("token has no `typ`; expected {expected}"),
    }
}

fn unknown_key(kid: Option<&str>) -> String {
    match kid {
        Some(kid) => format!("no trusted key has kid `{}`", clip(kid)),
        None => "token has no `kid`".to_owned(),
    }
}

impl JwsError {
    /// A stable code for clients and metrics; the message may change, the code does not.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "TOKEN_TOO_LARGE",
            Self::Malformed(_) => "TOKEN_MALFORMED",
            Self::Algorithm(_) | Self::KeyAlgorithm { .. } => "ALGORITHM_NOT_ALLOWED",
            Self::Unsupported(_) => "CRITICAL_HEADER_UNSUPPORTED",
            Self::Type { .. } => "WRONG_TOKEN_TYPE",
            Self::UnknownKey(_) => "UNKNOWN_KEY",
            Self::Signature => "SIGNATURE_INVALID",
            Self::Encode(_) => "TOKEN_ENCODING_FAILED",
            Self::Sign(_) => "TOKEN_SIGNING_FAILED",
        }
    }
}

#[derive(Serialize)]
struct SignedHeader<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with header `{"alg":<key's alg>,"typ":typ,"kid":<key's kid>}`.
/// A token that `verify` would refuse as too large is refused here instead.
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, JwsError> {
    let header = serde_json::to_vec(&SignedHeader {
        alg: key.algorithm().name(),
        typ,
        kid: key.kid(),
    })
    .map_err(|e| JwsError::Encode(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| JwsError::Encode(e.to_string()))?;
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key
        .sign(token.as_bytes())
        .map_err(|e| JwsError::Sign(e.to_string()))?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwsError::TooLarge { len: token.len() });
    }
    Ok(token)
}

/// Verifies a compact JWS signed by one of `keys` with a `typ` among `allowed_typs`, and
/// deserializes its payload. The checks run in a fixed order and the first failure is returned:
/// size, shape, algorithm, `crit`, type, key, the key's algorithm, signature, claims. Never
/// panics.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    allowed_typs: &[&str],
) -> Result<(Header, C), JwsError> {
    let parts = Parts::decode(token)?;
    let header = parse_header(&parts.header)?;
    let typ_allowed = header
        .typ
        .as_deref()
        .is_some_and(|typ| allowed_typs.iter().any(|allowed| same_typ(typ, allowed)));
    if !typ_allowed {
        return Err(JwsError::Type {
            found: header.typ,
            expected: allowed_typs.iter().map(|t| (*t).to_owned()).collect(),
        });
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| keys.get(kid))
        .ok_or_else(|| JwsError::UnknownKey(header.kid.clone()))?;
    // RFC 8725 §3.1: the key decides the algorithm, never the token.
    if Algorithm::from_name(&header.alg) != Some(key.algorithm()) {
        return Err(JwsError::KeyAlgorithm {
            alg: clip(&header.alg),
            kid: clip(key.kid()),
            expected: key.algorithm(),
        });
    }
    if !key.verify(parts.signing_input.as_bytes(), &parts.signature) {
        return Err(JwsError::Signature);
    }
    let claims = serde_json::from_slice(&parts.payload)
        .map_err(|e| JwsError::Malformed(format!("claims: {}", clip(&e.to_string()))))?;
    Ok((header, claims))
}

/// The payload of a well-formed token, before any check of its header or signature: only for
/// choosing which keys to verify it with.
pub(crate) fn unverified_payload(token: &str) -> Result<Vec<u8>, JwsError> {
    Parts::decode(token).map(|parts| parts.payload)
}

/// The decoded payload of anything shaped like a compact JWS (three `.`-separated segments,
/// within the size limit), however broken its header or signature: what a token claims to be,
/// so a door can tell a damaged credential of Baton's kind from some other bearer token.
pub(crate) fn claimed_payload(token: &str) -> Option<Vec<u8>> {
    if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()
}

/// The three segments of a compact JWS, decoded.
struct Parts<'a> {
    /// `<header-b64>.<payload-b64>`, the bytes the signature covers.
    signing_input: &'a str,
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> Parts<'a> {
    fn decode(token: &'a str) -> Result<Self, JwsError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwsError::TooLarge { len: token.len() });
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(malformed("expected three segments separated by `.`"));
        };
        let decode = |segment: &str, name: &str| {
            if segment.is_empty() {
                return Err(malformed(&format!("the {name} is empty")));
            }
            // The engine refuses padding and non-canonical trailing bits (RFC 7515 §2).
            URL_SAFE_NO_PAD
                .decode(segment)
                .map_err(|_| malformed(&format!("the {name} is not base64url without padding")))
        };
        let header = decode(header, "header")?;
        let payload = decode(payload, "payload")?;
        let signature = decode(signature, "signature")?;
        let signing_input = token
            .rsplit_once('.')
            .map_or(token, |(signing_input, _)| signing_input);
        Ok(Self {
            signing_input,
            header,
            payload,
            signature,
        })
    }
}

fn malformed(reason: &str) -> JwsError {
    JwsError::Malformed(reason.to_owned())
}

/// The header, checked for its algorithm and for `crit` in that order.
fn parse_header(bytes: &[u8]) -> Result<Header, JwsError> {
    let StrictObject(members) = serde_json::from_slice(bytes).map_err(|e| {
        malformed(&format!(
            "the header is not a JSON object: {}",
            clip(&e.to_string())
        ))
    })?;
    let string = |name: &str| match members.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(&format!(
            "header member `{name}` is not a string"
        ))),
    };
    let alg = string("alg")?.ok_or_else(|| malformed("the header has no `alg`"))?;
    // Only algorithms some key signs with; `none` and the HMACs never verify here. Whether it
    // is the algorithm of the key the `kid` names is checked once the key is found.
    if Algorithm::from_name(&alg).is_none() {
        return Err(JwsError::Algorithm(clip(&alg)));
    }
    // RFC 7515 §4.1.11: a recipient that does not understand every listed extension must
    // reject the token, and Baton understands none (`b64` of RFC 7797 included).
    if members.contains_key("crit") {
        return Err(JwsError::Unsupported("crit".to_owned()));
    }
    Ok(Header {
        alg,
        typ: string("typ")?,
        kid: string("kid")?,
    })
}

/// RFC 7515 §4.1.9: media types compare case-insensitively and `application/` may be omitted.
pub fn same_typ(found: &str, allowed: &str) -> bool {
    fn bare(typ: &str) -> &str {
        match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        }
    }
    bare(found).eq_ignore_ascii_case(bare(allowed))
}

/// Token contents echoed into an error are cut short: they come from whoever sent the token.
pub(crate) fn clip(text: &str) -> String {
    const MAX_CHARS: usize = 80;
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// A JSON object that refuses duplicate members, which RFC 7515 §4 allows a parser to refuse:
/// two `alg` members must not let two parsers read two different headers.
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrictVisitor;

        impl<'de> Visitor<'de> for StrictVisitor {
            type Value = StrictObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut members = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate member `{}`",
                            clip(&name)
                        )));
                    }
                    members.insert(name, value);
                }
                Ok(StrictObject(members))
            }
        }

        deserializer.deserialize_map(StrictVisitor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate()
    }

    fn keys_of(key: &SigningKey) -> KeySet {
        KeySet::new(vec![key.public()])
    }

    fn claims() -> Value {
        json!({"iss": "baton", "sub": "alice", "scope": "read"})
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with a hand-made header, correctly signed by `key`, so that only the header is off.
    fn signed_with_header(key: &SigningKey, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig))
    }

    fn header_with(key: &SigningKey, members: Value) -> String {
        let mut header =
            json!({"alg": key.algorithm().name(), "typ": VERDICT_TYP, "kid": key.kid()});
        if let (Some(h), Some(m)) = (header.as_object_mut(), members.as_object()) {
            for (name, value) in m {
                if value.is_null() {
                    h.remove(name);
                } else {
                    h.insert(name.clone(), value.clone());
                }
            }
        }
        header.to_string()
    }

    fn verify_value(token: &str, keys: &KeySet, typs: &[&str]) -> Result<Value, JwsError> {
        verify::<Value>(token, keys, typs).map(|(_, claims)| claims)
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = key();
        let token = sign(&key, VERDICT_TYP, &claims()).unwrap();
        let (header, back) = verify::<Value>(&token, &keys_of(&key), &[VERDICT_TYP]).unwrap();
        assert_eq!(back, claims());
        assert_eq!(
            header,
            Header {
                alg: "EdDSA".to_owned(),
                typ: Some(VERDICT_TYP.to_owned()),
                kid: Some(key.kid().to_owned()),
            }
        );
        let raw_header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        assert_eq!(
            String::from_utf8(raw_header).unwrap(),
            format!(
                r#"{{"alg":"EdDSA","typ":"{VERDICT_TYP}","kid":"{}"}}"#,
                key.kid()
            )
        );
    }

    #[test]
    fn the_fully_specified_algorithm_name_is_accepted() {
        let key = key();
        let token = signed_with_header(
            &key,
            &header_with(&key, json!({"alg": "Ed25519"})),
            &claims().to_string(),
        );
        assert!(verify_value(&token, &keys_of(&key), &[VERDICT_TYP]).is_ok());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let key = key();
        for alg in [
            "none", "HS256", "RS384", "PS256", "ES384", "ES256K", "eddsa", "rs256", "",
        ] {
            let token = signed_with_header(
                &key,
                &header_with(&key, json!({"alg": alg})),
                &claims().to_string(),
            );
            let err = verify_value(&token, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
            assert_eq!(err, JwsError::Algorithm(alg.to_owned()), "{alg}");
            assert_eq!(err.code(), "ALGORITHM_NOT_ALLOWED");
        }
        // `alg: none` with an empty signature is refused as malformed before anything else.
        let unsigned = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(claims().to_string())
        );
        let err = verify_value(&unsigned, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err.code(), "TOKEN_MALFORMED");
        let no_alg = signed_with_header(&key, &header_with(&key, json!({"alg": null})), "{}");
        let err = verify_value(&no_alg, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err.code(), "TOKEN_MALFORMED");
    }

    /// A key of each kind; the RSA one is made once, which is the slow part.
    fn keys_of_every_kind() -> Vec<SigningKey> {
        static RSA: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
        let rsa = RSA.get_or_init(|| SigningKey::generate_rs256(2048).unwrap());
        vec![key(), rsa.clone(), SigningKey::generate_es256().unwrap()]
    }

    #[test]
    fn every_kind_of_key_signs_with_its_own_algorithm() {
        for key in keys_of_every_kind() {
            let token = sign(&key, ACCESS_TOKEN_TYP, &claims()).unwrap();
            let (header, back) =
                verify::<Value>(&token, &keys_of(&key), &[ACCESS_TOKEN_TYP]).unwrap();
            assert_eq!(back, claims());
            assert_eq!(header.alg, key.algorithm().name());
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            // A set of keys of every kind verifies each by its kid.
            let all = KeySet::new(
                keys_of_every_kind()
                    .iter()
                    .map(SigningKey::public)
                    .collect(),
            );
            let mixed = all.merged(&keys_of(&key));
            assert!(verify_value(&token, &mixed, &[ACCESS_TOKEN_TYP]).is_ok());
        }
    }

    #[test]
    fn the_header_alg_must_be_the_keys() {
        // Algorithm confusion: a header naming another algorithm than the key's is refused
        // before its signature is looked at, whichever algorithm signed it.
        let keys = keys_of_every_kind();
        for key in &keys {
            for signer in &keys {
                for alg in ["EdDSA", "Ed25519", "RS256", "ES256"] {
                    if Algorithm::from_name(alg) == Some(key.algorithm()) {
                        continue;
                    }
                    let header = header_with(key, json!({"alg": alg}));
                    let token = signed_with_header(signer, &header, &claims().to_string());
                    let err = verify_value(&token, &keys_of(key), &[VERDICT_TYP]).unwrap_err();
                    assert_eq!(
                        err,
                        JwsError::KeyAlgorithm {
                            alg: alg.to_owned(),
                            kid: key.kid().to_owned(),
                            expected: key.algorithm(),
                        }
                    );
                    assert_eq!(err.code(), "ALGORITHM_NOT_ALLOWED");
                    assert!(err.to_string().contains(&format!("`{alg}`")), "{err}");
                }
            }
        }
    }

    #[test]
    fn a_signature_by_another_key_of_the_same_kind_is_refused() {
        let rsa = keys_of_every_kind().remove(1);
        for (trusted, attacker) in [
            (
                SigningKey::generate_es256().unwrap(),
                SigningKey::generate_es256().unwrap(),
            ),
            (rsa, SigningKey::generate_rs256(2048).unwrap()),
        ] {
            let header = header_with(&trusted, json!({"alg": trusted.algorithm().name()}));
            let token = signed_with_header(&attacker, &header, &claims().to_string());
            assert_eq!(
                verify_value(&token, &keys_of(&trusted), &[VERDICT_TYP]),
                Err(JwsError::Signature)
            );
            // Nor is a signature of the right key cut short or over other bytes.
            let token = sign(&trusted, VERDICT_TYP, &claims()).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            let short = format!("{input}.{}", b64(&sig[..sig.len() - 1]));
            assert_eq!(
                verify_value(&short, &keys_of(&trusted), &[VERDICT_TYP]),
                Err(JwsError::Signature)
            );
        }
    }

    #[test]
    fn crit_is_refused() {
        let key = key();
        let token = signed_with_header(
            &key,
            &header_with(&key, json!({"crit": ["b64"], "b64": false})),
            &claims().to_string(),
        );
        let err = verify_value(&token, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err, JwsError::Unsupported("crit".to_owned()));
        assert_eq!(err.code(), "CRITICAL_HEADER_UNSUPPORTED");
    }

    #[test]
    fn the_type_must_be_allowed() {
        let key = key();
        let payload = claims().to_string();
        let missing = signed_with_header(&key, &header_with(&key, json!({"typ": null})), &payload);
        let err = verify_value(&missing, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err.code(), "WRONG_TOKEN_TYPE");
        assert!(err.to_string().contains("no `typ`"), "{err}");

        let verdict = sign(&key, VERDICT_TYP, &claims()).unwrap();
        let err = verify_value(&verdict, &keys_of(&key), &[ACCESS_TOKEN_TYP]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token type `baton-verdict+jwt` is not `at+jwt`"
        );
        let jwt = signed_with_header(&key, &header_with(&key, json!({"typ": "JWT"})), &payload);
        let err = verify_value(&jwt, &keys_of(&key), &[VERDICT_TYP, ACCESS_TOKEN_TYP]).unwrap_err();
        assert_eq!(err.code(), "WRONG_TOKEN_TYPE");
    }

    #[test]
    fn the_type_compares_case_insensitively_without_application_prefix() {
        let key = key();
        let payload = claims().to_string();
        for typ in ["AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
            let token = signed_with_header(&key, &header_with(&key, json!({"typ": typ})), &payload);
            assert!(
                verify_value(&token, &keys_of(&key), &[ACCESS_TOKEN_TYP]).is_ok(),
                "{typ}"
            );
        }
        let token = sign(&key, "at+jwt", &claims()).unwrap();
        assert!(verify_value(&token, &keys_of(&key), &["application/AT+JWT"]).is_ok());
        for typ in ["text/at+jwt", "application/", "at+jwt ", "é"] {
            let token = signed_with_header(&key, &header_with(&key, json!({"typ": typ})), &payload);
            assert!(
                verify_value(&token, &keys_of(&key), &[ACCESS_TOKEN_TYP]).is_err(),
                "{typ}"
            );
        }
    }

    #[test]
    fn the_key_must_be_known() {
        let key = key();
        let token = sign(&key, VERDICT_TYP, &claims()).unwrap();
        let other = keys_of(&SigningKey::generate());
        let err = verify_value(&token, &other, &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err, JwsError::UnknownKey(Some(key.kid().to_owned())));
        assert_eq!(err.code(), "UNKNOWN_KEY");
        let no_kid = signed_with_header(&key, &header_with(&key, json!({"kid": null})), "{}");
        let err = verify_value(&no_kid, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err, JwsError::UnknownKey(None));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let key = key();
        let token = sign(&key, VERDICT_TYP, &claims()).unwrap();
        let (header, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!(
            "{header}.{}.{sig}",
            b64(json!({"iss": "baton", "sub": "mallory", "scope": "read"}).to_string())
        );
        let err = verify_value(&forged, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err, JwsError::Signature);
        assert_eq!(err.code(), "SIGNATURE_INVALID");
    }

    #[test]
    fn a_tampered_or_short_signature_is_refused() {
        let key = key();
        let token = sign(&key, VERDICT_TYP, &claims()).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        bytes[10] ^= 1;
        let flipped = format!("{input}.{}", b64(&bytes));
        assert_eq!(
            verify_value(&flipped, &keys_of(&key), &[VERDICT_TYP]),
            Err(JwsError::Signature)
        );
        let short = format!("{input}.{}", b64(&bytes[..63]));
        assert_eq!(
            verify_value(&short, &keys_of(&key), &[VERDICT_TYP]),
            Err(JwsError::Signature)
        );
    }

    #[test]
    fn a_signature_by_another_key_with_the_same_kid_is_refused() {
        let trusted = key();
        let attacker = key();
        let header = header_with(&trusted, json!({}));
        let token = signed_with_header(&attacker, &header, &claims().to_string());
        assert_eq!(
            verify_value(&token, &keys_of(&trusted), &[VERDICT_TYP]),
            Err(JwsError::Signature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = key();
        let token = sign(&key, VERDICT_TYP, &claims()).unwrap();
        let (h, rest) = token.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let obj_not = signed_with_header(&key, "[1]", "{}");
        let dup = signed_with_header(
            &key,
            &format!(
                r#"{{"alg":"EdDSA","alg":"none","typ":"{VERDICT_TYP}","kid":"{}"}}"#,
                key.kid()
            ),
            "{}",
        );
        let not_claims = signed_with_header(&key, &header_with(&key, json!({})), "[]");
        let cases = [
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}..{s}"),
            format!(".{p}.{s}"),
            format!("{h}.{p}="),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}.{s}=="),
            format!("{h}.{p}+.{s}"),
            // A standard-alphabet character in the signature; replacing `-` and `_` with `/`
            // would leave a signature without either valid (one key in fifteen).
            format!("{h}.{p}./{}", &s[1..]),
            format!("{h}.{p}!.{s}"),
            String::new(),
            "...".to_owned(),
            obj_not,
            dup,
        ];
        for case in &cases {
            let err = verify_value(case, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
            assert_eq!(err.code(), "TOKEN_MALFORMED", "{case}: {err}");
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Needs {
            exp: u64,
        }
        let err = verify::<Needs>(&not_claims, &keys_of(&key), &[VERDICT_TYP]).unwrap_err();
        assert_eq!(err.code(), "TOKEN_MALFORMED");
    }

    #[test]
    fn oversized_tokens_are_refused_before_decoding() {
        let key = key();
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            verify_value(&huge, &keys_of(&key), &[VERDICT_TYP]),
            Err(JwsError::TooLarge {
                len: MAX_TOKEN_BYTES + 1
            })
        );
        let big_claims = json!({"pad": "x".repeat(MAX_TOKEN_BYTES)});
        let err = sign(&key, VERDICT_TYP, &big_claims).unwrap_err();
        assert_eq!(err.code(), "TOKEN_TOO_LARGE");
    }

    #[test]
    fn rotated_keys_verify_while_published() {
        // Rotation: a set with the old and the new key verifies tokens of both.
        let old = key();
        let new = key();
        let set = KeySet::new(vec![new.public(), old.public()]);
        for signer in [&old, &new] {
            let token = sign(signer, VERDICT_TYP, &claims()).unwrap();
            assert!(verify_value(&token, &set, &[VERDICT_TYP]).is_ok());
        }
        let only_new = KeySet::new(vec![new.public()]);
        let token = sign(&old, VERDICT_TYP, &claims()).unwrap();
        assert_eq!(
            verify_value(&token, &only_new, &[VERDICT_TYP])
                .unwrap_err()
                .code(),
            "UNKNOWN_KEY"
        );
    }

    proptest! {
        #[test]
        fn verify_never_panics_on_any_string(token in ".{0,300}") {
            let key = SigningKey::generate();
            let _ = verify_value(&token, &keys_of(&key), &[VERDICT_TYP]);
        }

        #[test]
        fn verify_never_panics_on_token_shaped_strings(token in "[A-Za-z0-9_=.-]{0,300}") {
            let key = SigningKey::generate();
            let _ = verify_value(&token, &keys_of(&key), &[VERDICT_TYP]);
        }

        #[test]
        fn verify_never_panics_on_arbitrary_headers(
            header in any::<Vec<u8>>(),
            payload in any::<Vec<u8>>(),
        ) {
            let key = SigningKey::generate();
            let input = format!("{}.{}", b64(&header), b64(&payload));
            let token = format!("{input}.{}", b64(key.sign(input.as_bytes()).unwrap()));
            let _ = verify_value(&token, &keys_of(&key), &[VERDICT_TYP]);
        }

        #[test]
        fn a_single_changed_byte_never_verifies(index in 0usize..1000, byte in any::<u8>()) {
            let key = SigningKey::generate();
            let token = sign(&key, VERDICT_TYP, &claims()).unwrap();
            let mut bytes = token.clone().into_bytes();
            let index = index % bytes.len();
            prop_assume!(bytes[index] != byte);
            bytes[index] = byte;
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert!(verify_value(&changed, &keys_of(&key), &[VERDICT_TYP]).is_err());
            }
        }
    }
}
