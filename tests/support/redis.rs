//! A real `redis-server` of its own for one test: started on a free port with persistence off,
//! ready once it answers `PING`, killed when dropped. Include it with `#[path]`.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server gets to answer `PING`; it takes a few milliseconds when healthy.
const READY_DEADLINE: Duration = Duration::from_secs(10);
/// The pause between `PING` attempts while the server starts.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Attempts with a new port, should another process take the free port before Redis binds it.
const START_ATTEMPTS: usize = 3;

pub struct RedisServer {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
}

/// The files a TLS-serving Redis is started with.
#[allow(dead_code)] // only the TLS tests use it
pub struct RedisTlsFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub ca: &'a std::path::Path,
    /// `tls-auth-clients yes`: a client must present a certificate the CA signed.
    pub require_client_cert: bool,
}

impl RedisServer {
    /// Starts `redis-server` and returns once it answers `PING`.
    #[allow(dead_code)] // the TLS tests start theirs with `start_tls`
    pub fn start() -> Self {
        for _ in 0..START_ATTEMPTS {
            if let Some(server) = Self::try_start_on(free_port()) {
                return server;
            }
        }
        panic!("redis-server did not answer PING after {START_ATTEMPTS} attempts");
    }

    /// Kills the server, as a crash would: clients see their connections drop.
    #[allow(dead_code)]
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server without closing anything (`SIGSTOP`): connections stay open and
    /// commands wait, as with a Redis that is alive but far too slow.
    #[allow(dead_code)]
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (`SIGCONT`).
    #[allow(dead_code)]
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("run `kill`");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts an empty server again on the same port, as after a crash and restart.
    #[allow(dead_code)]
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..START_ATTEMPTS {
            if let Some(fresh) = Self::try_start_on(self.port) {
                *self = fresh;
                return;
            }
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// Starts `redis-server` on `port`, for a test that points a client there before Redis runs.
    #[allow(dead_code)] // not every test crate starts Redis late
    pub fn start_on(port: u16) -> Self {
        Self::try_start_on(port)
            .unwrap_or_else(|| panic!("redis-server did not answer PING on port {port}"))
    }

    /// Starts `redis-server` serving TLS on a port of its own (`tls_url`), beside a
    /// plaintext port only readiness is checked on.
    #[allow(dead_code)] // only the TLS tests use it
    pub fn start_tls(files: &RedisTlsFiles<'_>) -> Self {
        for _ in 0..START_ATTEMPTS {
            let (port, tls_port) = (free_port(), free_port());
            let mut command = command(port);
            command
                .args(["--tls-port", &tls_port.to_string()])
                .arg("--tls-cert-file")
                .arg(files.cert)
                .arg("--tls-key-file")
                .arg(files.key)
                .arg("--tls-ca-cert-file")
                .arg(files.ca)
                .args([
                    "--tls-auth-clients",
                    if files.require_client_cert {
                        "yes"
                    } else {
                        "no"
                    },
                ]);
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start `redis-server`: {e}"));
            if wait_ready(&mut child, port) {
                return Self {
                    child,
                    port,
                    tls_port: Some(tls_port),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server with TLS did not start");
    }

    /// `rediss://` URL of the TLS port.
    #[allow(dead_code)] // only the TLS tests use it
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("started with TLS");
        format!("rediss://localhost:{port}/")
    }

    fn try_start_on(port: u16) -> Option<Self> {
        let mut child = spawn(port);
        if wait_ready(&mut child, port) {
            return Some(Self {
                child,
                port,
                tls_port: None,
            });
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    #[allow(dead_code)] // the TLS tests use `tls_url`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(port: u16) -> Command {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn spawn(port: u16) -> Child {
    command(port)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `redis-server` (is it installed?): {e}"))
}

/// A port nobody listens on right now: the one the kernel gives a bind to port 0.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a bound address").port()
}

/// Polls `PING` until `+PONG`, the deadline, or the server's exit (a port taken meanwhile).
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + READY_DEADLINE;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        if ping(port) {
            return true;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    false
}

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// A three-master Redis Cluster of the test's own, each node on its own free port, killed when
/// dropped.
#[allow(dead_code)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory for the cluster's node files");
        let mut nodes = Vec::new();
        while nodes.len() < 3 {
            // The cluster bus listens on the port plus 10000, which must exist and be free.
            let port = free_port();
            if port > 55_000 || TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
                continue;
            }
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                ])
                .arg("--cluster-config-file")
                .arg(dir.path().join(format!("nodes-{port}.conf")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a cluster node");
            if wait_ready(&mut child, port) {
                nodes.push(RedisServer {
                    child,
                    port,
                    tls_port: None,
                });
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stdout)
        );
        let deadline = Instant::now() + READY_DEADLINE;
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("run redis-cli cluster info");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never became ready");
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Self { nodes, _dir: dir }
    }

    /// Every node's URL: the seeds a client is given.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
