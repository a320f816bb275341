//! `rediss://`: the stores, the decision cache and the audit stream reach a Redis that serves
//! only TLS, trusting a private CA, with a client certificate when Redis asks for one.

use std::sync::Arc;

use baton::fleet::{Fleet, RedisSettings, RedisTls};

use crate::eventually::eventually;
use crate::pki::{Files, Pki};
use crate::redis_server::{RedisServer, RedisTlsFiles};

fn tls_redis(pki: &Pki, server: &Files, require_client_cert: bool) -> RedisServer {
    RedisServer::start_tls(&RedisTlsFiles {
        cert: &server.cert,
        key: &server.key,
        ca: &pki.ca_file(),
        require_client_cert,
    })
}

fn settings(url: String, tls: RedisTls) -> RedisSettings {
    RedisSettings {
        tls,
        // A TLS handshake on a busy test machine can take longer than the request-path default.
        op_timeout: std::time::Duration::from_secs(2),
        ..RedisSettings::new(vec![url])
    }
}

async fn answers(fleet: &Arc<Fleet>) -> bool {
    let pong: Option<String> = fleet.query("ping", &redis::cmd("PING")).await;
    pong.as_deref() == Some("PONG")
}

#[tokio::test]
async fn rediss_with_a_private_ca_connects_and_answers() {
    let pki = Pki::new();
    let server = pki.server("redis");
    let redis = tls_redis(&pki, &server, false);
    let tls = RedisTls {
        ca: Some(pki.ca.cert_pem.clone().into_bytes()),
        client: None,
    };
    let fleet = Fleet::start(settings(redis.tls_url(), tls)).unwrap();
    eventually("Redis answers over TLS", || fleet.is_up()).await;
    assert!(answers(&fleet).await);
}

#[tokio::test]
async fn a_server_the_ca_did_not_sign_is_never_used() {
    let pki = Pki::new();
    let server = pki.server("redis");
    let redis = tls_redis(&pki, &server, false);
    // Another CA: the server's certificate does not chain to it.
    let other = Pki::new();
    let tls = RedisTls {
        ca: Some(other.ca.cert_pem.clone().into_bytes()),
        client: None,
    };
    let fleet = Fleet::start(settings(redis.tls_url(), tls)).unwrap();
    for _ in 0..3 {
        assert!(!answers(&fleet).await, "an unverified server answered");
    }
    assert!(!fleet.is_up());
}

#[tokio::test]
async fn a_redis_that_requires_client_certificates_takes_ours() {
    let pki = Pki::new();
    let server = pki.server("redis");
    let redis = tls_redis(&pki, &server, true);
    let client = pki.server("baton");
    let ca = Some(pki.ca.cert_pem.clone().into_bytes());
    let without = Fleet::start(settings(
        redis.tls_url(),
        RedisTls {
            ca: ca.clone(),
            client: None,
        },
    ))
    .unwrap();
    assert!(
        !answers(&without).await,
        "answered a client without a certificate"
    );
    let with = Fleet::start(settings(
        redis.tls_url(),
        RedisTls {
            ca,
            client: Some((
                client.issued.cert_pem.into_bytes(),
                client.issued.key_pem.into_bytes(),
            )),
        },
    ))
    .unwrap();
    eventually("Redis answers a client with a certificate", || with.is_up()).await;
    assert!(answers(&with).await);
}

#[test]
fn certificates_for_a_plaintext_url_are_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let tls = RedisTls {
        ca: Some(b"-----BEGIN CERTIFICATE-----".to_vec()),
        client: None,
    };
    let err = Fleet::start(settings("redis://127.0.0.1:1/".to_owned(), tls))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("redis://127.0.0.1:1/"), "{err}");
}

/// The whole application on a TLS-only Redis: its bundle store, revocations, cache and audit
/// stream all go through `rediss://`.
#[tokio::test]
async fn the_application_keeps_its_state_in_a_tls_only_redis() {
    let pki = Pki::new();
    let server = pki.server("redis");
    let redis = tls_redis(&pki, &server, false);
    let tls = RedisTls {
        ca: Some(pki.ca.cert_pem.clone().into_bytes()),
        client: None,
    };
    let dir = crate::spawn::server_dir();
    let mut config = crate::spawn::config_in(dir.path());
    config.redis = Some(settings(redis.tls_url(), tls.clone()));
    config.audit.mode = baton::audit::AuditMode::Redis;
    let app = crate::spawn::start(config).await;
    let channel = tonic::transport::Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(crate::clients::allowed(&channel).await.unwrap());
    app.pipeline.audit().flush().await;
    let reader = Fleet::start(settings(redis.tls_url(), tls)).unwrap();
    eventually("the reader connects", || reader.is_up()).await;
    let records: Option<u64> = reader
        .query("xlen", redis::cmd("XLEN").arg("baton:audit"))
        .await;
    assert_eq!(
        records,
        Some(1),
        "the decision's audit record is in the TLS-only Redis"
    );
    let bundles: Option<Vec<String>> = reader
        .query("keys", redis::cmd("KEYS").arg("baton:*bundle*"))
        .await;
    assert!(
        !bundles.unwrap_or_default().is_empty(),
        "the bundle store seeded Redis"
    );
    app.stop().await.unwrap();
}
