//! `baton authorize` speaks TLS to an `https://` server with `--ca`, and presents
//! `--client-cert`/`--client-key` where the port requires a client certificate.

use std::process::Command;

use baton::tls::ClientAuth;

use crate::listeners::{listener, start_tls};
use crate::pki::Pki;
use crate::spawn::server_dir;

fn authorize(server: &str, tls: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("authorize")
        .args(["--server", server])
        .args(tls)
        .args(["--caller", "User:alice", "--callee", "Agent:user-assistant"])
        .args(["--principal", "User:alice", "--scope", "reports.generate"])
        .env_remove("BATON_CA")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_asks_over_tls_with_its_ca_and_certificate() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let client = pki.server("cli");
    let dir = server_dir();
    let tls = listener(&server).with_clients(pki.ca_file(), ClientAuth::Required);
    let app = start_tls(&dir, tls, |_| {}).await;
    let url = format!("https://{}", app.decision_addr);
    let ca = pki.ca_file();
    let ca = ca.to_str().unwrap();
    let (cert, key) = (client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    let url2 = url.clone();
    let ca2 = ca.to_owned();
    let (cert2, key2) = (cert.to_owned(), key.to_owned());
    let allowed = tokio::task::spawn_blocking(move || {
        authorize(
            &url2,
            &["--ca", &ca2, "--client-cert", &cert2, "--client-key", &key2],
        )
    })
    .await
    .unwrap();
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let url2 = url.clone();
    let ca2 = ca.to_owned();
    let without_cert = tokio::task::spawn_blocking(move || authorize(&url2, &["--ca", &ca2]))
        .await
        .unwrap();
    assert_eq!(without_cert.status.code(), Some(1));
    // Certificates for a plaintext URL are a mistake, refused before connecting.
    let plain = format!("http://{}", app.decision_addr);
    let ca2 = ca.to_owned();
    let mixed = tokio::task::spawn_blocking(move || authorize(&plain, &["--ca", &ca2]))
        .await
        .unwrap();
    assert_eq!(mixed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("https://"));
}

/// `baton demo-pki` writes a CA and certificates a Baton serves with and a client presents;
/// run again, it leaves them alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_pki_writes_what_a_tls_baton_and_its_clients_use() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["demo-pki", "--out"])
            .arg(&out)
            .args(["--server-name", "baton-1"])
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    let ca = std::fs::read(out.join("ca.pem")).unwrap();
    assert!(run().status.success());
    assert_eq!(
        std::fs::read(out.join("ca.pem")).unwrap(),
        ca,
        "a second run rewrote the CA"
    );

    let mut tls = baton::tls::ListenerTls::new(out.join("server.pem"), out.join("server.key"))
        .with_clients(out.join("ca.pem"), ClientAuth::Required);
    tls.reload_interval = std::time::Duration::from_secs(1);
    let server_dir = server_dir();
    let app = start_tls(&server_dir, tls, |_| {}).await;
    let agent = crate::pki::Files {
        cert: out.join("agent-user-assistant.pem"),
        key: out.join("agent-user-assistant.key"),
        issued: baton::tls::pki::CertificateAuthority::generate(
            "unused",
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .issue(&baton::tls::pki::Subject::localhost())
        .unwrap(),
    };
    let channel = crate::clients::connect(app.decision_addr, &out.join("ca.pem"), Some(&agent))
        .await
        .unwrap();
    assert!(crate::clients::allowed(&channel).await.unwrap());
}

/// `baton serve` with TLS flags that do not fit together stops before listening, naming the
/// flag at fault.
#[test]
fn serve_refuses_tls_flags_that_do_not_fit_naming_the_flag() {
    let pki = Pki::new();
    let server = pki.server("baton");
    let (cert, key) = (server.cert.to_str().unwrap(), server.key.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_baton"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .arg("--store-dir")
            .arg(dir.path())
            .args(["--bundle", concat!(env!("CARGO_MANIFEST_DIR"), "/policies")])
            .args(extra)
            .env_remove("BATON_ADMIN_TOKEN")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--client-auth",
        "required",
    ]);
    assert!(err.contains("--client-ca"), "{err}");
    let err = serve(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--workload-identity",
        "spiffe://corp.example/agent/{id}=Agent:{id}",
    ]);
    assert!(err.contains("--client-ca"), "{err}");
    let ca = pki.ca_file();
    let ca = ca.to_str().unwrap();
    let err = serve(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--client-ca",
        ca,
        "--workload-identity",
        "spiffe://corp.example/agent=Agent:{id}",
    ]);
    assert!(err.contains("--workload-identity"), "{err}");
    let err = serve(&["--gateway-cert", "edge=sha256:abc"]);
    assert!(err.contains("--gateway-cert"), "{err}");
    let err = serve(&[
        "--redis-url",
        "redis://127.0.0.1:1",
        "--redis-ca",
        "/nonexistent/ca.pem",
    ]);
    assert!(err.contains("--redis-ca"), "{err}");
}
