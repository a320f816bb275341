//! The DER and PEM forms of keys: PKCS#8 private keys (RFC 5208, RFC 5958), SPKI public keys
//! (RFC 5280 §4.1.2.7), RSA's structures (RFC 8017 appendix A.1) and P-256's (RFC 5915,
//! RFC 5480). This module only takes keys apart and puts them together; whether a key may be
//! used is decided in `keys`.

use pkcs8::der::asn1::{AnyRef, BitStringRef, UintRef};
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode as _, Encode as _};
use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use pkcs8::{ObjectIdentifier, PrivateKeyInfo};
use rsa::pkcs1;
use zeroize::Zeroizing;

/// id-Ed25519 (RFC 8410 §3).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// rsaEncryption (RFC 8017 appendix C): the algorithm of every RSA key, whatever it signs.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 §2.1.1), with the curve as its parameter.
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, NIST's P-256 (RFC 5480 §2.1.1.1).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The DER of a P-256 PKCS#8 v1 key before its 32 private bytes, as OpenSSL writes it:
/// `SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey, secp256r1 }, OCTET STRING { ECPrivateKey
/// { INTEGER 1, OCTET STRING (32) d, [1] BIT STRING (65) 04||x||y } } }` (RFC 5915 §3).
const PKCS8_P256_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
/// What comes between the private bytes and the public point in the same document.
const PKCS8_P256_MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

