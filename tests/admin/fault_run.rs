//! The fault run: two real replicas sharing one real Redis under a steady load of checked
//! calls (allowed, denied, revoked, approval-required), while Redis is killed for a long
//! outage, emptied (`FLUSHALL`, and an empty restart), and slowed (`CLIENT PAUSE`, then
//! `SIGSTOP`). For each phase it counts failed calls, wrong answers, audit records that never
//! reached the stream, and the longest call, and prints them as the closing note's figures.
//!
//! The outage lasts 60 s, the length the issue names, so the spool it leaves is a real one;
//! `BATON_FAULT_OUTAGE_SECS` and `BATON_FAULT_PHASE_SECS` lengthen or shorten the run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::{self, Decision, DenialCode, revocation_target::Target};
use tonic::transport::Channel;

use crate::governance::refund;
use crate::helpers::{authed, report_request};
use crate::replicas::Replica;
use crate::replicas::redis_support::RedisServer;

/// Callers, each waiting `PACE` between its calls: a steady load that leaves the two cores
/// some room, so the longest call measures Baton rather than the run queue.
const CALLERS: usize = 8;
const PACE: Duration = Duration::from_millis(4);
/// What the replicas are told to wait for Redis at most.
const REDIS_TIMEOUT_MS: u64 = 25;
/// The bound on any call: the Redis timeout plus evaluation, with room for a noisy machine.
/// Replaying a long spool ahead of new records used to block calls for 2.4 to 2.7 s.
const LONGEST_ALLOWED: Duration = Duration::from_millis(1000);
/// How long the audit records of a phase get to reach the stream after it ends.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
const STREAM: &str = "test:audit";

fn secs_from_env(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Allowed,
    Denied,
    Revoked,
    NeedsApproval,
}

impl Kind {
    fn request(self) -> pb::AuthorizeRequest {
        let user = |id: &str, scope: &str| {
            let mut request = report_request();
            request.principal = Some(pb::EntityRef {
                r#type: "User".into(),
                id: id.into(),
            });
            request.scopes = vec![scope.into()];
            request
        };
        match self {
            Self::Allowed => report_request(),
            Self::Denied => user("carol", "finance.read"),
            Self::Revoked => user("dave", "reports.generate"),
            Self::NeedsApproval => refund(700, ""),
        }
    }

    fn is_right(self, answer: &pb::AuthorizeResponse) -> bool {
        let code = answer.denial.as_ref().map(|d| d.code());
        match self {
            Self::Allowed => answer.decision() == Decision::Allow,
            Self::Denied => answer.decision() == Decision::Deny,
            Self::Revoked => {
                answer.decision() == Decision::Deny && code == Some(DenialCode::Revoked)
            }
            Self::NeedsApproval => answer.decision() == Decision::ApprovalRequired,
        }
    }
}

const KINDS: [Kind; 4] = [
    Kind::Allowed,
    Kind::Denied,
    Kind::Revoked,
    Kind::NeedsApproval,
];

/// One call as a caller saw it.
struct Sample {
    phase: usize,
    took: Duration,
    failed: bool,
    wrong: bool,
    decision_id: String,
}

#[derive(Default)]
struct Figures {
    calls: usize,
    failed: usize,
    wrong: usize,
    checked: usize,
    lost: usize,
    longest: Duration,
}

/// What every caller shares: the phase calls are counted in, and what they saw.
struct Load {
    phase: AtomicUsize,
    stop: AtomicBool,
    samples: Mutex<Vec<Sample>>,
}

async fn caller(load: Arc<Load>, mut clients: [DecisionServiceClient<Channel>; 2], n: usize) {
    let mut i = n;
    while !load.stop.load(Ordering::Relaxed) {
        let kind = KINDS[i % KINDS.len()];
        let client = &mut clients[i % 2];
        i += 1;
        let phase = load.phase.load(Ordering::SeqCst);
        let started = Instant::now();
        let answer = client.authorize(kind.request()).await;
        let took = started.elapsed();
        let sample = match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                Sample {
                    phase,
                    took,
                    failed: false,
                    wrong: !kind.is_right(&answer),
                    decision_id: answer.decision_id,
                }
            }
            Err(status) => {
                eprintln!("phase {phase}: {kind:?} failed: {status:?}");
                Sample {
                    phase,
                    took,
                    failed: true,
                    wrong: false,
                    decision_id: String::new(),
                }
            }
        };
        load.samples.lock().unwrap().push(sample);
        tokio::time::sleep(PACE).await;
    }
}

