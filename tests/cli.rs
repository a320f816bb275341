//! The `baton` binary end to end: `serve` as a child process, `authorize`, `audit` and `validate`
//! against it, exit codes and signals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BATON: &str = env!("CARGO_BIN_EXE_baton");
/// How long a server gets to start listening, or to exit.
const DEADLINE: Duration = Duration::from_secs(10);
/// Between readiness probes; the only pause in these tests, and never a fixed wait.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

fn shipped_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A port nothing listens on right now. Another process may take it before the server binds it,
/// so [`Server::start`] retries with a new port when the bind fails.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("a bound address")
        .port()
}

/// Waits for `child` to exit, for at most [`DEADLINE`].
fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Some(status) = child.try_wait().expect("query the child") {
            return Some(status);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    None
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut text);
    }
    text
}

/// A `baton serve` child process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Where the admin API listens, when it is served.
    admin: Option<SocketAddr>,
    /// The server's own bundle store and audit trail, so servers never share revisions or
    /// records.
    _store: tempfile::TempDir,
}

impl Server {
    /// Serves the shipped bundle on a free port, without the admin API, and waits until it
    /// accepts connections.
    fn start() -> Self {
        Self::launch(None, &[])
    }

    /// Also serves the admin API, on a free port, with `token` as `BATON_ADMIN_TOKEN`; logs as
    /// JSON, so tests can read what it logged.
    fn with_admin_token(token: &str) -> Self {
        Self::launch(Some(token), &[])
    }

    /// As [`Server::with_admin_token`], with `env` set too.
    fn with_admin_token_and(token: &str, env: &[(&str, &str)]) -> Self {
        Self::launch(Some(token), env)
    }

    fn launch(admin_token: Option<&str>, env: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let admin = admin_token.map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())));
            let store = tempfile::tempdir().expect("a temporary directory");
            let mut command = Command::new(BATON);
            command
                .args([
                    "serve",
                    "--http-listen",
                    "127.0.0.1:0",
                    "--listen",
                    &addr.to_string(),
                    "--bundle",
                ])
                .arg(shipped_bundle())
                .arg("--store-dir")
                .arg(store.path())
                .arg("--audit-file")
                .arg(store.path().join("audit.jsonl"))
                .arg("--audit-spool")
                .arg(store.path().join("audit.spool.jsonl"))
                .env_remove("BATON_LOG")
                // Whether the admin API is served is the test's choice, not the environment's.
                .env_remove("BATON_ADMIN_TOKEN")
                .env_remove("BATON_ADMIN_TOKEN_FILE")
                .env_remove("BATON_APPROVERS")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if let (Some(token), Some(admin)) = (admin_token, admin) {
                command
                    .args(["--admin-listen", &admin.to_string(), "--log-format", "json"])
                    .env("BATON_ADMIN_TOKEN", token);
            }
            let mut child = command.spawn().expect("start `baton serve`");
            let listening = |a: &SocketAddr| TcpStream::connect_timeout(a, POLL_INTERVAL).is_ok();
            let start = Instant::now();
            loop {
                let exited = child.try_wait().expect("query the server");
                if exited.is_none() && listening(&addr) && admin.iter().all(listening) {
                    return Self {
                        child,
                        addr,
                        admin,
                        _store: store,
                    };
                }
                if let Some(status) = exited {
                    let stderr = stderr_of(&mut child);
                    if stderr.contains("cannot listen") {
                        break; // The port was taken in between: try another.
                    }
                    panic!("`baton serve` exited with {status} before listening:\n{stderr}");
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "`baton serve` is not listening on {addr} after {DEADLINE:?}"
                );
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        panic!("no free port for `baton serve` after 3 tries");
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn admin_url(&self) -> String {
        let admin = self.admin.expect("a server with the admin API");
        format!("http://{admin}")
    }

    /// Stops the server at once and returns what it logged.
    fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        stderr_of(&mut self.child)
    }

    /// Runs `baton authorize` against this server with `args`.
    fn authorize(&self, args: &[&str]) -> Output {
        Command::new(BATON)
            .args(["authorize", "--server", &self.url()])
            .args(args)
            .env_remove("BATON_SERVER")
            .output()
            .expect("run `baton authorize`")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const REPORT: &[&str] = &[
    "--caller",
    "Agent:user-assistant",
    "--callee",
    "Agent:data-analyst",
    "--principal",
    "User:alice",
    "--scope",
    "reports.generate,finance.read",
];

const CONTRACTOR: &[&str] = &[
    "--caller",
    "Agent:user-assistant",
    "--callee",
    "Agent:data-analyst",
    "--principal",
    "User:carol",
    "--scope",
    "finance.read",
];

/// bob's refund through the support assistant; over 500 it needs a human's approval.
const REFUND: &[&str] = &[
    "--caller",
    "Agent:support-assistant",
    "--callee",
    "Agent:refund-agent",
    "--principal",
    "User:bob",
    "--scope",
    "refunds.issue",
];

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// Asserts the command exited 1 and said `needle` on stderr.
fn assert_failed_with(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stdout(output));
    assert!(stderr(output).contains(needle), "{}", stderr(output));
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn authorize_prints_a_readable_allow() {
    let server = Server::start();

    let output = server.authorize(REPORT);

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().next(), Some("ALLOW"), "{text}");
    assert!(
        text.contains("User alice → Agent user-assistant → Agent data-analyst"),
        "{text}"
    );
    assert!(text.contains("reports.generate, finance.read"), "{text}");
}

