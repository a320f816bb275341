//! The compose demo as processes, called the way the README calls it and from where its
//! callers are: not the replicas' loopback. Docker publishes ports through a bridge, so a
//! call from the host arrives from another address, and Baton's loopback trust rule (callers
//! on loopback may assert first hops) does not apply; the demo's first documented call must
//! work through its gateway token, and fail without it.
//!
//! The replicas run with the environment of `docker-compose.yml` itself (container paths
//! mapped to this checkout and to the keygen step's output), behind a veth pair: the callers
//! run in a network namespace of their own (`ip netns`, root only), where `baton-1` and
//! `baton-2` name the replicas as they do on the compose network.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;

const BATON: &str = env!("CARGO_BIN_EXE_baton");
const DEADLINE: Duration = Duration::from_secs(20);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    output
}

/// A network namespace joined to the host by a veth pair: the host side at `host`, the
/// namespace at `host + 1`. Removed when dropped.
struct Namespace {
    name: String,
    host: Ipv4Addr,
}

impl Namespace {
    fn create(hosts: &[&str]) -> Self {
        let id = std::process::id() % 200 + 20;
        let name = format!("baton-demo-{id}");
        let (outer, inner) = (format!("bd{id}h"), format!("bd{id}n"));
        let host = Ipv4Addr::new(10, 213, u8::try_from(id).unwrap(), 1);
        let guest = Ipv4Addr::new(10, 213, u8::try_from(id).unwrap(), 2);
        // Left over from a run that was killed: start clean.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &outer]).output();
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        ip(&["netns", "add", &name]);
        let namespace = Self { name, host };
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &namespace.name]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        let inside = |args: &[&str]| {
            run(Command::new("ip")
                .args(["netns", "exec", &namespace.name, "ip"])
                .args(args))
        };
        inside(&["addr", "add", &format!("{guest}/30"), "dev", &inner]);
        inside(&["link", "set", &inner, "up"]);
        inside(&["link", "set", "lo", "up"]);
        // `ip netns exec` mounts /etc/netns/NAME/hosts over /etc/hosts in the namespace.
        let etc = namespace.etc();
        std::fs::create_dir_all(&etc).unwrap();
        let names: String = hosts.iter().map(|h| format!("{host} {h}\n")).collect();
        std::fs::write(etc.join("hosts"), format!("127.0.0.1 localhost\n{names}")).unwrap();
        namespace
    }

    fn etc(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }

    /// `baton args` run inside the namespace.
    fn baton(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, BATON])
            .args(args)
            .env_remove("BATON_GATEWAY_TOKEN")
            .env_remove("BATON_SERVER")
            .output()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the pair.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(self.etc());
    }
}

