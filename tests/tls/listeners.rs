//! TLS on Baton's own listeners: plaintext refused where TLS is served, calls answered over
//! TLS, client certificates required where `--client-auth required`, and a rotated certificate
//! picked up without a restart while calls keep being answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use baton::app::Config;
use baton::tls::{ClientAuth, ListenerTls};

use crate::clients::{allowed, connect, https_get, served_certificate};
use crate::eventually::eventually;
use crate::pki::{Files, Pki};
use crate::spawn::{Running, config_in, server_dir, start};

/// The TLS settings of `server`, checked for rotation every 20 ms.
pub fn listener(server: &Files) -> ListenerTls {
    let mut tls = ListenerTls::new(&server.cert, &server.key);
    tls.reload_interval = Duration::from_millis(20);
    tls
}

/// A Baton serving TLS with `server`'s certificate on every port, `adjust`ed.
pub async fn start_tls(
    dir: &tempfile::TempDir,
    tls: ListenerTls,
    adjust: impl FnOnce(&mut Config),
) -> Running {
    let mut config = config_in(dir.path());
    config.tls.decision = Some(tls.clone());
    config.tls.http = Some(tls);
    adjust(&mut config);
    start(config).await
}

#[tokio::test]
async fn plaintext_is_refused_where_tls_is_served() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let dir = server_dir();
    let app = start_tls(&dir, listener(&server), |_| {}).await;
    let plain = tonic::transport::Endpoint::from_shared(app.url())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    match plain.connect().await {
        Err(_) => {}
        Ok(channel) => assert!(
            allowed(&channel).await.is_err(),
            "a plaintext call was answered on a TLS port"
        ),
    }
    let tls = connect(app.decision_addr, &pki.ca_file(), None)
        .await
        .unwrap();
    assert!(allowed(&tls).await.unwrap());
    // The HTTP port is TLS too.
    assert_eq!(
        https_get(app.http_addr, "/healthz", &pki.ca.cert_pem, None).await,
        Ok(200)
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_not_trusted() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let dir = server_dir();
    let app = start_tls(&dir, listener(&server), |_| {}).await;
    let other = Pki::new();
    assert!(
        connect(app.decision_addr, &other.ca_file(), None)
            .await
            .is_err()
            || allowed(
                &connect(app.decision_addr, &other.ca_file(), None)
                    .await
                    .unwrap()
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn required_client_auth_refuses_a_client_without_a_certificate() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let client = pki.server("client");
    let dir = server_dir();
    let tls = listener(&server).with_clients(pki.ca_file(), ClientAuth::Required);
    let app = start_tls(&dir, tls, |_| {}).await;
    let refused = match connect(app.decision_addr, &pki.ca_file(), None).await {
        Err(_) => true,
        Ok(channel) => allowed(&channel).await.is_err(),
    };
    assert!(refused, "a client without a certificate was answered");
    // A certificate of another CA is no better.
    let other = Pki::new();
    let stranger = other.server("stranger");
    let refused = match connect(app.decision_addr, &pki.ca_file(), Some(&stranger)).await {
        Err(_) => true,
        Ok(channel) => allowed(&channel).await.is_err(),
    };
    assert!(
        refused,
        "a client with a certificate of another CA was answered"
    );
    let with = connect(app.decision_addr, &pki.ca_file(), Some(&client))
        .await
        .unwrap();
    assert!(allowed(&with).await.unwrap());
    assert!(
        https_get(app.http_addr, "/healthz", &pki.ca.cert_pem, None)
            .await
            .is_err()
    );
    assert_eq!(
        https_get(app.http_addr, "/healthz", &pki.ca.cert_pem, Some(&client)).await,
        Ok(200)
    );
}

#[tokio::test]
async fn optional_client_auth_admits_both() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let client = pki.server("client");
    let dir = server_dir();
    let tls = listener(&server).with_clients(pki.ca_file(), ClientAuth::Optional);
    let app = start_tls(&dir, tls, |_| {}).await;
    for identity in [None, Some(&client)] {
        let channel = connect(app.decision_addr, &pki.ca_file(), identity)
            .await
            .unwrap();
        assert!(allowed(&channel).await.unwrap());
    }
}

#[tokio::test]
async fn client_auth_without_a_client_ca_stops_startup() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let dir = server_dir();
    let mut tls = listener(&server);
    tls.client_auth = ClientAuth::Required;
    let mut config = config_in(dir.path());
    config.tls.decision = Some(tls);
    let err = baton::app::Application::build(config).await.err().unwrap();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("--client-ca"), "{chain}");
}

#[tokio::test]
async fn a_key_that_does_not_match_stops_startup_naming_the_file() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let dir = server_dir();
    let mut config = config_in(dir.path());
    std::fs::write(&server.key, "not a key").unwrap();
    config.tls.decision = Some(listener(&server));
    let err = baton::app::Application::build(config).await.err().unwrap();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(
        chain.contains("--tls-key") && chain.contains("baton.key"),
        "{chain}"
    );
}

/// Writes a file whole, as cert-manager and SPIRE do: a reader never sees half of it.
fn replace(path: &std::path::Path, contents: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_picked_up_while_calls_continue() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let dir = server_dir();
    let app = start_tls(&dir, listener(&server), |_| {}).await;
    let addr = app.decision_addr;
    let before = served_certificate(addr, &pki.ca.cert_pem).await.unwrap();
    assert_eq!(before, server.issued.cert_der);

    // A load of its own: callers on one long-lived connection and callers that connect anew
    // for every call, all counting what failed.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut callers = Vec::new();
    for fresh in [false, false, true, true] {
        let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
        let ca = pki.ca_file();
        callers.push(tokio::spawn(async move {
            let mut channel = connect(addr, &ca, None).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    channel = match connect(addr, &ca, None).await {
                        Ok(channel) => channel,
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    };
                }
                match allowed(&channel).await {
                    Ok(true) => answered.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    eventually("calls are answered", || {
        answered.load(Ordering::Relaxed) > 20
    })
    .await;

    let rotated = pki
        .ca
        .issue(&baton::tls::pki::Subject::localhost())
        .unwrap();
    // The key first: until the certificate follows, the pair does not match and the old one
    // stays in service.
    replace(&server.key, &rotated.key_pem);
    replace(&server.cert, &rotated.cert_pem);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = served_certificate(addr, &pki.ca.cert_pem).await.unwrap();
        if now == rotated.cert_der {
            break;
        }
        assert_eq!(
            now, before,
            "served neither the old nor the new certificate"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotation was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_rotation = answered.load(Ordering::Relaxed);
    eventually("calls are answered after the rotation", || {
        answered.load(Ordering::Relaxed) > at_rotation + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "calls failed across the rotation"
    );
    app.stop().await.unwrap();
}

/// A client that connects and never says a word is dropped after the handshake timeout, and
/// holds up nobody meanwhile.
#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt as _;
    let pki = Pki::new();
    let server = pki.server("baton");
    let dir = server_dir();
    let mut tls = listener(&server);
    tls.handshake_timeout = Duration::from_millis(300);
    let app = start_tls(&dir, tls, |_| {}).await;
    let mut silent = tokio::net::TcpStream::connect(app.decision_addr)
        .await
        .unwrap();
    // Others are answered while it sits there.
    let channel = connect(app.decision_addr, &pki.ca_file(), None)
        .await
        .unwrap();
    assert!(allowed(&channel).await.unwrap());
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut byte))
        .await
        .expect("the server closed the silent connection");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
}