#[test]
fn authorize_prints_json_with_the_proto_field_names() {
    let server = Server::start();

    let output = server.authorize(&[REPORT, &["--json"]].concat());

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("the output is JSON");
    assert_eq!(json["decision"], "ALLOW");
    assert_eq!(
        json["granted_scopes"],
        serde_json::json!(["reports.generate", "finance.read"])
    );
    assert_eq!(json["refused_scopes"], serde_json::json!([]));
    assert_eq!(json["ttl_seconds"], 900);
    assert_eq!(
        json["chain"],
        serde_json::json!([
            { "type": "User", "id": "alice" },
            { "type": "Agent", "id": "user-assistant" },
            { "type": "Agent", "id": "data-analyst" },
        ])
    );
    assert!(json["expires_at"].is_string(), "{json}");
    assert!(json["denial"].is_null(), "{json}");
    for id in ["decision_id", "transaction_id", "bundle_version"] {
        assert!(
            json[id].as_str().is_some_and(|s| !s.is_empty()),
            "`{id}` in {json}"
        );
    }
}

#[test]
fn authorize_passes_the_context_and_shows_obligations() {
    let server = Server::start();

    let output =
        server.authorize(&[REFUND, &["--context", r#"{"amount": 750}"#, "--json"]].concat());

    // Only ALLOW exits 0; waiting for a human has its own status, 4.
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("the output is JSON");
    assert_eq!(json["decision"], "APPROVAL_REQUIRED");
    assert_eq!(json["obligations"], serde_json::json!(["human_approval"]));
    assert_eq!(json["approval"]["status"], "PENDING");
    assert!(json["verdict"].is_null());
}

#[test]
fn authorize_exits_3_on_deny() {
    let server = Server::start();

    let output = server.authorize(CONTRACTOR);

    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().next(), Some("DENY"), "{text}");
    assert!(text.contains("FORBIDDEN_BY_POLICY"), "{text}");
    assert!(text.contains("contractors-never-read-finance"), "{text}");

    let json = server.authorize(&[CONTRACTOR, &["--json"]].concat());
    assert_eq!(json.status.code(), Some(3), "{}", stderr(&json));
    let json: Value = serde_json::from_str(&stdout(&json)).expect("the output is JSON");
    assert_eq!(json["decision"], "DENY");
    assert_eq!(json["refused_scopes"][0]["reason"], "FORBIDDEN_BY_POLICY");
    assert_eq!(json["denial"]["code"], "NO_SCOPE_GRANTED");
}

#[test]
fn authorize_exits_1_naming_the_field_of_a_bad_request() {
    let server = Server::start();

    let output = server.authorize(&[
        "--caller",
        "Robot:user-assistant",
        "--callee",
        "Agent:data-analyst",
        "--principal",
        "User:alice",
        "--scope",
        "reports.generate",
    ]);

    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(output.stdout.is_empty(), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("caller.type"), "{err}");
}

#[test]
fn authorize_exits_1_when_no_server_answers() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));

    let output = Command::new(BATON)
        .args(["authorize", "--server", &format!("http://{addr}")])
        .args(REPORT)
        .output()
        .expect("run `baton authorize`");

    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stderr(&output).starts_with("error:"), "{}", stderr(&output));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start();
    // A connection that stays open must not keep the server from stopping.
    let ok = server.authorize(REPORT);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));

    let kill = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run `kill`");
    assert!(kill.success());

    let status = wait_exit(&mut server.child).expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut server.child));
    assert!(
        TcpStream::connect_timeout(&server.addr, POLL_INTERVAL).is_err(),
        "{} still accepts connections",
        server.addr
    );
}

/// Runs `baton audit` for `transaction` against `server`, with `token` as `BATON_ADMIN_TOKEN`.
fn audit(server: &str, token: &str, transaction: &str) -> Output {
    Command::new(BATON)
        .args(["audit", transaction])
        .env("BATON_ADMIN_SERVER", server)
        .env("BATON_ADMIN_TOKEN", token)
        .output()
        .expect("run `baton audit`")
}

