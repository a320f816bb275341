//! `baton-minter serve`, the RFC 8693 token endpoint: one verdict redeemed twice across a
//! restart of the minter. Single use must hold, since the replay file outlives the process.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

pub const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
pub const VERDICT_TYPE: &str = "urn%3Abaton%3Aparams%3Aoauth%3Atoken-type%3Averdict";

/// A `baton-minter serve` process, killed when dropped.
pub struct MinterServer {
    child: Child,
    addr: SocketAddr,
}

impl MinterServer {
    pub fn start(baton: &Baton, replay_file: &std::path::Path) -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_baton-minter"))
            .args([
                "serve",
                "--listen",
                &addr.to_string(),
                "--baton",
                &baton.url,
            ])
            .arg("--key")
            .arg(&baton.minter_key_file)
            .args(["--issuer", MINTER_ISSUER])
            .arg("--replay-file")
            .arg(replay_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the minter did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, addr }
    }

    /// `POST /token` with `form`: the status code and the body.
    pub fn post(&self, form: &str) -> (u16, serde_json::Value) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        write!(
            stream,
            "POST /token HTTP/1.1\r\nHost: minter\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or_default())
    }
}

impl Drop for MinterServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_redeemed_twice_across_a_minter_restart_is_refused_the_second_time() {
    let baton = spawn_baton().await;
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("used.jsonl");
    let form = format!(
        "grant_type={GRANT}&subject_token={}&subject_token_type={VERDICT_TYPE}",
        hop1.verdict
    );

    let (first, refused) = tokio::task::block_in_place(|| {
        let minter = MinterServer::start(&baton, &file);
        let wrong_grant = minter.post("grant_type=password&subject_token=x");
        let first = minter.post(&form);
        drop(minter);
        let restarted = MinterServer::start(&baton, &file);
        let second = restarted.post(&form);
        assert_eq!(wrong_grant.0, 400);
        assert_eq!(wrong_grant.1["error"], "unsupported_grant_type");
        (first, second)
    });
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(
        first.1["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(first.1["token_type"], "Bearer");
    assert!(
        first.1["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert_eq!(refused.0, 400, "{}", refused.1);
    assert_eq!(refused.1["error"], "invalid_grant");
    assert!(
        refused.1["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with("REPLAYED")),
        "{}",
        refused.1
    );
}
