//! Redis losing its data under two replicas: `FLUSHALL`, then a restart without persistence.
//! Each used to lift every revocation within a second and make each replica overwrite its
//! `revocations.json` with `[]`. A revocation must stay in force on both replicas throughout,
//! and Redis must be re-seeded from the replicas' copies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baton::pb::{self, Decision, DenialCode, revocation_target::Target};
use baton::revocation::GENERATION_FIELD;

use crate::helpers::{authed, report};
use crate::replicas::Replica;
use crate::replicas::redis_support::RedisServer;

/// How long Redis gets to be re-seeded; the follow interval is half a second.
const RESEED_DEADLINE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);
const HASH: &str = "test:revocations";

async fn fields(url: &str) -> Option<Vec<String>> {
    let client = redis::Client::open(url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("HKEYS")
        .arg(HASH)
        .query_async(&mut connection)
        .await
        .ok()
}

pub async fn flushall(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut connection)
        .await
        .unwrap();
}

/// Waits until Redis holds the revocation again, and says how long that took.
async fn reseeded(url: &str, since: Instant) -> Duration {
    loop {
        if let Some(keys) = fields(url).await
            && keys.iter().any(|k| k == "agent:data-analyst")
            && keys.iter().any(|k| k == GENERATION_FIELD)
        {
            return since.elapsed();
        }
        assert!(since.elapsed() < RESEED_DEADLINE, "Redis was not re-seeded");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn flushall_and_an_empty_restart_of_redis_lift_no_revocation() {
    let _turn = crate::replicas::TIMED.lock().await;
    let mut redis = RedisServer::start();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Replica::start(&redis.url(), dir_a.path());
    let b = Replica::start(&redis.url(), dir_b.path());
    a.governance()
        .await
        .revoke(authed(pb::RevokeRequest {
            target: Some(pb::RevocationTarget {
                target: Some(Target::Agent("data-analyst".into())),
            }),
            reason: "incident 15".into(),
            expires_at: None,
        }))
        .await
        .unwrap();
    let mut clients = [a.decisions().await, b.decisions().await];
    for client in &mut clients {
        while report(client).await.decision() != Decision::Deny {
            tokio::time::sleep(POLL).await;
        }
    }

    // Both replicas are asked every 10 ms for as long as Redis loses and regains its data.
    let watching = Arc::new(AtomicBool::new(true));
    let watchers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let watching = Arc::clone(&watching);
            tokio::spawn(async move {
                let (mut asked, mut wrong) = (0u32, Vec::new());
                while watching.load(Ordering::Relaxed) {
                    asked += 1;
                    match client.authorize(crate::helpers::report_request()).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            let code = r.denial.as_ref().map(|d| d.code());
                            if r.decision() != Decision::Deny || code != Some(DenialCode::Revoked) {
                                wrong.push(format!("{:?} {code:?}", r.decision()));
                            }
                        }
                        Err(status) => wrong.push(format!("{status:?}")),
                    }
                    tokio::time::sleep(POLL).await;
                }
                (asked, wrong)
            })
        })
        .collect();

    let flushed = Instant::now();
    flushall(&redis.url()).await;
    let after_flush = reseeded(&redis.url(), flushed).await;

    let restarted = Instant::now();
    redis.restart();
    let after_restart = reseeded(&redis.url(), restarted).await;
    // A second look after both replicas followed the re-seeded store.
    tokio::time::sleep(Duration::from_secs(1)).await;

    watching.store(false, Ordering::Relaxed);
    for watcher in watchers {
        let (asked, wrong) = watcher.await.unwrap();
        // Enough calls to span the loss and the re-seed, however slow a loaded machine is.
        assert!(asked >= 10, "only {asked} calls");
        assert!(
            wrong.is_empty(),
            "{} of {asked} answers were not REVOKED: {wrong:?}",
            wrong.len()
        );
    }
    for dir in [&dir_a, &dir_b] {
        let copy = std::fs::read_to_string(dir.path().join("revocations.json")).unwrap();
        assert!(
            copy.contains("data-analyst"),
            "the local copy lost it: {copy}"
        );
    }
    eprintln!("re-seeded {after_flush:?} after FLUSHALL, {after_restart:?} after an empty restart");
}
