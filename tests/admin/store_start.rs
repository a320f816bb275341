//! Which policy is live must not change unseen. With a corrupt or missing store file the server
//! started, reported ready and served `--bundle` instead of the last pushed revision, with only
//! a log line; nothing stopped two processes from sharing one `--store-dir`.

use baton::app::{Application, BuildError, Config};
use baton::pb::Decision;
use baton::policy_store::replica::ServedFrom;
use baton::transport::AdminTokens;

use crate::helpers::{TOKEN, connect, forbidding_files, push_to, report};
use crate::spawn::{config_in, server_dir, start};

fn config(dir: &std::path::Path) -> Config {
    let mut config = config_in(dir);
    config.admin_tokens = Some(AdminTokens::single(TOKEN).unwrap());
    config
}

/// Serves the shipped bundle from a fresh store, pushes one that denies reports (revision 2)
/// and stops: the store's active revision is no longer `--bundle`.
async fn store_with_a_push() -> tempfile::TempDir {
    let dir = server_dir();
    let running = start(config(dir.path())).await;
    let mut admin =
        baton::pb::policy_admin_client::PolicyAdminClient::new(connect(&running.admin_url()).await);
    push_to(&mut admin, forbidding_files(false), "deny reports")
        .await
        .unwrap();
    running.stop().await.unwrap();
    dir
}

async fn refused(config: Config) -> String {
    match Application::build(config).await {
        Ok(_) => panic!("started on an unreadable store"),
        Err(e @ BuildError::Unrecoverable(_)) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_or_missing_store_file_refuses_to_start_unless_told_to_recover() {
    let dir = store_with_a_push().await;
    let store = dir.path().join("store");

    // A restart on the intact store serves revision 2, not `--bundle`.
    let app = Application::build(config(dir.path())).await.unwrap();
    assert_eq!(
        (app.revision(), app.served_from()),
        (Some(2), ServedFrom::Store)
    );
    drop(app);

    std::fs::write(store.join("activations.json"), "[1, 2").unwrap();
    let why = refused(config(dir.path())).await;
    assert!(why.contains("--recover-store"), "{why}");

    std::fs::remove_file(store.join("activations.json")).unwrap();
    let why = refused(config(dir.path())).await;
    assert!(why.contains("revision 2 but no active pointer"), "{why}");

    std::fs::write(store.join("activations.json"), "[1, 2]").unwrap();
    std::fs::remove_file(store.join("revisions").join("0000000002.files.json")).unwrap();
    let why = refused(config(dir.path())).await;
    assert!(why.contains("active revision 2"), "{why}");

    // Told to recover, it serves `--bundle` and records it as the next revision.
    let mut recovering = config(dir.path());
    recovering.recover_store = true;
    let running = start(recovering).await;
    let mut decisions = baton::pb::decision_service_client::DecisionServiceClient::new(
        connect(&running.url()).await,
    );
    assert_eq!(report(&mut decisions).await.decision(), Decision::Allow);
    running.stop().await.unwrap();
    let app = Application::build(config(dir.path())).await.unwrap();
    assert_eq!(
        (app.revision(), app.served_from()),
        (Some(3), ServedFrom::Store)
    );
}

#[tokio::test]
async fn a_second_process_cannot_share_a_store_dir() {
    let dir = server_dir();
    let first = Application::build(config(dir.path())).await.unwrap();
    match Application::build(config(dir.path())).await {
        Err(e @ BuildError::StoreLocked { .. }) => {
            assert!(e.to_string().contains("its own --store-dir"), "{e}");
        }
        Err(e) => panic!("refused for another reason: {e:?}"),
        Ok(_) => panic!("two applications share one store directory"),
    }
    drop(first);
    Application::build(config(dir.path())).await.unwrap();
}
