//! Bundles nested 10,000 deep: each one used to overflow the stack of whichever thread parsed
//! it and abort every replica it reached, dry runs included. Each now gets a located error.

use baton::pb::{self, Decision};
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{authed, push, report, shipped_files, spawn_admin_app};

const DEEP: usize = 10_000;

fn nest(open: &str, inner: &str, close: &str) -> String {
    format!("{}{inner}{}", open.repeat(DEEP), close.repeat(DEEP))
}

fn permit_when(condition: &str) -> String {
    format!("permit (principal, action, resource) when {{ {condition} }};\n")
}

/// The shipped bundle with `name` added or replaced by `content`.
fn shipped_with(name: &str, content: String) -> Vec<pb::BundleFile> {
    let mut files: Vec<pb::BundleFile> = shipped_files()
        .into_iter()
        .filter(|f| f.name != name)
        .collect();
    files.push(pb::BundleFile {
        name: name.into(),
        content,
    });
    files
}

fn schema_with(extra: &str) -> Vec<pb::BundleFile> {
    let schema = shipped_files()
        .into_iter()
        .find(|f| f.name == "baton.cedarschema")
        .unwrap();
    shipped_with(
        "baton.cedarschema",
        format!("{}\n{extra}\n", schema.content),
    )
}

/// Every way of nesting deep that a bundle file allows, by name.
fn deep_bundles() -> Vec<(&'static str, Vec<pb::BundleFile>)> {
    let entity = format!(
        r#"[{{ "uid": {{ "type": "User", "id": "deep" }}, "attrs": {{ "department": {} }}, "parents": [] }}]"#,
        nest(r#"{ "a": "#, "1", "}")
    );
    let case = format!(
        r#"{{ "cases": [{{ "name": "deep", "caller": "Agent:user-assistant", "callee": "Agent:data-analyst", "principal": "User:alice", "scopes": ["reports.generate"], "context": {{ "task": {} }}, "expect": {{ "decision": "DENY" }} }}] }}"#,
        nest("[", "1", "]")
    );
    vec![
        (
            "policy parentheses",
            shipped_with("deep.cedar", permit_when(&nest("(", "true", ")"))),
        ),
        (
            "policy sets",
            shipped_with(
                "deep.cedar",
                permit_when(&format!("{}.isEmpty()", nest("[", "1", "]"))),
            ),
        ),
        (
            "policy records",
            shipped_with(
                "deep.cedar",
                permit_when(&format!("{} has a", nest("{a: ", "1", "}"))),
            ),
        ),
        (
            "schema records",
            schema_with(&format!("type Deep = {};", nest("{ a: ", "Long", " }"))),
        ),
        (
            "schema sets",
            schema_with(&format!("type Deep = {};", nest("Set<", "Long", ">"))),
        ),
        ("entity attributes", shipped_with("entities.json", entity)),
        ("test case context", shipped_with("tests.json", case)),
    ]
}

#[tokio::test]
async fn bundles_nested_ten_thousand_deep_get_located_errors_and_the_server_keeps_serving() {
    let mut app = spawn_admin_app().await;
    for (what, files) in deep_bundles() {
        let named = files.last().unwrap().name.clone();
        let dry = app
            .admin
            .validate_bundle(authed(pb::ValidateBundleRequest {
                files: files.clone(),
            }))
            .await
            .unwrap_or_else(|e| panic!("{what}: the dry run failed: {e:?}"))
            .into_inner();
        assert!(!dry.valid, "{what}");
        let [error] = dry.errors.as_slice() else {
            panic!("{what}: {:?}", dry.errors);
        };
        assert_eq!(error.file, named, "{what}");
        assert!(error.line >= 1 && error.column > 1, "{what}: {error:?}");
        assert!(
            error.message.starts_with("nesting deeper than 32"),
            "{what}: {error:?}"
        );

        let status = push(&mut app, files, what).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations.len(), 1, "{what}");
        assert!(
            violations[0].field.starts_with(&format!("{named}:")),
            "{what}"
        );
        let size = status.message().len() + status.details().len();
        assert!(size < 4096, "{what}: {size} bytes of error");

        assert_eq!(
            report(&mut app.decisions).await.decision(),
            Decision::Allow,
            "{what}"
        );
    }
}

/// `if … then … else` nests without brackets, so the scan cannot see it: the compile thread's
/// large stack is what keeps the process alive. Whatever Cedar says, the server keeps serving
/// and the bundle in force is unchanged.
#[tokio::test]
async fn a_policy_nested_ten_thousand_deep_without_brackets_does_not_crash_the_server() {
    let mut app = spawn_admin_app().await;
    let before = report(&mut app.decisions).await;
    let chain = format!(
        "{}true{}",
        "if true then ".repeat(DEEP),
        " else false".repeat(DEEP)
    );
    let dry = app
        .admin
        .validate_bundle(authed(pb::ValidateBundleRequest {
            files: shipped_with("deep.cedar", permit_when(&chain)),
        }))
        .await
        .unwrap()
        .into_inner();
    // Cedar parses it on the large stack; the bundle's own cases then fail, since it permits
    // everything.
    assert!(!dry.valid);
    let after = report(&mut app.decisions).await;
    assert_eq!(after.decision(), Decision::Allow);
    assert_eq!(after.bundle_version, before.bundle_version);

    // Without its cases it activates. Evaluating it on a request thread fails closed (Cedar
    // checks the stack it has left), and replacing it drops the deep policy safely.
    let untested: Vec<pb::BundleFile> = shipped_with("deep.cedar", permit_when(&chain))
        .into_iter()
        .filter(|f| f.name != "tests.json")
        .collect();
    let _ = push(&mut app, untested, "deep if").await;
    let _ = report(&mut app.decisions).await;
    push(&mut app, shipped_files(), "back").await.unwrap();
    assert_eq!(report(&mut app.decisions).await.decision(), Decision::Allow);
}