#[test]
fn audit_reads_the_trail_on_the_admin_port_with_the_admin_token_and_logs_who_read_what() {
    const TOKEN: &str = "cli-test-0123456789abcdef";
    let mut server = Server::with_admin_token(TOKEN);
    let allowed = server.authorize(&[REPORT, &["--json"]].concat());
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
    let json: Value = serde_json::from_str(&stdout(&allowed)).expect("the output is JSON");
    let txn = json["transaction_id"].as_str().expect("a transaction id");

    // The record is written in the background, a batch at a time.
    let start = Instant::now();
    let tree = loop {
        let output = audit(&server.admin_url(), TOKEN, txn);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        if text.contains("ALLOW") {
            break text;
        }
        assert!(start.elapsed() < DEADLINE, "no record of {txn}:\n{text}");
        std::thread::sleep(POLL_INTERVAL);
    };
    let hop = "└─ ALLOW  User alice → Agent user-assistant → Agent data-analyst";
    assert!(
        tree.starts_with(&format!("transaction {txn}\n{hop}\n")),
        "{tree}"
    );

    let refused = audit(&server.admin_url(), "wrong-0123456789abcdef", txn);
    assert_failed_with(&refused, "Unauthenticated");
    let misdirected = audit(&server.url(), TOKEN, txn);
    assert_failed_with(&misdirected, "Unimplemented");

    let log = server.kill();
    assert!(
        !log.contains(TOKEN),
        "the log shows the admin token:\n{log}"
    );
    let queries: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "audit query")
        .collect();
    assert!(!queries.is_empty(), "no audit query logged:\n{log}");
    for query in &queries {
        assert_eq!(query["author"], "admin", "{query}");
        assert_eq!(query["by"], "transaction_id", "{query}");
        assert_eq!(query["selected"], txn, "{query}");
    }
}

#[test]
fn without_an_admin_token_audit_queries_are_off_and_the_log_says_so() {
    let mut server = Server::start();

    let misdirected = audit(&server.url(), "any-0123456789abcdef", "some-transaction");

    assert_failed_with(&misdirected, "Unimplemented");
    let log = server.kill();
    assert!(
        log.lines()
            .any(|line| line.contains("the admin API is off") && line.contains("audit queries")),
        "{log}"
    );
}

/// Runs `baton govern` with `args` against `server`, with `token` as `BATON_ADMIN_TOKEN`.
fn govern(server: &str, token: &str, args: &[&str]) -> Output {
    Command::new(BATON)
        .arg("govern")
        .args(args)
        .env("BATON_ADMIN_SERVER", server)
        .env("BATON_ADMIN_TOKEN", token)
        .output()
        .expect("run `baton govern`")
}

#[test]
fn govern_approvals_lists_what_waits_for_an_approver_as_lines_or_json() {
    const TOKEN: &str = "cli-test-0123456789abcdef";
    let server = Server::with_admin_token(TOKEN);
    let admin = server.admin_url();
    let refund = |amount: &str| {
        let context = format!(r#"{{"amount": {amount}}}"#);
        let output = server.authorize(&[REFUND, &["--context", &context, "--json"]].concat());
        assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
        let json: Value = serde_json::from_str(&stdout(&output)).expect("the output is JSON");
        json["approval"]["approval_id"]
            .as_str()
            .expect("an approval id")
            .to_owned()
    };
    let approved = refund("750");
    let waiting = refund("760");
    let decided = govern(
        &admin,
        TOKEN,
        &["approve", &approved, "--rationale", "customer verified"],
    );
    assert_eq!(decided.status.code(), Some(0), "{}", stderr(&decided));

    let lines = govern(&admin, TOKEN, &["approvals"]);
    assert_eq!(lines.status.code(), Some(0), "{}", stderr(&lines));
    let text = stdout(&lines);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows[0].starts_with(&format!("PENDING  {waiting}  User bob → Agent support-assistant → Agent refund-agent  [refunds.issue]  expires ")), "{text}");
    assert!(
        rows[1].starts_with(&format!("APPROVED {approved}  ")),
        "{text}"
    );

    let pending = govern(
        &admin,
        TOKEN,
        &["approvals", "--status", "pending", "--json"],
    );
    assert_eq!(pending.status.code(), Some(0), "{}", stderr(&pending));
    let json: Value = serde_json::from_str(&stdout(&pending)).expect("the output is JSON");
    assert_eq!(
        json["approvals"].as_array().map(Vec::len),
        Some(1),
        "{json}"
    );
    let first = &json["approvals"][0];
    assert_eq!(first["approval_id"], waiting.as_str());
    assert_eq!(first["status"], "PENDING");
    assert_eq!(
        first["chain"][0],
        serde_json::json!({"type": "User", "id": "bob"})
    );
    assert_eq!(first["scopes"], serde_json::json!(["refunds.issue"]));
    assert_eq!(first["in_outbox"], false);
    assert_eq!(json["truncated"], false);
    assert_eq!(json["incomplete"], false);

    let nobody = govern(&admin, TOKEN, &["approvals", "--principal", "User:alice"]);
    assert_eq!(stdout(&nobody), "no approvals\n");
    let too_many = govern(&admin, TOKEN, &["approvals", "--limit", "5000"]);
    assert_failed_with(&too_many, "limit");
    let refused = govern(&admin, "wrong-0123456789abcdef", &["approvals"]);
    assert_failed_with(&refused, "Unauthenticated");
}

