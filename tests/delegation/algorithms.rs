//! RS256 and ES256 beside Ed25519: keys of every kind from `baton keygen`, which OpenSSL loads;
//! a minter (`mint` and `serve`) and Baton itself signing with them; tokens that verify against
//! the published JWKS with ring alone, and that Baton accepts only under their key's algorithm.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton::pb::GetJwksRequest;
use baton::token::{KeySet, Keyring, PublicKey, SigningKey};
use serde_json::{Value, json};
use tonic::Code;

use crate::helpers::*;
use crate::token_endpoint::{GRANT, MinterServer, VERDICT_TYPE};

/// The algorithms `baton keygen --alg` takes and the JWK `kty` and JWS `alg` of their keys.
const KINDS: [(&str, &str, &str); 2] = [("rs256", "RSA", "RS256"), ("es256", "EC", "ES256")];

/// Runs `baton keygen` with `args`, which must succeed; returns the printed kid.
fn keygen(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("keygen")
        .args(args)
        .output()
        .expect("run baton keygen");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// A fresh key of `alg` made by `baton keygen`, its file and its JWKS file.
fn generated(dir: &Path, alg: &str) -> (SigningKey, PathBuf, PathBuf) {
    let key_file = dir.join(format!("{alg}.pem"));
    let jwks_file = dir.join(format!("{alg}.jwks.json"));
    let kid = keygen(&[
        "--alg",
        alg,
        "--out",
        key_file.to_str().unwrap(),
        "--jwks-out",
        jwks_file.to_str().unwrap(),
    ]);
    let key = SigningKey::from_file(&key_file).unwrap();
    assert_eq!(key.kid(), kid);
    (key, key_file, jwks_file)
}

/// Verifies `token`'s signature with ring against the key its `kid` names in `jwks`, reading
/// the JWK members by hand: nothing of Baton's verifier takes part. Returns the header.
fn verify_with_ring(token: &str, jwks: &Value) -> Value {
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
        UnparsedPublicKey,
    };
    let header = segment(token, 0);
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|jwk| jwk["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("no key {} in {jwks}", header["kid"]));
    assert_eq!(jwk["alg"], header["alg"], "the header's alg is its key's");
    let member = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let verified = match (
        jwk["kty"].as_str().unwrap(),
        header["alg"].as_str().unwrap(),
    ) {
        ("RSA", "RS256") => RsaPublicKeyComponents {
            n: member("n"),
            e: member("e"),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature),
        ("EC", "ES256") => {
            assert_eq!(jwk["crv"], "P-256");
            let point = [vec![0x04], member("x"), member("y")].concat();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &signature)
        }
        other => panic!("unexpected key and algorithm {other:?}"),
    };
    assert!(verified.is_ok(), "the signature of {token} does not verify");
    header
}

