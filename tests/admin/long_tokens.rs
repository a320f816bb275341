//! A 100,000-character token in a pushed schema: the errors quoted it whole, 200 KB of details
//! that common gRPC clients refuse as `RESOURCE_EXHAUSTED` instead of showing the error.

use baton::pb;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{authed, push, shipped_files, spawn_admin_app};

const LONG: usize = 100_000;

fn with_long_schema_token() -> Vec<pb::BundleFile> {
    shipped_files()
        .into_iter()
        .map(|mut f| {
            if f.name == "baton.cedarschema" {
                f.content.push_str(&format!("\n{};\n", "x".repeat(LONG)));
            }
            f
        })
        .collect()
}

#[tokio::test]
async fn a_schema_token_of_100000_characters_gives_a_small_error_naming_its_start_and_length() {
    let mut app = spawn_admin_app().await;
    let files = with_long_schema_token();

    let dry = app
        .admin
        .validate_bundle(authed(pb::ValidateBundleRequest {
            files: files.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.valid);
    assert_eq!(dry.errors[0].file, "baton.cedarschema");
    let size = dry.encoded_len();
    assert!(size < 8 * 1024, "{size} bytes: {:?}", dry.errors);
    assert!(
        dry.errors[0].message.contains("(100000 characters)"),
        "{:?}",
        dry.errors[0]
    );

    let status = push(&mut app, files, "long token").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let size = status.message().len() + status.details().len();
    assert!(size < 16 * 1024, "{size} bytes of error");
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert!(
        violations[0].field.starts_with("baton.cedarschema:"),
        "{violations:?}"
    );
}

#[tokio::test]
async fn a_file_name_of_100000_characters_is_cut_in_the_error() {
    let mut app = spawn_admin_app().await;
    let mut files = shipped_files();
    files.push(pb::BundleFile {
        name: format!("{}.txt", "n".repeat(LONG)),
        content: String::new(),
    });
    let status = push(&mut app, files, "long name").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let size = status.message().len() + status.details().len();
    assert!(size < 16 * 1024, "{size} bytes of error");
}