#[test]
fn govern_shows_how_many_approvers_an_approval_still_needs() {
    const TOKEN: &str = "cli-test-0123456789abcdef";
    // The environment's admin token is named `admin`; here it approves as carol.
    let server = Server::with_admin_token_and(TOKEN, &[("BATON_APPROVERS", "admin=User:carol")]);
    let admin = server.admin_url();
    let context = r#"{"amount": 6000}"#;
    let output = server.authorize(&[REFUND, &["--context", context, "--json"]].concat());
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("the output is JSON");
    let id = json["approval"]["approval_id"]
        .as_str()
        .expect("an approval id")
        .to_owned();

    let waiting = govern(&admin, TOKEN, &["approvals"]);
    let text = stdout(&waiting);
    assert!(text.contains("  approvals 0/2 (2 more needed)"), "{text}");

    let first = govern(
        &admin,
        TOKEN,
        &["approve", &id, "--rationale", "invoice checked"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let shown = stdout(&first);
    assert!(shown.contains(&format!("approval {id} PENDING")), "{shown}");
    assert!(
        shown.contains("approvers    2 required, 1 more needed"),
        "{shown}"
    );
    assert!(shown.contains("approved     by User:carol at "), "{shown}");
    assert!(shown.contains(": invoice checked"), "{shown}");

    let listed = govern(&admin, TOKEN, &["approvals", "--json"]);
    let json: Value = serde_json::from_str(&stdout(&listed)).expect("the output is JSON");
    let first = &json["approvals"][0];
    assert_eq!(first["approvals_required"], 2, "{json}");
    assert_eq!(first["approvals_needed"], 1, "{json}");
    assert_eq!(first["approvers"][0]["approver"], "User:carol", "{json}");
    assert_eq!(first["approvers"][0]["admin"], "admin", "{json}");

    let twice = govern(&admin, TOKEN, &["approve", &id, "--rationale", "again"]);
    assert_failed_with(&twice, "already approved");
}

#[test]
fn serve_refuses_an_approver_that_is_no_admin_or_no_user() {
    let store = tempfile::tempdir().expect("a temporary directory");
    for (approvers, says) in [
        (
            "ghost=User:carol",
            "`ghost` in `ghost=User:carol` is not the name of an admin",
        ),
        (
            "admin=Agent:refund-agent",
            "approvers are people of the directory",
        ),
    ] {
        let output = Command::new(BATON)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .arg("--bundle")
            .arg(shipped_bundle())
            .arg("--store-dir")
            .arg(store.path())
            .env_remove("BATON_ADMIN_TOKEN_FILE")
            .env("BATON_ADMIN_TOKEN", "cli-test-0123456789abcdef")
            .env("BATON_APPROVERS", approvers)
            .stdin(Stdio::null())
            .output()
            .expect("run `baton serve`");
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains(says), "{}", stderr(&output));
    }
}

#[test]
fn serve_refuses_a_broken_bundle_with_located_errors() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for entry in std::fs::read_dir(shipped_bundle()).expect("read the shipped bundle") {
        let entry = entry.expect("a bundle file");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy a file");
    }
    // The comma after `action` is missing: the parser stops at `resource`, line 4, column 3.
    std::fs::write(
        dir.path().join("broken.cedar"),
        "permit (\n  principal,\n  action\n  resource\n);\n",
    )
    .expect("write the broken policy");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));

    let mut child = Command::new(BATON)
        .args([
            "serve",
            "--http-listen",
            "127.0.0.1:0",
            "--listen",
            &addr.to_string(),
            "--bundle",
        ])
        .arg(dir.path())
        .arg("--store-dir")
        .arg(dir.path().join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start `baton serve`");
    let status = wait_exit(&mut child);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.expect("`baton serve` exits on a broken bundle");
    let err = stderr_of(&mut child);

    assert!(!status.success(), "exited with {status}: {err}");
    assert!(err.contains("broken.cedar:4:3:"), "{err}");
    assert!(err.contains("not serving"), "{err}");
}

#[test]
fn validate_accepts_the_shipped_bundle_and_rejects_a_broken_one() {
    let ok = Command::new(BATON)
        .arg("validate")
        .arg(shipped_bundle())
        .output()
        .expect("run `baton validate`");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("valid"), "{}", stdout(&ok));

    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(
        shipped_bundle().join("baton.cedarschema"),
        dir.path().join("baton.cedarschema"),
    )
    .expect("copy the schema");
    std::fs::write(
        dir.path().join("typo.cedar"),
        "permit (principal, action == Action::\"reports.generat\", resource);\n",
    )
    .expect("write a policy");
    let broken = Command::new(BATON)
        .arg("validate")
        .arg(dir.path())
        .output()
        .expect("run `baton validate`");
    assert_failed_with(&broken, "typo.cedar:1:");
}

/// 150 nested parentheses used to overflow the stack and kill `baton validate` by a signal.
#[test]
fn validate_exits_1_on_a_policy_nested_ten_thousand_deep() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(
        shipped_bundle().join("baton.cedarschema"),
        dir.path().join("baton.cedarschema"),
    )
    .expect("copy the schema");
    let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
    std::fs::write(
        dir.path().join("deep.cedar"),
        format!("permit (principal, action, resource) when {{ {deep} }};\n"),
    )
    .expect("write a policy");
    let refused = Command::new(BATON)
        .arg("validate")
        .arg(dir.path())
        .output()
        .expect("run `baton validate`");
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("deep.cedar:1:76: nesting deeper than 32"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).len() < 1024, "{}", stderr(&refused));
}