/// The decision ids the audit stream holds, read on from where the last look ended.
struct StreamReader {
    connection: Option<redis::aio::MultiplexedConnection>,
    url: String,
    after: String,
    seen: HashSet<String>,
}

impl StreamReader {
    async fn read_on(&mut self) {
        if self.connection.is_none() {
            let Ok(client) = redis::Client::open(self.url.as_str()) else {
                return;
            };
            self.connection = client
                .get_multiplexed_async_connection_with_config(&test_side_config())
                .await
                .ok();
        }
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        loop {
            let entries: Result<Vec<(String, Vec<String>)>, _> = redis::cmd("XRANGE")
                .arg(STREAM)
                .arg(format!("({}", self.after))
                .arg("+")
                .arg("COUNT")
                .arg(1000)
                .query_async(connection)
                .await;
            let Ok(entries) = entries else {
                self.connection = None;
                return;
            };
            let Some((last, _)) = entries.last() else {
                return;
            };
            self.after = last.clone();
            for (_, fields) in entries {
                if let Some(at) = fields.iter().position(|f| f == "id") {
                    self.seen.insert(fields[at + 1].clone());
                }
            }
        }
    }

    /// How many of `ids` are still missing from the stream after waiting for them.
    async fn missing(&mut self, ids: &[String]) -> usize {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            self.read_on().await;
            let missing = ids.iter().filter(|id| !self.seen.contains(*id)).count();
            if missing == 0 || Instant::now() > deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The test's own hand on Redis, not the server's: FLUSHALL of a store that holds the whole
/// run's audit trail, or a page of the stream's records, can take longer than redis-rs's
/// 500 ms default on a loaded machine, and a reader that times out on every page never
/// reads on (every record then looks lost).
fn test_side_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)))
}

async fn redis_command(url: &str, args: &[&str]) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&test_side_config())
        .await
        .unwrap();
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let () = cmd.query_async(&mut connection).await.unwrap();
}

