//! The bundle contract: what a bundle must hold to be activated, and that every rejection points
//! at `file:line:column` the way a policy author's editor expects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use baton::bundle::{BundleDiagnostic, BundleError, PolicyBundle, SourceFile, read_dir};
use baton::decision::{DecisionRequest, DecisionSettings, Effect, decide};
use baton::identity::{Identity, IdentityKind};
use cedar_policy::PolicyId;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
const SCHEMA: &str = "baton.cedarschema";
const ENTITIES: &str = "entities.json";

fn shipped_files() -> Vec<SourceFile> {
    read_dir(Path::new(SHIPPED)).unwrap_or_else(|e| panic!("shipped bundle unreadable: {e}"))
}

fn shipped_text(name: &str) -> String {
    shipped_files()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("the shipped bundle has no `{name}`"))
        .text
}

fn file(name: &str, text: &str) -> SourceFile {
    SourceFile {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

/// The shipped bundle with `name` added, or replaced when it exists.
fn shipped_with(name: &str, text: &str) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = shipped_files()
        .into_iter()
        .filter(|f| f.name != name)
        .collect();
    files.push(file(name, text));
    files
}

/// The shipped bundle with one edit to its schema, which must apply.
fn schema_edited(from: &str, to: &str) -> Vec<SourceFile> {
    let schema = shipped_text(SCHEMA);
    assert!(
        schema.contains(from),
        "the shipped schema no longer contains `{from}`"
    );
    shipped_with(SCHEMA, &schema.replace(from, to))
}

fn rejected(name: &str, files: Vec<SourceFile>) -> BundleError {
    match PolicyBundle::compile(files) {
        Ok(_) => panic!("case `{name}`: the bundle was accepted"),
        Err(e) => e,
    }
}

fn listed(errors: &[BundleDiagnostic]) -> String {
    errors
        .iter()
        .map(|d| format!("\n  {d}"))
        .collect::<String>()
}

/// Asserts that `err` holds an error at `file:line:column` whose message contains `says`.
fn assert_located(name: &str, err: &BundleError, at: (&str, usize, usize), says: &str) {
    let (file, line, column) = at;
    assert!(
        err.errors.iter().any(|d| d.file == file
            && d.line == line
            && d.column == column
            && d.message.contains(says)),
        "case `{name}`: expected an error at {file}:{line}:{column} containing `{says}`, got:{}",
        listed(&err.errors)
    );
}

/// A bundle that must be rejected, and where and what the error says.
struct Broken {
    name: &'static str,
    files: Vec<SourceFile>,
    at: (&'static str, usize, usize),
    says: &'static str,
}

fn broken(
    name: &'static str,
    files: Vec<SourceFile>,
    at: (&'static str, usize, usize),
    says: &'static str,
) -> Broken {
    Broken {
        name,
        files,
        at,
        says,
    }
}

fn run(cases: Vec<Broken>) {
    for case in cases {
        let err = rejected(case.name, case.files);
        assert_located(case.name, &err, case.at, case.says);
        for d in &err.errors {
            assert!(
                d.line >= 1 && d.column >= 1 && !d.message.is_empty(),
                "case `{}`: every error is located (1-based) and says something: {d}",
                case.name
            );
        }
    }
}

/// An extra policy file; it sorts after the shipped ones, so shipped ids are seen first.
const EXTRA: &str = "zz_extra.cedar";

#[test]
fn policy_errors_point_at_the_policy() {
    let extra = |text| shipped_with(EXTRA, text);
    run(vec![
        broken(
            "syntax error: a missing comma",
            extra(
                "// broken\npermit (\n  principal,\n  action == Action::\"invoke\"\n  resource\n);\n",
            ),
            (EXTRA, 5, 3),
            "unexpected token `resource`",
        ),
        broken(
            "syntax error: unterminated policy",
            extra("permit (principal, action, resource"),
            (EXTRA, 1, 36),
            "unexpected end of input",
        ),
        broken(
            "strict validation: an attribute the task does not declare",
            extra(
                "// x\n\npermit (principal, action == Action::\"invoke\", resource)\nwhen { context.task.priority == 1 };\n",
            ),
            (EXTRA, 4, 8),
            "`task.priority`",
        ),
        broken(
            "strict validation: a comparison of the wrong type",
            extra(
                "permit (principal, action == Action::\"invoke\", resource)\n  when { context.depth == \"three\" };\n",
            ),
            (EXTRA, 2, 10),
            "the types Long and String are not compatible",
        ),
        broken(
            "strict validation: an attribute the entity type lacks",
            extra(
                "permit (\n  principal is User,\n  action == Action::\"invoke\",\n  resource\n) when { resource.department == \"it\" };\n",
            ),
            (EXTRA, 5, 10),
            "`department`",
        ),
        broken(
            "strict validation: an action the schema does not declare",
            extra("\n\n  permit (principal, action == Action::\"payroll.run\", resource);\n"),
            (EXTRA, 3, 32),
            "unrecognized action `Action::\"payroll.run\"`",
        ),
    ]);
}

#[test]
fn malformed_annotations_point_at_their_policy() {
    let extra = |text| shipped_with(EXTRA, text);
    let invoke = "permit (principal, action == Action::\"invoke\", resource);";
    run(vec![
        broken(
            "a ttl with a unit",
            extra(&format!("// x\n\n@id(\"a\")\n@ttl(\"15m\")\n{invoke}\n")),
            (EXTRA, 3, 1),
            "`@ttl(\"15m\")` must be a whole number of seconds",
        ),
        broken(
            "a ttl of zero, in the second policy of the file",
            extra(&format!(
                "// x\npermit (principal, action == Action::\"logs.read\", resource);\n\n@ttl(\"0\")\n{invoke}\n"
            )),
            (EXTRA, 4, 1),
            "`@ttl(\"0\")` must be between 1 and 86400 seconds",
        ),
        broken(
            "a ttl over a day",
            extra(&format!("@ttl(\"86401\") {invoke}")),
            (EXTRA, 1, 1),
            "must be between 1 and 86400 seconds",
        ),
        broken(
            "an obligation with a space",
            extra(&format!("\n@obligation(\"has space\")\n{invoke}\n")),
            (EXTRA, 2, 1),
            "`@obligation(\"has space\")` must be a comma-separated list",
        ),
        broken(
            "a ttl on a forbid",
            extra("\n  @ttl(\"60\") forbid (principal, action == Action::\"invoke\", resource);\n"),
            (EXTRA, 2, 3),
            "`@ttl` applies to permit policies only",
        ),
        broken(
            "an obligation on a forbid",
            extra(
                "@obligation(\"log\")\nforbid (principal, action == Action::\"invoke\", resource);",
            ),
            (EXTRA, 1, 1),
            "`@obligation` applies to permit policies only",
        ),
        broken(
            "an id with a space",
            extra(&format!("@id(\"has space\")\n{invoke}")),
            (EXTRA, 1, 1),
            "`@id(\"has space\")` must be 1 to 128 letters",
        ),
        broken(
            "more approvers than ten",
            extra(&format!(
                "\n@id(\"big-spend\")\n@obligation(\"human_approval\")\n@approvers(\"11\")\n{invoke}\n"
            )),
            (EXTRA, 2, 1),
            "policy `big-spend`: `@approvers(\"11\")` must be a whole number of distinct approvers from 1 to 10",
        ),
        broken(
            "no approvers at all",
            extra(&format!(
                "@id(\"nobody\") @obligation(\"human_approval\") @approvers(\"0\") {invoke}"
            )),
            (EXTRA, 1, 1),
            "policy `nobody`: `@approvers(\"0\")` must be a whole number",
        ),
        broken(
            "approvers without the obligation they count for",
            extra(&format!("@id(\"alone\") @approvers(\"2\") {invoke}")),
            (EXTRA, 1, 1),
            "policy `alone`: `@approvers` needs the approval obligation beside it",
        ),
        broken(
            "approvers on a forbid",
            extra("@approvers(\"2\")\nforbid (principal, action == Action::\"invoke\", resource);"),
            (EXTRA, 1, 1),
            "`@approvers` applies to permit policies only",
        ),
    ]);
}

#[test]
fn annotation_errors_point_at_their_own_policy_even_when_its_text_repeats() {
    let zero = "@ttl(\"0\") permit (principal, action == Action::\"invoke\", resource);";
    for (name, text, at) in [
        (
            "the same policy twice",
            format!("{zero}\n\n{zero}\n"),
            (EXTRA, 3, 1),
        ),
        (
            "a commented-out copy above the policy",
            format!("// was: {zero}\n{zero}\n"),
            (EXTRA, 2, 1),
        ),
    ] {
        let err = rejected(name, shipped_with(EXTRA, &text));
        assert_located(
            name,
            &err,
            at,
            "`@ttl(\"0\")` must be between 1 and 86400 seconds",
        );
    }
}

#[test]
fn ids_are_unique_and_policies_static() {
    let extra = |text| shipped_with(EXTRA, text);
    run(vec![
        broken(
            "an id the shipped bundle already uses",
            extra(
                "// x\n@id(\"assistant-invokes-analyst\")\npermit (principal, action == Action::\"invoke\", resource);\n",
            ),
            (EXTRA, 2, 1),
            "policy id `assistant-invokes-analyst` is already used at reporting.cedar:29:1",
        ),
        broken(
            "an id used twice in one file",
            extra(
                "@id(\"x\")\npermit (principal, action == Action::\"invoke\", resource);\n@id(\"x\")\npermit (principal, action == Action::\"logs.read\", resource);\n",
            ),
            (EXTRA, 3, 1),
            "policy id `x` is already used at zz_extra.cedar:1:1",
        ),
        broken(
            "a template",
            extra(
                "// x\n\npermit (principal == ?principal, action == Action::\"invoke\", resource);\n",
            ),
            (EXTRA, 3, 1),
            "policy templates are not supported",
        ),
    ]);
}

#[test]
fn the_schema_must_meet_the_policy_contract() {
    let without_schema: Vec<SourceFile> = shipped_files()
        .into_iter()
        .filter(|f| f.name != SCHEMA)
        .collect();
    let mut two_schemas = shipped_files();
    two_schemas.push(file("extra.cedarschema", "entity Extra;"));
    // The shipped schema without `Agent`, otherwise well-formed.
    let no_agent = shipped_text(SCHEMA)
        .replace(
            "entity Agent in [Group] {\n  owner?: Group,\n  expires?: datetime,\n};",
            "",
        )
        .replace("  agents: Set<Agent>,", "")
        .replace("[User, Service, Agent]", "[User, Service]")
        .replace("resource: [Agent]", "resource: [User]")
        .replace("resource: [Agent, Tool]", "resource: [Tool]");
    run(vec![
        broken(
            "no schema file",
            without_schema,
            ("<bundle>", 1, 1),
            "a bundle needs one `*.cedarschema` file",
        ),
        broken(
            "two schema files",
            two_schemas,
            ("<bundle>", 1, 1),
            "exactly one `*.cedarschema` file, found 2",
        ),
        broken(
            "a schema syntax error",
            shipped_with(SCHEMA, "entity User;\nentity Agent\nentity Service;\n"),
            (SCHEMA, 3, 1),
            "unexpected token `entity`",
        ),
        broken(
            "no `Agent` entity type",
            shipped_with(SCHEMA, &no_agent),
            (SCHEMA, 1, 1),
            "the schema must declare entity type `Agent`",
        ),
        broken(
            "no `invoke` action",
            schema_edited("action invoke appliesTo", "action \"connect\" appliesTo"),
            (SCHEMA, 1, 1),
            "the schema must declare action `invoke`",
        ),
        broken(
            "a context without an attribute Baton passes",
            schema_edited("  depth: Long, ", "  "),
            (SCHEMA, 1, 1),
            "must accept what Baton passes",
        ),
        broken(
            "a context requiring an attribute Baton never passes",
            schema_edited("  depth: Long, ", "  depth: Long, tenant: String, "),
            (SCHEMA, 1, 1),
            "must accept what Baton passes",
        ),
    ]);
}

#[test]
fn a_context_of_the_wrong_types_is_rejected() {
    // A schema whose context only has the right shape would be accepted and then deny every
    // request, since no context Baton builds would be valid for it.
    let accepted: Vec<&str> = [
        ("depth as a string", "depth: Long,", "depth: String,"),
        (
            "chain of numbers",
            "chain: Set<String>,",
            "chain: Set<Long>,",
        ),
        (
            "agents as users",
            "agents: Set<Agent>,",
            "agents: Set<User>,",
        ),
    ]
    .into_iter()
    .filter_map(
        |(name, from, to)| match PolicyBundle::compile(schema_edited(from, to)) {
            Ok(_) => Some(name),
            Err(err) => {
                assert_located(name, &err, (SCHEMA, 1, 1), "must accept what Baton passes");
                None
            }
        },
    )
    .collect();
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

/// Scopes are evaluated with the same context as `invoke`, so their actions must accept it too.
#[test]
fn every_scope_action_must_accept_the_context() {
    let err = rejected(
        "a scope action with an empty context",
        schema_edited(
            "action \"diagnostics.run\", \"logs.read\", \"metrics.read\"\n  appliesTo { principal: [User, Service, Agent], resource: [Agent], context: BatonContext };",
            "action \"diagnostics.run\", \"logs.read\", \"metrics.read\"\n  appliesTo { principal: [User, Service, Agent], resource: [Agent], context: {} };",
        ),
    );
    assert!(
        err.errors
            .iter()
            .any(|d| d.file == SCHEMA && d.message.contains("logs.read")),
        "expected the schema to be rejected naming `logs.read`, got:{}",
        listed(&err.errors)
    );
}

#[test]
fn entity_errors_point_at_the_entity() {
    let entities = |text| shipped_with(ENTITIES, text);
    let group = r#"{ "uid": { "type": "Group", "id": "g" }, "attrs": {}, "parents": [] }"#;
    run(vec![
        broken(
            "not JSON: a bare word",
            entities(&format!("[\n  {group},\n  {{ \"uid\": oops }}\n]\n")),
            (ENTITIES, 3, 12),
            "expected value at line 3 column 12",
        ),
        broken(
            "not JSON: cut short",
            entities(&format!("[\n  {group},\n  {{ \"uid\": \n")),
            (ENTITIES, 4, 1),
            "EOF while parsing",
        ),
        broken(
            "JSON, but not an array",
            entities("{}"),
            (ENTITIES, 1, 1),
            "not a JSON array of entities",
        ),
        broken(
            "an attribute of the wrong type, on the third entity",
            entities(&format!(
                "[\n  {group},\n  {group},\n    {{ \"uid\": {{ \"type\": \"User\", \"id\": \"u\" }}, \"attrs\": {{ \"department\": 5 }}, \"parents\": [] }}\n]\n"
            )),
            (ENTITIES, 4, 5),
            "does not conform to the schema",
        ),
        broken(
            "an attribute the type does not declare",
            entities(&format!(
                "[{group},\n {{ \"uid\": {{ \"type\": \"Agent\", \"id\": \"a\" }}, \"attrs\": {{ \"clearance\": \"high\" }}, \"parents\": [] }}]"
            )),
            (ENTITIES, 2, 2),
            "error during entity deserialization",
        ),
        broken(
            "a parent of a type the schema does not allow",
            entities(&format!(
                "[\n  {group},\n  {{ \"uid\": {{ \"type\": \"User\", \"id\": \"u\" }}, \"attrs\": {{}}, \"parents\": [{{ \"type\": \"Agent\", \"id\": \"a\" }}] }}\n]\n"
            )),
            (ENTITIES, 3, 3),
            "does not conform to the schema",
        ),
        broken(
            "an entity type the schema does not declare",
            entities(
                "[\n  { \"uid\": { \"type\": \"Robot\", \"id\": \"r\" }, \"attrs\": {}, \"parents\": [] }\n]\n",
            ),
            (ENTITIES, 2, 3),
            "entity deserialization",
        ),
    ]);
}

#[test]
fn entity_errors_say_what_is_wrong() {
    let err = rejected(
        "an attribute of the wrong type",
        shipped_with(
            ENTITIES,
            r#"[{ "uid": { "type": "User", "id": "u" }, "attrs": { "department": 5 }, "parents": [] }]"#,
        ),
    );
    assert!(
        err.errors.iter().any(|d| d.message.contains("department")),
        "the error should name the attribute `department`, got:{}",
        listed(&err.errors)
    );
}

#[test]
fn a_duplicate_entity_points_at_the_duplicate() {
    let err = rejected(
        "a user listed twice, differently",
        shipped_with(
            ENTITIES,
            "[\n  { \"uid\": { \"type\": \"User\", \"id\": \"u\" }, \"attrs\": {}, \"parents\": [] },\n  { \"uid\": { \"type\": \"User\", \"id\": \"u\" }, \"attrs\": { \"department\": \"it\" }, \"parents\": [] }\n]\n",
        ),
    );
    assert_located(
        "a user listed twice, differently",
        &err,
        (ENTITIES, 3, 3),
        "duplicate entity entry",
    );
}

#[test]
fn every_error_of_a_bundle_is_reported() {
    let mut files = shipped_with("zz_a.cedar", "permit (principal, action, resource");
    files.push(file(
        "zz_b.cedar",
        "\n@ttl(\"soon\") permit (principal, action == Action::\"invoke\", resource);",
    ));
    let err = rejected("two broken files", files);
    assert_located(
        "two broken files",
        &err,
        ("zz_a.cedar", 1, 36),
        "unexpected end of input",
    );
    assert_located(
        "two broken files",
        &err,
        ("zz_b.cedar", 2, 1),
        "`@ttl(\"soon\")`",
    );
    assert_eq!(err.errors.len(), 2, "errors:{}", listed(&err.errors));
}

// ---- what a valid bundle is ----

#[test]
fn policy_ids_are_the_id_annotation_or_the_position_in_the_file() {
    let bundle = PolicyBundle::compile(shipped_with(
        "extra.cedar",
        r#"// Three policies: the second is named, the others are numbered from 1.
permit (principal == Agent::"reconciler", action == Action::"metrics.read", resource == Agent::"ledger");

@id("named-extra")
@ttl("60")
permit (principal == Agent::"reconciler", action == Action::"logs.read", resource == Agent::"ledger");

permit (principal == Agent::"reconciler", action == Action::"logs.read", resource == Agent::"ledger");
"#,
    ))
    .unwrap_or_else(|e| panic!("rejected: {e}"));
    let has = |id: &str| bundle.meta(&PolicyId::new(id)).is_some();
    for id in [
        "extra.cedar#1",
        "named-extra",
        "extra.cedar#3",
        "reconciler-invokes-ledger",
    ] {
        assert!(has(id), "policy `{id}` is in the bundle");
    }
    for id in ["extra.cedar#0", "extra.cedar#2", "policy0", "extra.cedar#4"] {
        assert!(!has(id), "no policy is called `{id}`");
    }
    assert_eq!(
        bundle.meta(&PolicyId::new("named-extra")).unwrap().ttl_secs,
        Some(60)
    );

    // The ids are what decisions report.
    let reconciler = Identity::new(IdentityKind::Agent, "reconciler");
    let request = DecisionRequest {
        scopes: vec!["metrics.read".into(), "logs.read".into()],
        ..DecisionRequest::new(
            reconciler.clone(),
            Identity::new(IdentityKind::Agent, "ledger"),
            reconciler,
        )
    };
    let outcome = decide(&bundle, &request, &DecisionSettings::default()).unwrap();
    assert_eq!(outcome.effect, Effect::Allow);
    assert_eq!(
        outcome.determining_policies,
        [
            "extra.cedar#1",
            "extra.cedar#3",
            "named-extra",
            "reconciler-invokes-ledger"
        ]
    );
    assert_eq!(outcome.ttl_secs, 60);
}

#[test]
fn the_shipped_policies_are_all_named() {
    let bundle = PolicyBundle::load(Path::new(SHIPPED)).unwrap();
    let ids: Vec<String> = bundle
        .sources()
        .iter()
        .filter(|f| f.name.ends_with(".cedar"))
        .flat_map(|f| {
            f.text
                .split("@id(\"")
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(ids.len(), bundle.policy_count(), "one `@id` per policy");
    for id in &ids {
        assert!(
            bundle.meta(&PolicyId::new(id.as_str())).is_some(),
            "`{id}` names a policy"
        );
    }
    let approval = bundle
        .meta(&PolicyId::new("refunds-over-500-need-approval"))
        .unwrap();
    assert_eq!(approval.ttl_secs, Some(120));
    assert!(approval.obligations.contains("human_approval"));
    assert!(bundle.warnings().is_empty(), "{:?}", bundle.warnings());
}

#[test]
fn the_version_is_a_content_address() {
    let version = |files| {
        PolicyBundle::compile(files)
            .unwrap_or_else(|e| panic!("rejected: {e}"))
            .version()
            .to_owned()
    };
    let shipped = version(shipped_files());
    assert_eq!(
        PolicyBundle::load(Path::new(SHIPPED)).unwrap().version(),
        shipped,
        "loading and compiling the same files agree"
    );
    assert_eq!(version(shipped_files()), shipped, "stable across builds");
    let mut reversed = shipped_files();
    reversed.reverse();
    assert_eq!(version(reversed), shipped, "independent of file order");

    let mut commented = shipped_files();
    commented
        .iter_mut()
        .find(|f| f.name == "refunds.cedar")
        .unwrap()
        .text
        .push_str("\n// reviewed\n");
    assert_ne!(version(commented), shipped, "a comment is content");
    let mut renamed = shipped_files();
    renamed
        .iter_mut()
        .find(|f| f.name == "refunds.cedar")
        .unwrap()
        .name = "refund.cedar".to_owned();
    assert_ne!(version(renamed), shipped, "a file's name is content");
    let edited = shipped_with(
        "refunds.cedar",
        &shipped_text("refunds.cedar").replace("@ttl(\"120\")", "@ttl(\"60\")"),
    );
    assert_ne!(version(edited), shipped, "an annotation is content");
}

#[test]
fn files_outside_the_contract_are_ignored_on_disk() {
    let dir = copy_of_shipped();
    std::fs::write(dir.path().join("README.md"), "not a bundle file").unwrap();
    std::fs::create_dir(dir.path().join("nested.cedar")).unwrap();
    let loaded = PolicyBundle::load(dir.path()).unwrap_or_else(|e| panic!("rejected: {e}"));
    let shipped = PolicyBundle::load(Path::new(SHIPPED)).unwrap();
    assert_eq!(loaded.version(), shipped.version());
    assert_eq!(loaded.policy_count(), shipped.policy_count());
}

#[test]
fn a_bundle_read_from_disk_is_checked_the_same_way() {
    let dir = copy_of_shipped();
    std::fs::remove_file(dir.path().join(SCHEMA)).unwrap();
    let err = PolicyBundle::load(dir.path()).expect_err("no schema");
    assert_located(
        "no schema on disk",
        &err,
        ("<bundle>", 1, 1),
        "a bundle needs one `*.cedarschema` file",
    );

    let missing = dir.path().join("no-such-dir");
    let err = PolicyBundle::load(&missing).expect_err("no directory");
    assert!(
        err.errors[0]
            .message
            .contains("cannot read the bundle directory"),
        "{}",
        listed(&err.errors)
    );
}

#[test]
fn a_bundle_without_policies_is_valid_but_warned_about() {
    let bundle = PolicyBundle::compile(vec![file(SCHEMA, &shipped_text(SCHEMA))])
        .unwrap_or_else(|e| panic!("rejected: {e}"));
    assert_eq!(bundle.policy_count(), 0);
    assert!(
        bundle
            .warnings()
            .iter()
            .any(|w| w.message.contains("no policies")),
        "{:?}",
        bundle.warnings()
    );
}

// ---- `baton validate` ----

fn copy_of_shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in shipped_files() {
        std::fs::write(dir.path().join(&f.name), &f.text).unwrap();
    }
    dir
}

fn baton_validate(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap()
}

/// `file:line:column: message`, with 1-based numbers.
fn is_located(line: &str) -> bool {
    let mut parts = line.splitn(4, ':');
    let (Some(file), Some(l), Some(c), Some(message)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !file.is_empty()
        && l.parse::<usize>().is_ok_and(|n| n >= 1)
        && c.parse::<usize>().is_ok_and(|n| n >= 1)
        && message.starts_with(' ')
        && message.len() > 1
}

#[test]
fn validate_accepts_the_shipped_bundle() {
    let out = baton_validate(Path::new(SHIPPED));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let bundle = PolicyBundle::load(Path::new(SHIPPED)).unwrap();
    assert!(
        stdout.contains("valid")
            && stdout.contains(&format!("{} policies", bundle.policy_count()))
            && stdout.contains(bundle.version()),
        "stdout: {stdout}"
    );
    assert!(stderr.trim().is_empty(), "stderr: {stderr}");
}

#[test]
fn validate_rejects_a_broken_bundle_with_located_errors() {
    let dir = copy_of_shipped();
    std::fs::write(
        dir.path().join("zz_broken.cedar"),
        "// broken\npermit (\n  principal,\n  action == Action::\"invoke\"\n  resource\n);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("zz_ttl.cedar"),
        "@ttl(\"15m\")\npermit (principal, action == Action::\"invoke\", resource);\n",
    )
    .unwrap();
    let out = baton_validate(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a broken bundle must fail validation; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("zz_broken.cedar:5:3: unexpected token `resource`")),
        "stderr: {stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("zz_ttl.cedar:1:1: `@ttl(\"15m\")`")),
        "stderr: {stderr}"
    );
    let (summary, errors) = lines.split_last().expect("stderr is not empty");
    assert!(summary.contains("2 error(s)"), "summary: {summary}");
    for line in errors {
        assert!(is_located(line), "not `file:line:column: message`: {line}");
    }
}

#[test]
fn validate_fails_on_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = baton_validate(&dir.path().join("absent"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().next().is_some_and(is_located),
        "stderr: {stderr}"
    );
}

/// A tests file with one case: bob's refund of 750, which needs a human, expected `decision`.
fn refund_case(decision: &str) -> String {
    serde_json::json!({ "cases": [{
        "name": "a refund over 500 waits for a human",
        "caller": "Agent:support-assistant", "callee": "Agent:refund-agent",
        "principal": "User:bob", "scopes": ["refunds.issue"], "context": {"amount": 750},
        "expect": {"decision": decision, "obligations": ["human_approval"]}
    }]})
    .to_string()
}

#[test]
fn a_test_case_can_expect_approval_required() {
    let dir = copy_of_shipped();
    std::fs::write(
        dir.path().join("tests.json"),
        refund_case("APPROVAL_REQUIRED"),
    )
    .unwrap();
    let out = baton_validate(dir.path());
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Authorize would not answer ALLOW, so a case expecting it fails, saying what it got.
    std::fs::write(dir.path().join("tests.json"), refund_case("ALLOW")).unwrap();
    let out = baton_validate(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("expected ALLOW, got APPROVAL_REQUIRED"),
        "stderr: {stderr}"
    );
}
