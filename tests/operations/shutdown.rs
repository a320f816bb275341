//! SIGTERM under load, again and again: the final sync of the audit file was sometimes
//! cancelled (4 of 14 shutdowns). Every shutdown must write and sync every record of every call
//! that was answered, and say so in its log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton::pb::{AuthorizeRequest, EntityRef};

use crate::process::Baton;

const SHUTDOWNS: usize = 14;
const CALLERS: usize = 4;

fn report_request() -> AuthorizeRequest {
    let entity = |t: &str, id: &str| {
        Some(EntityRef {
            r#type: t.into(),
            id: id.into(),
        })
    };
    AuthorizeRequest {
        caller: entity("Agent", "user-assistant"),
        callee: entity("Agent", "data-analyst"),
        principal: entity("User", "alice"),
        scopes: vec!["reports.generate".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shutdown_under_load_syncs_every_answered_record() {
    for round in 0..SHUTDOWNS {
        let mut baton = Baton::start(&[], &[]);
        let asking = Arc::new(AtomicBool::new(true));
        let mut callers = Vec::new();
        for _ in 0..CALLERS {
            let mut client = baton.client().await;
            let asking = Arc::clone(&asking);
            callers.push(tokio::spawn(async move {
                let mut answered = Vec::new();
                while asking.load(Ordering::Relaxed) {
                    match client.authorize(report_request()).await {
                        Ok(answer) => answered.push(answer.into_inner().decision_id),
                        Err(_) => break,
                    }
                }
                answered
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        tokio::task::block_in_place(|| baton.terminate());
        asking.store(false, Ordering::Relaxed);
        let mut answered = Vec::new();
        for caller in callers {
            answered.extend(caller.await.unwrap());
        }
        let logs = baton.logs();
        assert!(
            logs.contains("audit trail flushed"),
            "round {round}: no flush logged:\n{logs}"
        );
        assert!(
            !logs.contains("cannot sync") && !logs.contains("a record is lost"),
            "round {round}:\n{logs}"
        );
        let trail = std::fs::read_to_string(baton.audit_file()).unwrap();
        let missing: Vec<&String> = answered
            .iter()
            .filter(|id| !trail.contains(id.as_str()))
            .collect();
        assert!(
            answered.len() > 10,
            "round {round}: only {} calls",
            answered.len()
        );
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} answered calls have no record",
            missing.len(),
            answered.len()
        );
    }
}