/// The `environment` block of the compose file's `x-baton` anchor, as written.
fn compose_environment() -> BTreeMap<String, String> {
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut lines = compose
        .lines()
        .skip_while(|l| l.trim() != "environment: &baton-env")
        .skip(1);
    let mut env = BTreeMap::new();
    for line in lines.by_ref() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with("    ") {
            break;
        }
        let (key, value) = line.trim().split_once(": ").unwrap();
        env.insert(key.to_owned(), value.trim_matches('"').to_owned());
    }
    assert!(env.contains_key("BATON_LISTEN"), "{env:?}");
    env
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One replica of the demo, killed when dropped.
struct Replica {
    child: Child,
    grpc: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The compose environment with this machine's paths and addresses: what the `keys` volume,
/// the bind mounts, the `redis` service and the published ports are here.
fn environment(keys: &Path, redis: &str) -> BTreeMap<String, String> {
    let mut env = compose_environment();
    for value in env.values_mut() {
        *value = value
            .replace("${BATON_ADMIN_TOKEN:-demo-admin-token}", "demo-admin-token")
            .replace(
                "/etc/baton/policies",
                repo().join("policies").to_str().unwrap(),
            )
            .replace(
                "/etc/baton/gateway-tokens",
                repo().join("deploy/gateway-tokens").to_str().unwrap(),
            )
            .replace(
                "/etc/baton/gateway-mapping.toml",
                repo().join("deploy/gateway-mapping.toml").to_str().unwrap(),
            )
            .replace("/keys/", &format!("{}/", keys.display()));
    }
    env.insert("BATON_REDIS_URL".into(), redis.to_owned());
    // No collector here: the traces tests run that part of the topology.
    env.retain(|k, _| !k.starts_with("OTEL_"));
    env
}

fn start(env: &BTreeMap<String, String>, host: Ipv4Addr, data: &Path) -> Replica {
    let grpc = SocketAddr::from((host, free_port(host)));
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    std::fs::create_dir_all(data).unwrap();
    let log = data.join("baton.log");
    let child = Command::new(BATON)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        // Where compose publishes them: the decision port where callers reach it, HTTP and
        // admin on this host's loopback. The image's ENV puts the store and audit trail on
        // its data volume.
        .env("BATON_LISTEN", grpc.to_string())
        .env("BATON_HTTP_LISTEN", http.to_string())
        .env("BATON_ADMIN_LISTEN", admin.to_string())
        .env("BATON_STORE_DIR", data.join("store"))
        .env("BATON_AUDIT_FILE", data.join("audit.jsonl"))
        .env("BATON_AUDIT_SPOOL", data.join("audit.spool.jsonl"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut replica = Replica {
        child,
        grpc,
        admin,
        log,
    };
    let started = Instant::now();
    while TcpStream::connect(grpc).is_err() || TcpStream::connect(admin).is_err() {
        if let Some(status) = replica.child.try_wait().unwrap() {
            panic!(
                "a replica exited with {status}:\n{}",
                std::fs::read_to_string(&replica.log).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < DEADLINE, "a replica did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    replica
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {output:?}"))
}

#[test]
fn the_demos_documented_calls_work_from_outside_the_replicas_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // The `keys` volume, and the keygen service's command.
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    run(Command::new(BATON)
        .args(["keygen", "--out"])
        .arg(keys.join("verdicts.pem")));
    run(Command::new(BATON)
        .args(["demo-pki", "--out"])
        .arg(keys.join("pki"))
        .args(["--server-name", "baton-1,baton-2"]));
    let redis = RedisServer::start();
    let env = environment(&keys, &redis.url());
    run(Command::new(BATON)
        .args(["config", "check"])
        .env_clear()
        .envs(&env));

    let namespace = Namespace::create(&["baton-1", "baton-2"]);
    let replicas = [
        start(&env, namespace.host, &dir.path().join("baton-1")),
        start(&env, namespace.host, &dir.path().join("baton-2")),
    ];
    let ca = keys.join("pki/ca.pem");
    let ca = ca.to_str().unwrap();
    let first_hop = |server: &str, token: Option<&str>| {
        let mut args = vec![
            "authorize",
            "--server",
            server,
            "--ca",
            ca,
            "--caller",
            "User:alice",
            "--callee",
            "Agent:user-assistant",
            "--principal",
            "User:alice",
            "--scope",
            "reports.generate",
            "--json",
        ];
        if let Some(token) = token {
            args.extend(["--gateway-token", token]);
        }
        namespace.baton(&args)
    };

    for (name, replica) in ["baton-1", "baton-2"].iter().zip(&replicas) {
        let server = format!("https://{name}:{}", replica.grpc.port());
        // The README's first call: the edge gateway asserts alice's first hop.
        let answered = first_hop(&server, Some("demo-edge-gateway-token-0001"));
        assert_eq!(answered.status.code(), Some(0), "{answered:?}");
        let verdict = json(&answered)["verdict"].as_str().unwrap().to_owned();

        // The same call without the gateway's token is a stranger's assertion.
        let refused = first_hop(&server, None);
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("PermissionDenied") || stderr.contains("permission"),
            "{stderr}"
        );

        // The README's second call: alice's assistant, known by its certificate, presents
        // its verdict for the next hop.
        let pki = keys.join("pki");
        let next = namespace.baton(&[
            "authorize",
            "--server",
            &server,
            "--ca",
            ca,
            "--client-cert",
            pki.join("agent-user-assistant.pem").to_str().unwrap(),
            "--client-key",
            pki.join("agent-user-assistant.key").to_str().unwrap(),
            "--caller",
            "Agent:user-assistant",
            "--callee",
            "Agent:data-analyst",
            "--scope",
            "reports.generate",
            "--subject-token",
            &verdict,
            "--json",
        ]);
        assert_eq!(next.status.code(), Some(0), "{next:?}");

        // The healthcheck the compose file runs.
        let healthy = namespace.baton(&["health", "--server", &server, "--ca", ca]);
        assert!(healthy.status.success(), "{healthy:?}");
    }

    // The README's admin calls, on the host's loopback, with the admin certificate.
    let pki = keys.join("pki");
    let listed = run(Command::new(BATON)
        .args(["policy", "list"])
        .env(
            "BATON_ADMIN_SERVER",
            format!("https://localhost:{}", replicas[0].admin.port()),
        )
        .env("BATON_CA", ca)
        .env("BATON_CLIENT_CERT", pki.join("admin.pem"))
        .env("BATON_CLIENT_KEY", pki.join("admin.key"))
        .env_remove("BATON_ADMIN_TOKEN"));
    assert!(!listed.stdout.is_empty(), "{listed:?}");
}
