//! Pushes, validation, rollbacks and authentication against one server.

use baton::admission::BundleLimits;
use baton::pb::{self, Decision};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{
    authed, forbidding_files, push, report, shipped_files, spawn_admin_app, spawn_admin_app_with,
    with_token,
};

/// The value of the unlabelled series `name` on the app's `/metrics`.
fn metric(app: &crate::helpers::AdminApp, name: &str) -> f64 {
    let text = app.pipeline.render_metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().unwrap().reason
}

fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

#[tokio::test]
async fn a_push_changes_the_decisions() {
    let mut app = spawn_admin_app().await;
    let before = report(&mut app.decisions).await;
    assert_eq!(before.decision(), Decision::Allow);

    let pushed = push(&mut app, forbidding_files(false), "no more reports")
        .await
        .unwrap();
    let bundle = pushed.bundle.unwrap();
    assert_eq!(bundle.revision, 2);
    assert_eq!(bundle.author, "admin");
    assert!(bundle.active);

    let after = report(&mut app.decisions).await;
    assert_eq!(after.decision(), Decision::Deny);
    assert_eq!(after.bundle_version, bundle.version);
    assert_ne!(after.bundle_version, before.bundle_version);

    let listed = app
        .admin
        .list_bundles(authed(pb::ListBundlesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.active_revision, 2);
    let summary: Vec<(u64, &str, bool)> = listed
        .bundles
        .iter()
        .map(|b| (b.revision, b.message.as_str(), b.active))
        .collect();
    assert_eq!(summary[0], (2, "no more reports", true));
    assert_eq!(summary[1].0, 1);
    assert!(listed.bundles.iter().all(|b| b.created_at.is_some()));

    let got = app
        .admin
        .get_bundle(authed(pb::GetBundleRequest { revision: 0 }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.bundle.unwrap().revision, 2);
    assert!(got.files.iter().any(|f| f.content.contains("\nforbid")));
}

#[tokio::test]
async fn an_invalid_push_is_rejected_with_located_errors_and_nothing_changes() {
    let mut app = spawn_admin_app().await;
    let before = report(&mut app.decisions).await;
    let mut files = shipped_files();
    files.push(pb::BundleFile {
        name: "broken.cedar".into(),
        content: "permit (\n  principal,\n  action\n  resource\n);\n".into(),
    });

    let dry = app
        .admin
        .validate_bundle(authed(pb::ValidateBundleRequest {
            files: files.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.valid);
    assert_eq!(dry.errors[0].file, "broken.cedar");
    assert_eq!((dry.errors[0].line, dry.errors[0].column), (4, 3));

    let status = push(&mut app, files, "broken").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "BUNDLE_INVALID");
    assert_eq!(violations(&status)[0].0, "broken.cedar:4:3");

    let after = report(&mut app.decisions).await;
    assert_eq!(after.decision(), Decision::Allow);
    assert_eq!(after.bundle_version, before.bundle_version);
    let listed = app
        .admin
        .list_bundles(authed(pb::ListBundlesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.bundles.len(), 1);
}

#[tokio::test]
async fn a_push_whose_tests_fail_is_rejected_with_the_failing_cases() {
    let mut app = spawn_admin_app().await;
    let before = report(&mut app.decisions).await;

    let status = push(&mut app, forbidding_files(true), "breaks alice")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "BUNDLE_TESTS_FAILED");
    let failed = violations(&status);
    // Both report cases break: alice's and the contractor's.
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].0.starts_with("tests.json:"), "{failed:?}");
    assert!(
        failed[0].1.contains("alice's assistant") && failed[0].1.contains("expected ALLOW"),
        "{failed:?}"
    );

    let dry = app
        .admin
        .validate_bundle(authed(pb::ValidateBundleRequest {
            files: forbidding_files(true),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.valid);
    let shipped_cases = baton::bundle::PolicyBundle::load(&crate::helpers::shipped_dir())
        .unwrap()
        .cases()
        .len();
    assert_eq!(
        (dry.tests_run, dry.test_failures.len()),
        (u32::try_from(shipped_cases).unwrap(), 2)
    );

    assert_eq!(
        report(&mut app.decisions).await.bundle_version,
        before.bundle_version
    );
}

#[tokio::test]
async fn rollback_returns_to_the_previous_activation() {
    let mut app = spawn_admin_app().await;
    let original = report(&mut app.decisions).await.bundle_version;
    push(&mut app, forbidding_files(false), "deny")
        .await
        .unwrap();
    assert_eq!(report(&mut app.decisions).await.decision(), Decision::Deny);
    assert_eq!(metric(&app, "baton_bundle_revision"), 2.0);
    let activations = metric(&app, "baton_bundle_activations_total");

    let rolled = app
        .admin
        .rollback_bundle(authed(pb::RollbackBundleRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.previous_revision, 2);
    assert_eq!(rolled.active.unwrap().revision, 1);
    let after = report(&mut app.decisions).await;
    assert_eq!(after.decision(), Decision::Allow);
    assert_eq!(after.bundle_version, original);
    assert_eq!(metric(&app, "baton_bundle_revision"), 1.0);
    assert_eq!(
        metric(&app, "baton_bundle_activations_total"),
        activations + 1.0
    );

    let status = app
        .admin
        .rollback_bundle(authed(pb::RollbackBundleRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // An explicit activation moves forward again; an unknown revision is refused.
    app.admin
        .activate_bundle(authed(pb::ActivateBundleRequest { revision: 2 }))
        .await
        .unwrap();
    assert_eq!(report(&mut app.decisions).await.decision(), Decision::Deny);
    let status = app
        .admin
        .activate_bundle(authed(pb::ActivateBundleRequest { revision: 9 }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn unauthenticated_admin_calls_are_rejected() {
    let mut app = spawn_admin_app().await;
    let before = report(&mut app.decisions).await.bundle_version;
    let request = || pb::PushBundleRequest {
        files: forbidding_files(false),
        message: "sneaky".into(),
        shadow: false,
    };
    let status = app
        .admin
        .push_bundle(tonic::Request::new(request()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = app
        .admin
        .push_bundle(with_token("not-the-token-0123456789", request()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = app
        .admin
        .list_bundles(tonic::Request::new(pb::ListBundlesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(report(&mut app.decisions).await.bundle_version, before);
}

#[tokio::test]
async fn bundles_over_the_limits_are_rejected_clearly() {
    // The shipped bundle, which the server starts with, is exactly at the policy limit.
    let shipped = baton::bundle::PolicyBundle::load(&crate::helpers::shipped_dir()).unwrap();
    let max_policies = shipped.policy_count();
    let mut app = spawn_admin_app_with(BundleLimits {
        max_bytes: 64 * 1024,
        max_policies,
    })
    .await;
    let mut files = shipped_files();
    files.push(pb::BundleFile {
        name: "one-more.cedar".into(),
        content: "@id(\"one-more\")\npermit (principal == Agent::\"reconciler\", action == Action::\"invoke\", resource == Agent::\"ledger\");\n".into(),
    });
    let status = push(&mut app, files, "too many").await.unwrap_err();
    assert_eq!(reason(&status), "BUNDLE_TOO_LARGE");
    assert!(
        status
            .message()
            .contains(&format!("over the limit of {max_policies}")),
        "{status:?}"
    );

    let mut files = shipped_files();
    files.push(pb::BundleFile {
        name: "padding.cedar".into(),
        content: "// padding\n".repeat(8 * 1024),
    });
    let status = push(&mut app, files, "too big").await.unwrap_err();
    assert_eq!(reason(&status), "BUNDLE_TOO_LARGE");
    assert!(status.message().contains("bytes"), "{status:?}");
}