/// The DER of an Ed25519 PKCS#8 v1 key before its 32 private bytes (RFC 8410 §7):
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }`.
pub(super) const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// What a PKCS#8 private key holds, by its algorithm identifier.
pub(super) enum Private<'a> {
    /// An Ed25519 key, for ed25519-dalek to read.
    Ed25519,
    /// An RSA key and its modulus, whose size is checked before ring reads the key.
    Rsa {
        /// The modulus, big-endian without leading zeros.
        modulus: &'a [u8],
    },
    /// A P-256 key, for ring to read.
    P256,
}

/// What an SPKI public key holds.
pub(super) enum Public<'a> {
    /// The 32 bytes of RFC 8032's encoding.
    Ed25519(&'a [u8]),
    /// The modulus and the exponent, big-endian without leading zeros.
    Rsa {
        /// The modulus.
        n: &'a [u8],
        /// The public exponent.
        e: &'a [u8],
    },
    /// The point as SEC 1 encodes it (`04 || x || y` uncompressed).
    P256(&'a [u8]),
}

/// The kinds of key this module knows.
enum Kind {
    Ed25519,
    Rsa,
    P256,
}

fn kind(algorithm: &AlgorithmIdentifierRef<'_>) -> Result<Kind, String> {
    let oid = algorithm.oid;
    if oid == ED25519 {
        Ok(Kind::Ed25519)
    } else if oid == RSA_ENCRYPTION {
        Ok(Kind::Rsa)
    } else if oid == EC_PUBLIC_KEY {
        match algorithm.parameters_oid() {
            Ok(curve) if curve == SECP256R1 => Ok(Kind::P256),
            Ok(curve) => Err(format!(
                "the elliptic curve `{curve}` is not supported; only P-256 is"
            )),
            Err(_) => Err("the elliptic curve key names no curve".to_owned()),
        }
    } else {
        Err(format!(
            "the key algorithm `{oid}` is not supported; Ed25519, RSA and P-256 are"
        ))
    }
}

/// Decodes a PEM document into its label and DER.
pub(super) fn pem_decode(pem: &str) -> Result<(String, Zeroizing<Vec<u8>>), String> {
    let (label, der) =
        pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| e.to_string())?;
    Ok((label.to_owned(), Zeroizing::new(der)))
}

/// Encodes DER as a PEM document with `label`, lines ending in LF.
pub(super) fn pem_encode(label: &str, der: &[u8]) -> Result<String, String> {
    pkcs8::der::pem::encode_string(label, LineEnding::LF, der).map_err(|e| e.to_string())
}

/// The kind of a PKCS#8 private key (v1, or v2 with its public key).
pub(super) fn private_key(der: &[u8]) -> Result<Private<'_>, String> {
    let info =
        PrivateKeyInfo::try_from(der).map_err(|e| format!("not a PKCS#8 private key: {e}"))?;
    Ok(match kind(&info.algorithm)? {
        Kind::Ed25519 => Private::Ed25519,
        Kind::Rsa => {
            let key = pkcs1::RsaPrivateKey::from_der(info.private_key)
                .map_err(|e| format!("not a PKCS#1 RSA private key: {e}"))?;
            Private::Rsa {
                modulus: key.modulus.as_bytes(),
            }
        }
        Kind::P256 => Private::P256,
    })
}

/// The key of an SPKI document.
pub(super) fn public_key(der: &[u8]) -> Result<Public<'_>, String> {
    let spki = SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|e| format!("not an SPKI public key: {e}"))?;
    let bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "the public key is not a whole number of bytes".to_owned())?;
    Ok(match kind(&spki.algorithm)? {
        Kind::Ed25519 => Public::Ed25519(bytes),
        Kind::Rsa => {
            let key = pkcs1::RsaPublicKey::from_der(bytes)
                .map_err(|e| format!("not a PKCS#1 RSA public key: {e}"))?;
            Public::Rsa {
                n: key.modulus.as_bytes(),
                e: key.public_exponent.as_bytes(),
            }
        }
        Kind::P256 => Public::P256(bytes),
    })
}

/// An SPKI document of `public`.
pub(super) fn spki_der(public: &Public<'_>) -> Result<Vec<u8>, String> {
    let rsa_key;
    let curve = SECP256R1;
    let (algorithm, key): (AlgorithmIdentifierRef<'_>, &[u8]) = match public {
        Public::Ed25519(x) => (
            AlgorithmIdentifierRef {
                oid: ED25519,
                parameters: None,
            },
            x,
        ),
        Public::Rsa { n, e } => {
            rsa_key = pkcs1::RsaPublicKey {
                modulus: uint(n)?,
                public_exponent: uint(e)?,
            }
            .to_der()
            .map_err(|e| e.to_string())?;
            (
                AlgorithmIdentifierRef {
                    oid: RSA_ENCRYPTION,
                    // RFC 8017 appendix C: the parameters are NULL.
                    parameters: Some(AnyRef::NULL),
                },
                &rsa_key,
            )
        }
        Public::P256(point) => (
            AlgorithmIdentifierRef {
                oid: EC_PUBLIC_KEY,
                parameters: Some(AnyRef::from(&curve)),
            },
            point,
        ),
    };
    SubjectPublicKeyInfoRef {
        algorithm,
        subject_public_key: BitStringRef::from_bytes(key).map_err(|e| e.to_string())?,
    }
    .to_der()
    .map_err(|e| e.to_string())
}

/// The members of an RSA private key (RFC 7518 §6.3.2), each big-endian.
pub(super) struct RsaPrivateParts<'a> {
    pub n: &'a [u8],
    pub e: &'a [u8],
    pub d: &'a [u8],
    pub p: &'a [u8],
    pub q: &'a [u8],
    pub dp: &'a [u8],
    pub dq: &'a [u8],
    pub qi: &'a [u8],
}

/// A PKCS#8 v1 document of a two-prime RSA key.
pub(super) fn rsa_pkcs8(parts: &RsaPrivateParts<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
    let pkcs1 = pkcs1::RsaPrivateKey {
        modulus: uint(parts.n)?,
        public_exponent: uint(parts.e)?,
        private_exponent: uint(parts.d)?,
        prime1: uint(parts.p)?,
        prime2: uint(parts.q)?,
        exponent1: uint(parts.dp)?,
        exponent2: uint(parts.dq)?,
        coefficient: uint(parts.qi)?,
        other_prime_infos: None,
    }
    .to_der()
    .map(Zeroizing::new)
    .map_err(|e| e.to_string())?;
    let algorithm = AlgorithmIdentifierRef {
        oid: RSA_ENCRYPTION,
        parameters: Some(AnyRef::NULL),
    };
    PrivateKeyInfo::new(algorithm, &pkcs1)
        .to_der()
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

/// A PKCS#8 v1 document of the P-256 key `d` whose public point is `04 || x || y`, as
/// OpenSSL writes it (the public key is in it: ring requires it and checks it against `d`).
pub(super) fn p256_pkcs8(d: &[u8; 32], x: &[u8; 32], y: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new(Vec::with_capacity(138));
    der.extend_from_slice(&PKCS8_P256_PREFIX);
    der.extend_from_slice(d);
    der.extend_from_slice(&PKCS8_P256_MIDDLE);
    der.push(0x04);
    der.extend_from_slice(x);
    der.extend_from_slice(y);
    der
}

/// A PKCS#8 v1 document of the Ed25519 key `seed`.
pub(super) fn ed25519_pkcs8(seed: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new(Vec::with_capacity(PKCS8_V1_ED25519_PREFIX.len() + 32));
    der.extend_from_slice(&PKCS8_V1_ED25519_PREFIX);
    der.extend_from_slice(seed);
    der
}

fn uint(bytes: &[u8]) -> Result<UintRef<'_>, String> {
    UintRef::new(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p256_template_is_well_formed_der() {
        let der = p256_pkcs8(&[1; 32], &[2; 32], &[3; 32]);
        assert_eq!(der.len(), 138);
        let info = PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        assert!(matches!(kind(&info.algorithm), Ok(Kind::P256)));
        // The ECPrivateKey inside: version 1, d, then the public key.
        assert_eq!(info.private_key.len(), 0x6d);
        assert_eq!(
            &info.private_key[..7],
            &[0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20]
        );
    }

    #[test]
    fn the_ed25519_template_is_well_formed_der() {
        let der = ed25519_pkcs8(&[7; 32]);
        let info = PrivateKeyInfo::try_from(der.as_slice()).unwrap();
        assert!(matches!(kind(&info.algorithm), Ok(Kind::Ed25519)));
    }

    #[test]
    fn unknown_algorithms_and_curves_are_named() {
        // P-384: id-ecPublicKey with secp384r1.
        let curve = ObjectIdentifier::new_unwrap("1.3.132.0.34");
        let p384 = AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&curve)),
        };
        let err = kind(&p384).err().unwrap();
        assert!(err.contains("`1.3.132.0.34`"), "{err}");
        let x25519 = AlgorithmIdentifierRef {
            oid: ObjectIdentifier::new_unwrap("1.3.101.110"),
            parameters: None,
        };
        let err = kind(&x25519).err().unwrap();
        assert!(err.contains("not supported"), "{err}");
    }
}