const PHASES: [&str; 7] = [
    "steady",
    "killed (the outage)",
    "back empty (the spool replays)",
    "emptied (FLUSHALL)",
    "slowed (CLIENT PAUSE)",
    "slowed (SIGSTOP)",
    "emptied (restarted empty)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_emptied_and_slowed_under_load_fails_no_call_and_loses_no_record() {
    let _turn = crate::replicas::TIMED.lock().await;
    let outage = secs_from_env("BATON_FAULT_OUTAGE_SECS", 60);
    let phase_length = secs_from_env("BATON_FAULT_PHASE_SECS", 3);
    let mut redis = RedisServer::start();
    let url = redis.url();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let timeout = REDIS_TIMEOUT_MS.to_string();
    let extra = ["--redis-timeout-ms", timeout.as_str()];
    let a = Replica::start_with(&url, dir_a.path(), &extra);
    let b = Replica::start_with(&url, dir_b.path(), &extra);
    a.governance()
        .await
        .revoke(authed(pb::RevokeRequest {
            target: Some(pb::RevocationTarget {
                target: Some(Target::Principal(pb::EntityRef {
                    r#type: "User".into(),
                    id: "dave".into(),
                })),
            }),
            reason: "fault run".into(),
            expires_at: None,
        }))
        .await
        .unwrap();
    let clients = [a.decisions().await, b.decisions().await];
    // Both replicas enforce the revocation before the load starts.
    for client in &clients {
        let mut client = client.clone();
        let since = Instant::now();
        while !Kind::Revoked.is_right(
            &client
                .authorize(Kind::Revoked.request())
                .await
                .unwrap()
                .into_inner(),
        ) {
            assert!(since.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let load = Arc::new(Load {
        phase: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        samples: Mutex::new(Vec::new()),
    });
    let callers: Vec<_> = (0..CALLERS)
        .map(|n| tokio::spawn(caller(Arc::clone(&load), clients.clone(), n)))
        .collect();
    let mut stream = StreamReader {
        connection: None,
        url: url.clone(),
        after: "0-0".into(),
        seen: HashSet::new(),
    };
    let mut figures: Vec<Figures> = (0..PHASES.len()).map(|_| Figures::default()).collect();
    // The ids a phase's records must reach the stream with, taken before the next fault,
    // which may rightly erase them (an emptied Redis loses what it held).
    let check = |phase: usize, load: &Load| -> Vec<String> {
        let samples = load.samples.lock().unwrap();
        samples
            .iter()
            .filter(|s| s.phase == phase && !s.failed)
            .map(|s| s.decision_id.clone())
            .collect()
    };
    let mut to_check: Vec<Vec<String>> = vec![Vec::new(); PHASES.len()];
    let enter = |phase: usize| load.phase.store(phase, Ordering::SeqCst);

    tokio::time::sleep(phase_length).await;
    to_check[0] = check(0, &load);
    figures[0].lost = stream.missing(&to_check[0]).await;

    // Killed: a long outage, then Redis comes back empty (it runs without persistence) and
    // the spool replays while calls go on.
    tokio::task::block_in_place(|| redis.kill());
    enter(1);
    tokio::time::sleep(outage).await;
    tokio::task::block_in_place(|| redis.restart());
    enter(2);
    tokio::time::sleep(phase_length).await;
    for phase in [1, 2] {
        to_check[phase] = check(phase, &load);
        figures[phase].lost = stream.missing(&to_check[phase]).await;
    }

    redis_command(&url, &["FLUSHALL"]).await;
    enter(3);
    tokio::time::sleep(phase_length).await;
    to_check[3] = check(3, &load);
    figures[3].lost = stream.missing(&to_check[3]).await;

    let pause_ms = phase_length.as_millis().to_string();
    redis_command(&url, &["CLIENT", "PAUSE", &pause_ms, "ALL"]).await;
    enter(4);
    tokio::time::sleep(phase_length * 2).await;

    redis.pause();
    enter(5);
    tokio::time::sleep(phase_length).await;
    redis.resume();
    tokio::time::sleep(phase_length).await;
    for phase in [4, 5] {
        to_check[phase] = check(phase, &load);
        figures[phase].lost = stream.missing(&to_check[phase]).await;
    }

    tokio::task::block_in_place(|| redis.restart());
    enter(6);
    tokio::time::sleep(phase_length * 2).await;
    load.stop.store(true, Ordering::SeqCst);
    for caller in callers {
        caller.await.unwrap();
    }
    to_check[6] = check(6, &load);
    figures[6].lost = stream.missing(&to_check[6]).await;

    for sample in load.samples.lock().unwrap().iter() {
        let f = &mut figures[sample.phase];
        f.calls += 1;
        f.failed += usize::from(sample.failed);
        f.wrong += usize::from(sample.wrong);
        f.longest = f.longest.max(sample.took);
    }
    for (f, ids) in figures.iter_mut().zip(&to_check) {
        f.checked = ids.len();
    }
    eprintln!("fault run: outage {outage:?}, phases {phase_length:?}, {CALLERS} callers");
    eprintln!("| phase | calls | failed | wrong | records checked | lost | longest call |");
    for (name, f) in PHASES.iter().zip(&figures) {
        eprintln!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} ms |",
            f.calls,
            f.failed,
            f.wrong,
            f.checked,
            f.lost,
            f.longest.as_secs_f64() * 1000.0
        );
    }
    for (name, f) in PHASES.iter().zip(&figures) {
        assert!(f.calls > 0, "{name}: no call was made");
        assert_eq!((f.failed, f.wrong, f.lost), (0, 0, 0), "{name}");
        assert!(
            f.longest < LONGEST_ALLOWED,
            "{name}: a call took {:?}",
            f.longest
        );
    }
}