#[test]
fn keygen_writes_rs256_and_es256_keys_that_openssl_loads() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, kty, jws_alg) in KINDS {
        let (key, key_file, jwks_file) = generated(dir.path(), alg);
        let key_path = key_file.to_str().unwrap();
        openssl(&["pkey", "-in", key_path, "-noout"]);
        // OpenSSL's public key is the one published, under the same kid.
        let public = openssl(&["pkey", "-in", key_path, "-pubout"]);
        let published = KeySet::from_file(&jwks_file).unwrap();
        assert_eq!(
            KeySet::new(vec![PublicKey::from_pem(&public).unwrap()]),
            published,
            "{alg}: OpenSSL and the JWKS disagree"
        );
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(&jwks_file).unwrap()).unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str()),
            (Some(kty), Some(jws_alg))
        );
        assert_eq!(jwk["kid"], key.kid());
        assert!(jwk.get("d").is_none(), "only the public key is published");
    }
    // RSA keys are 2048 bits unless told otherwise, and never fewer.
    let text = openssl(&[
        "pkey",
        "-in",
        dir.path().join("rs256.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(text.starts_with("Private-Key: (2048 bit"), "{text}");
    let big = dir.path().join("big.pem");
    keygen(&[
        "--alg",
        "rs256",
        "--bits",
        "3072",
        "--out",
        big.to_str().unwrap(),
    ]);
    let text = openssl(&["pkey", "-in", big.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.starts_with("Private-Key: (3072 bit"), "{text}");
    let small = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["keygen", "--alg", "rs256", "--bits", "1024", "--out"])
        .arg(dir.path().join("small.pem"))
        .output()
        .unwrap();
    assert!(!small.status.success());
    assert!(!dir.path().join("small.pem").exists());
}

/// `token` with its header's `alg` replaced and its signature kept.
fn with_alg(token: &str, alg: &str) -> String {
    let mut header = segment(token, 0);
    header["alg"] = json!(alg);
    let signature = URL_SAFE_NO_PAD
        .decode(token.rsplit_once('.').unwrap().1)
        .unwrap();
    assemble(&header, &segment(token, 1), &signature)
}

fn first() -> baton::pb::AuthorizeRequest {
    first_hop("User:alice", "Agent:user-assistant", &["reports.generate"])
}

fn second(subject_token: &str) -> baton::pb::AuthorizeRequest {
    next_hop(
        "Agent:user-assistant",
        "Agent:data-analyst",
        subject_token,
        &["reports.generate"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minter_signing_rs256_or_es256_mints_tokens_that_verify_against_its_jwks() {
    let dir = tempfile::tempdir().unwrap();
    for (alg, _, jws_alg) in KINDS {
        let (key, key_file, _) = generated(dir.path(), alg);
        let key_path = key_file.to_str().unwrap().to_owned();
        let baton = spawn_baton_with(Options {
            minter_key: Some(key.clone()),
            ..Options::default()
        })
        .await;
        let printed = run_minter(
            ["jwks", "--key", &key_path].map(str::to_owned).to_vec(),
            None,
        )
        .await;
        assert!(printed.status.success(), "{}", stderr(&printed));
        let jwks: Value = serde_json::from_str(&stdout(&printed)).unwrap();
        assert_eq!(jwks["keys"][0]["alg"], jws_alg);

        // `baton-minter mint`, with the key file `baton keygen` wrote.
        let hop1 = baton.authorize(first()).await;
        assert_allowed(&hop1);
        let minted = run_minter(
            [
                "mint",
                "--baton",
                &baton.url,
                "--key",
                &key_path,
                "--issuer",
                MINTER_ISSUER,
            ]
            .map(str::to_owned)
            .to_vec(),
            Some(hop1.verdict.clone()),
        )
        .await;
        assert!(minted.status.success(), "{}", stderr(&minted));
        let token = stdout(&minted);

        // `baton-minter serve`, with the same key.
        let hop1 = baton.authorize(first()).await;
        assert_allowed(&hop1);
        let form = format!(
            "grant_type={GRANT}&subject_token={}&subject_token_type={VERDICT_TYPE}",
            hop1.verdict
        );
        let replay_file = dir.path().join(format!("{alg}.used.jsonl"));
        let (status, body) =
            tokio::task::block_in_place(|| MinterServer::start(&baton, &replay_file).post(&form));
        assert_eq!(status, 200, "{body}");
        let served = body["access_token"].as_str().unwrap().to_owned();

        for token in [&token, &served] {
            let header = verify_with_ring(token, &jwks);
            assert_eq!(header["alg"], jws_alg);
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(header["kid"], key.kid());
            // Baton trusts the minter's key: the token continues the chain...
            assert_allowed(&baton.authorize(second(token)).await);
            // ...under its key's algorithm and no other.
            for other in ["EdDSA", "Ed25519", "RS256", "ES256", "HS256", "none"] {
                if other == jws_alg {
                    continue;
                }
                assert_refused(
                    baton.try_authorize(second(&with_alg(token, other))).await,
                    Code::Unauthenticated,
                    "ALGORITHM_NOT_ALLOWED",
                );
            }
        }
    }
}

#[tokio::test]
async fn baton_signs_verdicts_with_an_rs256_or_es256_key_and_publishes_it() {
    let old = SigningKey::generate();
    for key in [
        SigningKey::generate_rs256(2048).unwrap(),
        SigningKey::generate_es256().unwrap(),
    ] {
        // A rotation from Ed25519 to the new kind: both keys are published.
        let baton = spawn_baton_with(Options {
            keyring: Some(Keyring::new(key.clone(), vec![old.public()])),
            ..Options::default()
        })
        .await;
        let jwks = baton
            .client
            .clone()
            .get_jwks(GetJwksRequest {})
            .await
            .unwrap()
            .into_inner()
            .jwks;
        let jwks: Value = serde_json::from_str(&jwks).unwrap();
        let published: Vec<(&str, &str)> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|jwk| (jwk["kty"].as_str().unwrap(), jwk["alg"].as_str().unwrap()))
            .collect();
        let (_, kty, alg) = KINDS
            .into_iter()
            .find(|(_, _, alg)| *alg == key.algorithm().name())
            .unwrap();
        assert_eq!(published, [(kty, alg), ("OKP", "EdDSA")]);

        let hop1 = baton.authorize(first()).await;
        assert_allowed(&hop1);
        let header = verify_with_ring(&hop1.verdict, &jwks);
        assert_eq!(header["typ"], "baton-verdict+jwt");
        assert_eq!(header["kid"], key.kid());
        // The verdict continues the chain, and the minter (which fetched the JWKS) redeems it.
        let hop2 = baton.authorize(second(&hop1.verdict)).await;
        assert_allowed(&hop2);
        assert_eq!(segment(&hop2.verdict, 0)["alg"], alg);
        baton.minter.mint(&hop2.verdict, now()).await.unwrap();
        // An EdDSA header on the new key's kid is refused, whatever its signature.
        let forged = with_alg(&hop1.verdict, "EdDSA");
        assert_refused(
            baton.try_authorize(second(&forged)).await,
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        );
    }
}
