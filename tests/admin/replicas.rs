//! Replicas as real processes sharing one Redis: a push reaches every replica, and a replica
//! restarted while Redis is down serves its last good bundle.

#[path = "../support/redis.rs"]
pub mod redis_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::governance_client::GovernanceClient;
use baton::pb::policy_admin_client::PolicyAdminClient;
use baton::pb::{self, Decision};
use redis_support::RedisServer;

use crate::helpers::{TOKEN, connect, forbidding_files, push_to, report, shipped_dir};

const BATON: &str = env!("CARGO_BIN_EXE_baton");
/// How long a replica gets to start listening.
const START_DEADLINE: Duration = Duration::from_secs(15);
/// The promise: every replica switches within a second of a push.
const SWITCH_DEADLINE: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(10);

/// Taken by the tests that time replicas against a deadline, and by the fault run, whose load
/// fills both cores for its whole length: they take turns rather than slow each other.
pub static TIMED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `baton serve` process with Redis and the admin API, killed when dropped.
pub struct Replica {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Replica {
    pub fn start(redis_url: &str, store: &Path) -> Self {
        Self::start_with(redis_url, store, &[])
    }

    /// A replica with `extra` arguments to `baton serve`.
    pub fn start_with(redis_url: &str, store: &Path, extra: &[&str]) -> Self {
        let (addr, admin) = (
            SocketAddr::from(([127, 0, 0, 1], free_port())),
            SocketAddr::from(([127, 0, 0, 1], free_port())),
        );
        // The replica's log, so a replica that exits says why.
        let log_path = store.join("replica.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = Command::new(BATON)
            .args(["serve", "--http-listen", "127.0.0.1:0"])
            .args(["--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--redis-url", redis_url, "--redis-prefix", "test"])
            .arg("--bundle")
            .arg(shipped_dir())
            .arg("--store-dir")
            .arg(store)
            // Its own spool: the default is relative to the working directory, which every
            // replica of a test shares.
            .arg("--audit-spool")
            .arg(store.join("audit.spool.jsonl"))
            .args(extra)
            .env("BATON_ADMIN_TOKEN", TOKEN)
            .env_remove("BATON_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() || TcpStream::connect(admin).is_err() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the replica exited: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            assert!(
                start.elapsed() < START_DEADLINE,
                "the replica did not start"
            );
            std::thread::sleep(POLL);
        }
        Self { child, addr, admin }
    }

    pub async fn decisions(&self) -> DecisionServiceClient<tonic::transport::Channel> {
        DecisionServiceClient::new(connect(&format!("http://{}", self.addr)).await)
    }

    pub async fn admin(&self) -> PolicyAdminClient<tonic::transport::Channel> {
        PolicyAdminClient::new(connect(&format!("http://{}", self.admin)).await)
    }

    /// Pushes (and so activates) a bundle that denies reports, returning what was pushed.
    async fn deny_reports(&self) -> pb::BundleInfo {
        push_to(
            &mut self.admin().await,
            forbidding_files(false),
            "deny reports",
        )
        .await
        .unwrap()
        .bundle
        .unwrap()
    }

    pub async fn governance(&self) -> GovernanceClient<tonic::transport::Channel> {
        GovernanceClient::new(connect(&format!("http://{}", self.admin)).await)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_replicas_sharing_redis_both_switch_within_a_second() {
    let _turn = TIMED.lock().await;
    let redis = RedisServer::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Replica::start(&redis.url(), dir_a.path());
    let b = Replica::start(&redis.url(), dir_b.path());
    let (mut on_a, mut on_b) = (a.decisions().await, b.decisions().await);
    let original = report(&mut on_a).await.bundle_version;
    assert_eq!(report(&mut on_b).await.bundle_version, original);

    let pushed = a.deny_reports().await;
    let pushed_at = Instant::now();
    for client in [&mut on_a, &mut on_b] {
        loop {
            let r = report(client).await;
            if r.bundle_version == pushed.version {
                assert_eq!(r.decision(), Decision::Deny);
                break;
            }
            assert_eq!(r.bundle_version, original, "only the old or the new bundle");
            assert!(
                pushed_at.elapsed() < SWITCH_DEADLINE,
                "a replica still serves the old bundle {SWITCH_DEADLINE:?} after the push"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    // A rollback on the other replica reaches both as well.
    b.admin()
        .await
        .rollback_bundle(crate::helpers::authed(baton::pb::RollbackBundleRequest {}))
        .await
        .unwrap();
    let rolled_at = Instant::now();
    for client in [&mut on_a, &mut on_b] {
        while report(client).await.bundle_version != original {
            assert!(
                rolled_at.elapsed() < SWITCH_DEADLINE,
                "the rollback did not arrive"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

#[tokio::test]
async fn a_replica_restarted_while_redis_is_down_serves_its_last_good_bundle() {
    let redis = RedisServer::start();
    let store = tempfile::tempdir().unwrap();
    let replica = Replica::start(&redis.url(), store.path());
    let pushed = replica.deny_reports().await;
    let url = redis.url();
    drop(replica);
    drop(redis);

    let restarted = Replica::start(&url, store.path());
    let r = report(&mut restarted.decisions().await).await;
    assert_eq!(r.bundle_version, pushed.version);
    assert_eq!(r.decision(), Decision::Deny);
}

/// Bounds a wait for a replica's background retry, which reconnects on its own schedule.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_replica_started_before_redis_picks_up_pushes_once_redis_is_back() {
    let port = redis_support::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let early = Replica::start(&url, dir_b.path());
    let mut on_early = early.decisions().await;
    let original = report(&mut on_early).await;
    assert_eq!(original.decision(), Decision::Allow);

    let _redis = RedisServer::start_on(port);
    let pusher = Replica::start(&url, dir_a.path());
    let pushed = pusher.deny_reports().await;
    let started = Instant::now();
    loop {
        let r = report(&mut on_early).await;
        if r.bundle_version == pushed.version {
            assert_eq!(r.decision(), Decision::Deny);
            break;
        }
        assert_eq!(r.bundle_version, original.bundle_version);
        assert!(
            started.elapsed() < RECONNECT_DEADLINE,
            "the early replica never picked up the push"
        );
        tokio::time::sleep(POLL).await;
    }
}