#[test]
fn policy_test_runs_the_cases_locally_and_fails_on_a_wrong_expectation() {
    let ok = Command::new(BATON)
        .args(["policy", "test"])
        .arg(shipped_bundle())
        .output()
        .expect("run `baton policy test`");
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("0 failed"), "{}", stdout(&ok));

    let dir = tempfile::tempdir().expect("a temporary directory");
    for entry in std::fs::read_dir(shipped_bundle()).expect("read the shipped bundle") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("a name")))
            .expect("copy a bundle file");
    }
    std::fs::write(
        dir.path().join("wrong.tests.json"),
        r#"{"cases": [{"name": "carol reads finance data", "caller": "Agent:user-assistant",
            "callee": "Agent:data-analyst", "principal": "User:carol",
            "scopes": ["finance.read"], "expect": {"decision": "ALLOW"}}]}"#,
    )
    .expect("write a test case");
    let failed = Command::new(BATON)
        .args(["policy", "test"])
        .arg(dir.path())
        .output()
        .expect("run `baton policy test`");
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    let out = stdout(&failed);
    assert!(
        out.contains("FAIL carol reads finance data") && out.contains("wrong.tests.json:1:"),
        "{out}"
    );
}

/// A copy of the shipped bundle with `extra` files beside (or instead of) its own.
fn bundle_with(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for entry in std::fs::read_dir(shipped_bundle()).expect("read the shipped bundle") {
        let path = entry.expect("an entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("a name")))
            .expect("copy a bundle file");
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).expect("write a bundle file");
    }
    dir
}

fn policy_test(dir: &Path, args: &[&str]) -> Output {
    Command::new(BATON)
        .args(["policy", "test"])
        .arg(dir)
        .args(args)
        .env_remove("BATON_MAX_DEPTH")
        .output()
        .expect("run `baton policy test`")
}

/// A case named with every character XML must escape, which the bundle answers otherwise.
const WRONG_CASE: &str = r#"{"cases": [{"name": "carol <reads> \"finance\" & 'data'",
    "caller": "Agent:user-assistant", "callee": "Agent:data-analyst", "principal": "User:carol",
    "scopes": ["finance.read"], "expect": {"decision": "ALLOW", "ttl_secs": 900}}]}"#;
const WRONG_NAME: &str = r#"carol <reads> "finance" & 'data'"#;

#[test]
fn policy_test_reports_a_failed_case_in_every_format_and_exits_1() {
    let dir = bundle_with(&[("wrong.tests.json", WRONG_CASE)]);

    let text = policy_test(dir.path(), &[]);
    assert_eq!(text.status.code(), Some(1), "{}", stdout(&text));
    let out = stdout(&text);
    assert!(
        out.contains(&format!("FAIL {WRONG_NAME}"))
            && out.contains("wrong.tests.json:1:")
            && out.contains("expected ALLOW, got DENY")
            && out.contains("expected ttl_secs 900, got 0"),
        "{out}"
    );

    let json = policy_test(dir.path(), &["--format", "json"]);
    assert_eq!(json.status.code(), Some(1), "{}", stderr(&json));
    let report: Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    let cases = report["cases"].as_array().expect("cases");
    let wrong = cases
        .iter()
        .find(|c| c["name"] == WRONG_NAME)
        .expect("the wrong case");
    assert_eq!(wrong["outcome"], "failed");
    assert_eq!(wrong["expected"]["decision"], "ALLOW");
    assert_eq!(wrong["expected"]["ttl_secs"], 900);
    assert_eq!(wrong["got"]["decision"], "DENY");
    assert_eq!(
        wrong["got"]["determining_policies"],
        serde_json::json!(["contractors-never-read-finance"])
    );
    assert!(wrong["duration_ms"].as_f64().is_some(), "{wrong}");
    assert!(
        cases
            .iter()
            .filter(|c| c["name"] != WRONG_NAME)
            .all(|c| c["outcome"] == "passed"),
        "{report}"
    );
    assert_eq!(report["summary"]["failed"], 1);
    assert!(report["coverage"]["unexercised"].is_array(), "{report}");

    let junit = policy_test(dir.path(), &["--format", "junit"]);
    assert_eq!(junit.status.code(), Some(1), "{}", stderr(&junit));
    let xml = stdout(&junit);
    // Well-formed: every element closes, every entity is one XML knows.
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut elements = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)) => {
                for attr in e.attributes() {
                    attr.expect("a well-formed attribute")
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("a known entity");
                }
                elements += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("not well-formed at {}: {e}\n{xml}", reader.error_position()),
        }
    }
    assert!(elements > 3, "{xml}");
    // And it reads back as JUnit with every case and its outcome.
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("a JUnit report");
    assert_eq!(
        (report.tests, report.failures, report.errors),
        (cases.len(), 1, 0)
    );
    let suites: Vec<&str> = report.test_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(suites, ["tests.json", "wrong.tests.json"]);
    let junit_cases: Vec<_> = report
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .collect();
    assert_eq!(junit_cases.len(), cases.len());
    for case in junit_cases {
        let failed = matches!(
            &case.status,
            quick_junit::TestCaseStatus::NonSuccess {
                kind: quick_junit::NonSuccessKind::Failure,
                ..
            }
        );
        assert_eq!(failed, case.name.as_str() == WRONG_NAME, "{:?}", case.name);
        if let quick_junit::TestCaseStatus::NonSuccess { message, .. } = &case.status {
            let message = message.as_ref().expect("a failure message");
            assert!(
                message.as_str().contains("expected ALLOW, got DENY"),
                "{message:?}"
            );
        }
    }
    assert!(stderr(&junit).contains("coverage:"), "{}", stderr(&junit));
}

