//! Authorize under load while the active bundle is swapped back and forth: every answer comes
//! wholly from one bundle or the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton::pb::{self, Decision, DenialCode};

use crate::helpers::{authed, forbidding_files, push, report, spawn_admin_app};

const CALLERS: usize = 8;
const SWAPS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_authorize_never_sees_a_mixed_or_missing_policy_set() {
    let mut app = spawn_admin_app().await;
    let allowing = report(&mut app.decisions).await;
    let denying = push(&mut app, forbidding_files(false), "deny")
        .await
        .unwrap()
        .bundle
        .unwrap();
    assert_eq!(allowing.decision(), Decision::Allow);

    let done = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let mut client = app.decisions.clone();
        let done = done.clone();
        let (allow_version, deny_version) =
            (allowing.bundle_version.clone(), denying.version.clone());
        let allowed_policies = allowing.determining_policies.clone();
        callers.push(tokio::spawn(async move {
            let mut seen = [0usize; 2];
            while !done.load(Ordering::Relaxed) {
                let r = report(&mut client).await;
                if r.bundle_version == allow_version {
                    assert_eq!(r.decision(), Decision::Allow, "{r:?}");
                    assert_eq!(r.determining_policies, allowed_policies, "{r:?}");
                    assert_eq!(r.granted_scopes, ["reports.generate", "finance.read"]);
                    seen[0] += 1;
                } else {
                    assert_eq!(r.bundle_version, deny_version, "{r:?}");
                    assert_eq!(r.decision(), Decision::Deny, "{r:?}");
                    let denial = r.denial.as_ref().unwrap();
                    assert_eq!(denial.code(), DenialCode::ConnectionNotAllowed, "{r:?}");
                    seen[1] += 1;
                }
            }
            seen
        }));
    }
    for i in 0..SWAPS {
        let revision = if i % 2 == 0 { 1 } else { 2 };
        app.admin
            .activate_bundle(authed(pb::ActivateBundleRequest { revision }))
            .await
            .unwrap();
        // Let some answers through between swaps.
        report(&mut app.decisions).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut total = [0usize; 2];
    for caller in callers {
        let seen = caller.await.unwrap();
        total[0] += seen[0];
        total[1] += seen[1];
    }
    assert!(total[0] > 0 && total[1] > 0, "{total:?}");
}
