//! `baton serve` as a child process with its logs in a file, and plain HTTP/1.1 probes.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::pb::decision_service_client::DecisionServiceClient;
use tonic::transport::Channel;

const BATON: &str = env!("CARGO_BIN_EXE_baton");
/// How long a server gets to become ready, or to exit.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Between probes; never a fixed wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A running `baton serve`, killed when dropped.
pub struct Baton {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("a bound address")
}

fn shipped_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

impl Baton {
    /// Serves the shipped bundle with `args` and `env` added, and returns once `/readyz`
    /// answers 200. Retries with new ports should another process take a free one first.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let log = dir.path().join("baton.log");
            let (grpc, http) = (free_addr(), free_addr());
            let child = Command::new(BATON)
                .arg("serve")
                .args(["--listen", &grpc.to_string()])
                .args(["--http-listen", &http.to_string()])
                .arg("--bundle")
                .arg(shipped_bundle())
                // Its own store and audit trail, never the working directory's.
                .arg("--store-dir")
                .arg(dir.path().join("store"))
                .arg("--audit-file")
                .arg(dir.path().join("audit.jsonl"))
                .arg("--audit-spool")
                .arg(dir.path().join("audit.spool.jsonl"))
                .args(args)
                .env_remove("BATON_LOG")
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .env_remove("OTEL_TRACES_SAMPLER")
                .env_remove("OTEL_TRACES_SAMPLER_ARG")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create the log file"))
                .spawn()
                .expect("start `baton serve`");
            let mut baton = Self {
                child,
                grpc,
                http,
                log,
                _dir: dir,
            };
            if baton.wait_ready() {
                return baton;
            }
        }
        panic!("`baton serve` did not become ready after 3 attempts");
    }

    fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if self.child.try_wait().expect("query the child").is_some() {
                return false;
            }
            if matches!(try_get(self.http, "/readyz"), Some((200, _))) {
                return true;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!("not ready in time:\n{}", self.logs());
    }

    pub async fn client(&self) -> DecisionServiceClient<Channel> {
        DecisionServiceClient::connect(format!("http://{}", self.grpc))
            .await
            .expect("connect to baton")
    }

    /// `GET path`: the status code and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        try_get(self.http, path).unwrap_or_else(|| panic!("GET {path} failed"))
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run `kill`");
        assert!(kill.success());
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Some(status) = self.child.try_wait().expect("query the child") {
                assert!(status.success(), "{status}:\n{}", self.logs());
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        panic!("no exit after SIGTERM:\n{}", self.logs());
    }

    /// The audit file the server appends to.
    #[allow(dead_code)] // not every test reads the trail
    pub fn audit_file(&self) -> PathBuf {
        self._dir.path().join("audit.jsonl")
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).expect("read the log file")
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.1 GET; `None` when nothing answers.
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}