#[test]
fn policy_test_filter_selects_cases_by_substring_or_glob() {
    let dir = bundle_with(&[("wrong.tests.json", WRONG_CASE)]);
    let names = |output: &Output| -> Vec<String> {
        let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
        report["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| c["name"].as_str().expect("a name").to_owned())
            .collect()
    };
    let refunds = policy_test(dir.path(), &["--format", "json", "--filter", "refund"]);
    assert_eq!(refunds.status.code(), Some(0), "{}", stderr(&refunds));
    let selected = names(&refunds);
    assert!(selected.len() >= 3, "{selected:?}");
    assert!(
        selected.iter().all(|n| n.contains("refund")),
        "{selected:?}"
    );

    // A glob matches whole names; filters add up.
    let globbed = policy_test(
        dir.path(),
        &[
            "--format",
            "json",
            "--filter",
            "a refund ov*",
            "--filter",
            "carol*",
        ],
    );
    assert_eq!(globbed.status.code(), Some(1), "{}", stderr(&globbed));
    assert_eq!(
        names(&globbed),
        [
            "a refund over 500 needs a human's approval",
            "a refund over 10000 is never allowed, approval or not",
            WRONG_NAME
        ]
    );

    let none = policy_test(dir.path(), &["--filter", "no such case"]);
    assert_eq!(none.status.code(), Some(2), "{}", stdout(&none));
    assert!(stderr(&none).contains("no case"), "{}", stderr(&none));
}

#[test]
fn policy_test_runs_under_the_settings_flags_of_serve() {
    let name = "alice's assistant gets her report and finance data, not finance writes";
    let shallow = policy_test(&shipped_bundle(), &["--max-depth", "1", "--filter", name]);
    assert_eq!(shallow.status.code(), Some(1), "{}", stdout(&shallow));
    assert!(
        stdout(&shallow).contains("expected ALLOW, got DENY (CHAIN_TOO_DEEP"),
        "{}",
        stdout(&shallow)
    );

    // The 900 s of `assistant-scopes-at-analyst`, capped by `--max-ttl`.
    let case = r#"{"cases": [{"name": "capped", "caller": "Agent:user-assistant",
        "callee": "Agent:data-analyst", "principal": "User:alice",
        "scopes": ["reports.generate"], "expect": {"decision": "ALLOW", "ttl_secs": 600}}]}"#;
    let dir = bundle_with(&[("tests.json", case)]);
    let capped = policy_test(dir.path(), &["--max-ttl", "600"]);
    assert_eq!(capped.status.code(), Some(0), "{}", stdout(&capped));
    let uncapped = policy_test(dir.path(), &[]);
    assert_eq!(uncapped.status.code(), Some(1), "{}", stdout(&uncapped));
    assert!(
        stdout(&uncapped).contains("expected ttl_secs 600, got 900"),
        "{}",
        stdout(&uncapped)
    );
}

#[test]
fn policy_test_coverage_names_the_policies_no_case_exercised() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(
        shipped_bundle().join("baton.cedarschema"),
        dir.path().join("baton.cedarschema"),
    )
    .expect("copy the schema");
    std::fs::write(
        dir.path().join("p.cedar"),
        r#"@id("monitoring-invokes-diagnostics")
permit (principal == Service::"monitoring", action == Action::"invoke", resource == Agent::"diagnostics");
@id("monitoring-reads-logs")
permit (principal == Service::"monitoring", action == Action::"logs.read", resource == Agent::"diagnostics");
@id("monitoring-reads-metrics")
permit (principal == Service::"monitoring", action == Action::"metrics.read", resource == Agent::"diagnostics");
@id("no-log-reads-at-ledger")
forbid (principal, action == Action::"logs.read", resource == Agent::"ledger");
"#,
    )
    .expect("write the policies");
    std::fs::write(
        dir.path().join("tests.json"),
        r#"{"cases": [{"name": "logs", "caller": "Service:monitoring",
            "callee": "Agent:diagnostics", "scopes": ["logs.read"],
            "expect": {"decision": "ALLOW", "ttl_secs": 300,
                       "determining_policies": ["monitoring-invokes-diagnostics", "monitoring-reads-logs"]}}]}"#,
    )
    .expect("write the cases");

    let json = policy_test(dir.path(), &["--format", "json"]);
    assert_eq!(json.status.code(), Some(0), "{}", stdout(&json));
    let report: Value = serde_json::from_slice(&json.stdout).expect("one JSON object");
    assert_eq!(
        report["coverage"],
        serde_json::json!({
            "policies": 4,
            "exercised": 2,
            "unexercised": ["monitoring-reads-metrics", "no-log-reads-at-ledger"],
            "forbids_never_matched": ["no-log-reads-at-ledger"],
        })
    );
    let text = stdout(&policy_test(dir.path(), &[]));
    assert!(
        text.contains("coverage: 2 of 4 policies exercised")
            && text.contains("    monitoring-reads-metrics\n"),
        "{text}"
    );
}

#[test]
fn policy_test_exits_2_on_an_invalid_bundle_or_case() {
    let typo = r#"{"cases": [{"name": "typo", "caller": "Service:monitoring",
        "callee": "Agent:refund-agent", "scopes": ["refunds.issue"],
        "expect": {"decision": "DENY", "determining_policies": ["refunds-hard-limt"]}}]}"#;
    let dir = bundle_with(&[("typo.tests.json", typo)]);
    let refused = policy_test(dir.path(), &["--format", "junit"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("typo.tests.json:1:")
            && stderr(&refused).contains("`refunds-hard-limt`"),
        "{}",
        stderr(&refused)
    );

    // A request the core refuses to decide is an error of the case, not a failure.
    let bad_context = r#"{"cases": [{"name": "bad context", "caller": "Agent:support-assistant",
        "callee": "Agent:refund-agent", "principal": "User:bob", "scopes": ["refunds.issue"],
        "context": {"amount": "lots"}, "expect": {"decision": "DENY"}}]}"#;
    let dir = bundle_with(&[("bad.tests.json", bad_context)]);
    let invalid = policy_test(dir.path(), &["--format", "junit"]);
    assert_eq!(invalid.status.code(), Some(2), "{}", stdout(&invalid));
    let report = quick_junit::Report::deserialize_from_str(&stdout(&invalid)).expect("JUnit");
    assert_eq!(report.errors, 1);
}

/// Waits until something listens on `addr`, failing with the server's stderr if it exits.
fn wait_listening(child: &mut Child, addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("`baton serve` exited with {status}:\n{}", stderr_of(child));
        }
        assert!(start.elapsed() < DEADLINE, "nothing listens on {addr}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn serve_reads_a_config_file_that_the_environment_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let (in_file, in_env, in_flag) = (free_port(), free_port(), free_port());
    let store = dir.path().join("store");
    let file = dir.path().join("baton.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"localhost:{in_file}\"\nhttp-listen = \"127.0.0.1:0\"\nbundle = {bundle:?}\nstore-dir = {store:?}\n\n[audit]\nfile = {audit:?}\nspool = {spool:?}\n",
            bundle = shipped_bundle(),
            audit = dir.path().join("audit.jsonl"),
            spool = dir.path().join("audit.spool.jsonl"),
        ),
    )
    .unwrap();
    let serve = |env_listen: Option<u16>, flag_listen: Option<u16>| {
        let mut command = Command::new(BATON);
        command
            .args(["serve", "--config"])
            .arg(&file)
            .env_remove("BATON_LISTEN")
            .env_remove("BATON_ADMIN_TOKEN")
            .env_remove("BATON_ADMIN_TOKEN_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(port) = env_listen {
            command.env("BATON_LISTEN", format!("127.0.0.1:{port}"));
        }
        if let Some(port) = flag_listen {
            command.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        command.spawn().unwrap()
    };
    for (env, flag, expected) in [
        (None, None, in_file),
        (Some(in_env), None, in_env),
        (Some(in_env), Some(in_flag), in_flag),
    ] {
        let mut child = serve(env, flag);
        wait_listening(&mut child, SocketAddr::from(([127, 0, 0, 1], expected)));
        let _ = child.kill();
        let _ = child.wait();
    }

    let checked = Command::new(BATON)
        .args(["config", "check"])
        .arg(&file)
        .env_remove("BATON_LISTEN")
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    let printed = String::from_utf8(checked.stdout).unwrap();
    assert!(
        printed.contains(&format!("listen = \"localhost:{in_file}\"  # file ")),
        "{printed}"
    );
    assert!(printed.contains("audit-file = "), "{printed}");

    std::fs::write(&file, "[redis]\nurls = [\"redis://cache\"]\n").unwrap();
    let refused = Command::new(BATON)
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unknown setting `redis-urls`"), "{stderr}");
}

/// `baton health --server URL [more]`, its exit status and output.
fn health(server: &str, more: &[&str]) -> Output {
    Command::new(BATON)
        .args(["health", "--server", server, "--timeout-ms", "3000"])
        .args(more)
        .env_remove("BATON_SERVER")
        .output()
        .unwrap()
}

#[test]
fn health_passes_on_a_serving_replica_over_tls_and_fails_where_none_listens() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let made = Command::new(BATON)
        .args(["demo-pki", "--out"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let (grpc, http) = (free_port(), free_port());
    let mut child = Command::new(BATON)
        .args(["serve", "--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .arg("--bundle")
        .arg(shipped_bundle())
        .arg("--store-dir")
        .arg(dir.path().join("store"))
        .arg("--audit-file")
        .arg(dir.path().join("audit.jsonl"))
        .arg("--tls-cert")
        .arg(pki.join("server.pem"))
        .arg("--tls-key")
        .arg(pki.join("server.key"))
        .env_remove("BATON_ADMIN_TOKEN")
        .env_remove("BATON_ADMIN_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&mut child, SocketAddr::from(([127, 0, 0, 1], http)));
    wait_listening(&mut child, SocketAddr::from(([127, 0, 0, 1], grpc)));
    let ca = pki.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let healthy = health(
        &format!("https://localhost:{grpc}"),
        &["--http", &format!("https://localhost:{http}"), "--ca", ca],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy.status.success(), "{healthy:?}");
    let printed = String::from_utf8_lossy(&healthy.stdout);
    assert!(
        printed.contains("SERVING") && printed.contains("/readyz: 200"),
        "{printed}"
    );

    let nobody = health(&format!("http://127.0.0.1:{}", free_port()), &[]);
    assert_eq!(nobody.status.code(), Some(1), "{nobody:?}");
    // The replica is gone now: its port refuses.
    let gone = health(&format!("https://localhost:{grpc}"), &["--ca", ca]);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
}

#[test]
fn config_check_without_a_file_explains_a_short_admin_token() {
    let refused = Command::new(BATON)
        .args(["config", "check"])
        .env("BATON_ADMIN_TOKEN", "short")
        .env("BATON_BUNDLE", shipped_bundle())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("at least 16 characters"), "{stderr}");

    let accepted = Command::new(BATON)
        .args(["config", "check"])
        .env("BATON_ADMIN_TOKEN", "a-long-enough-admin-token")
        .env("BATON_BUNDLE", shipped_bundle())
        .output()
        .unwrap();
    assert!(accepted.status.success(), "{accepted:?}");
    let printed = String::from_utf8_lossy(&accepted.stdout);
    // Each value says where it came from.
    assert!(printed.contains("  # BATON_BUNDLE\n"), "{printed}");
    assert!(!printed.contains("a-long-enough-admin-token"), "{printed}");
}

/// The Kubernetes manifests' configuration file, with the pod's mounts (the ConfigMaps, the
/// `baton-secrets` and cert-manager Secrets, the data volume) laid out under `root`.
fn pod_configuration(root: &Path) -> PathBuf {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/base");
    let etc = root.join("etc/baton");
    let (secrets, tls, policies) = (etc.join("secrets"), etc.join("tls"), etc.join("policies"));
    for dir in [&secrets, &tls, &policies, &root.join("var/lib/baton")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // What the operator and cert-manager put in the Secrets.
    let made = Command::new(BATON)
        .args(["keygen", "--out"])
        .arg(secrets.join("verdicts.pem"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    std::fs::write(
        secrets.join("admin-tokens"),
        "ops ops-token-0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(
        secrets.join("gateway-tokens"),
        "edge edge-token-0123456789abcdef\n",
    )
    .unwrap();
    let pki = root.join("pki");
    let made = Command::new(BATON)
        .args(["demo-pki", "--out"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    for (from, to) in [
        ("server.pem", "tls.crt"),
        ("server.key", "tls.key"),
        ("ca.pem", "ca.crt"),
    ] {
        std::fs::copy(pki.join(from), tls.join(to)).unwrap();
    }
    // The bundle ConfigMap is policies/ (CI checks with deploy/kubernetes/bundle.py --check).
    for entry in std::fs::read_dir(shipped_bundle()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), policies.join(entry.file_name())).unwrap();
    }
    let text = std::fs::read_to_string(manifests.join("baton.toml")).unwrap();
    let root = root.to_str().unwrap();
    let text = text
        .replace("\"/etc/baton/", &format!("\"{root}/etc/baton/"))
        .replace("\"/var/lib/baton/", &format!("\"{root}/var/lib/baton/"));
    let file = etc.join("baton.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn the_kubernetes_configuration_checks_and_serves() {
    let root = tempfile::tempdir().unwrap();
    let file = pod_configuration(root.path());
    let clean_env = |command: &mut Command| {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BATON_") {
                command.env_remove(key);
            }
        }
    };
    let mut check = Command::new(BATON);
    check.args(["config", "check"]).arg(&file);
    clean_env(&mut check);
    let checked = check.output().unwrap();
    assert!(checked.status.success(), "{checked:?}");
    let printed = String::from_utf8_lossy(&checked.stdout);
    assert!(printed.contains("tls-cert = "), "{printed}");
    assert!(
        printed.contains("client-auth = \"optional\"  # file"),
        "{printed}"
    );

    // The pod's configuration serves: TLS on every port, healthy (its ports moved off the
    // pod's fixed ones by flags, which beat the file).
    let (grpc, http, admin) = (free_port(), free_port(), free_port());
    let mut serve = Command::new(BATON);
    serve
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    clean_env(&mut serve);
    let mut child = serve.spawn().unwrap();
    wait_listening(&mut child, SocketAddr::from(([127, 0, 0, 1], http)));
    wait_listening(&mut child, SocketAddr::from(([127, 0, 0, 1], grpc)));
    let ca = root.path().join("etc/baton/tls/ca.crt");
    let healthy = health(
        &format!("https://localhost:{grpc}"),
        &[
            "--http",
            &format!("https://localhost:{http}"),
            "--ca",
            ca.to_str().unwrap(),
        ],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy.status.success(), "{healthy:?}");
}
