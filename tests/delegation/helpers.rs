//! A real Baton for one test (gRPC and HTTP on ephemeral ports, the shipped bundle) that trusts
//! one test minter, and the requests, token surgery and assertions the tests share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton::decision::DecisionSettings;
use baton::delegation::trust::{AssertedChains, Gateways};
use baton::delegation::verdict::VerdictIssuer;
use baton::delegation::{DEFAULT_ISSUER, DEFAULT_VERDICT_AUDIENCE, Delegation};
use baton::mapping::GatewayMapping;
use baton::minter::{Minter, fetch_jwks};
use baton::pb::decision_service_client::DecisionServiceClient;
use baton::pb::governance_client::GovernanceClient;
use baton::pb::{self, Decision};
use baton::pipeline::Pipeline;
use baton::revocation::Target;
use baton::token::{Keyring, SigningKey, TrustedIssuer};
use baton::transport::AdminTokens;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::spawn::{Running, config_in, server_dir, start};

/// The `iss` of the test minter, which every test Baton trusts.
pub const MINTER_ISSUER: &str = "urn:baton:test-minter";

/// The admin token of the test Baton, for revocations.
const ADMIN_TOKEN: &str = "delegation-admin-0123456789";

/// How the test Baton is set up; the default is the shipped bundle and settings.
#[derive(Default)]
pub struct Options {
    pub settings: DecisionSettings,
    /// Baton's signing key and published keys; a fresh key by default.
    pub keyring: Option<Keyring>,
    /// The trusted minter's key; a fresh key by default.
    pub minter_key: Option<SigningKey>,
    /// The trusted gateways; callers on loopback by default.
    pub gateways: Option<Gateways>,
    /// The bundle to serve; the shipped one by default.
    pub bundle: Option<PathBuf>,
    /// How Envoy checks and AuthZEN evaluations name a hop; built-in names only by default.
    pub mapping: Option<GatewayMapping>,
}

/// A running Baton, the in-process minter it trusts, and what tests need to forge tokens.
pub struct Baton {
    /// `http://127.0.0.1:port`, for clients and `baton-minter --baton`.
    pub url: String,
    pub http_addr: SocketAddr,
    pub client: DecisionServiceClient<Channel>,
    /// The governance API on the admin port, with the admin token.
    pub governance: GovernanceClient<Channel>,
    /// Baton's own signing key, to sign what only Baton could.
    pub signer: SigningKey,
    /// The minter's key, which Baton trusts for `MINTER_ISSUER`.
    pub minter_key: SigningKey,
    /// A minter with Baton's keys as fetched over `GetJwks`, and an in-memory replay guard.
    pub minter: Minter,
    /// The minter's key as PEM, for `baton-minter --key`.
    pub minter_key_file: PathBuf,
    /// The server's pipeline, whose revocations a minter in this process may share.
    pub pipeline: Arc<Pipeline>,
    _running: Running,
    _dir: tempfile::TempDir,
}

pub async fn spawn_baton() -> Baton {
    spawn_baton_with(Options::default()).await
}

pub async fn spawn_baton_with(options: Options) -> Baton {
    let keyring = options
        .keyring
        .unwrap_or_else(|| Keyring::new(SigningKey::generate(), Vec::new()));
    let signer = keyring.signer().clone();
    let minter_key = options.minter_key.unwrap_or_else(SigningKey::generate);
    let dir = server_dir();
    let mut config = config_in(dir.path());
    if let Some(bundle) = options.bundle {
        config.bundle_dir = bundle;
    }
    config.settings = options.settings;
    config.gateway_mapping = options.mapping.unwrap_or_default();
    config.admin_tokens = Some(AdminTokens::single(ADMIN_TOKEN).expect("a long token"));
    config.delegation = Delegation::new(
        keyring,
        VerdictIssuer {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_VERDICT_AUDIENCE.to_owned(),
            lifetime_secs: 60,
        },
        vec![TrustedIssuer {
            issuer: MINTER_ISSUER.to_owned(),
            keys: baton::token::KeySet::new(vec![minter_key.public()]),
        }],
        AssertedChains::FirstHop,
        // By default no gateway tokens: callers on loopback, as these tests are, are gateways.
        options.gateways.unwrap_or_default(),
    );
    let running = start(config).await;
    let url = running.url();
    let client = DecisionServiceClient::connect(url.clone())
        .await
        .expect("connect to the test Baton");
    let governance = GovernanceClient::connect(running.admin_url())
        .await
        .expect("connect to the test Baton's admin port");
    let baton_keys = fetch_jwks(&url, &Default::default())
        .await
        .expect("Baton publishes its keys");
    let minter = Minter {
        issuer: MINTER_ISSUER.to_owned(),
        ..Minter::new(minter_key.clone(), baton_keys)
    };
    let minter_key_file = dir.path().join("minter.pem");
    std::fs::write(&minter_key_file, minter_key.to_pkcs8_pem().expect("PEM")).expect("write key");
    Baton {
        url,
        http_addr: running.http_addr,
        client,
        governance,
        signer,
        minter_key,
        minter,
        minter_key_file,
        pipeline: Arc::clone(&running.pipeline),
        _running: running,
        _dir: dir,
    }
}

fn target_to_pb(target: Target) -> pb::RevocationTarget {
    use pb::revocation_target::Target as T;
    let target = match target {
        Target::Agent(id) => T::Agent(id),
        Target::Principal(who) => T::Principal(pb::EntityRef {
            r#type: who.kind.as_str().to_owned(),
            id: who.id,
        }),
        Target::Transaction(id) => T::TransactionId(id),
        Target::Verdict(id) => T::VerdictId(id),
    };
    pb::RevocationTarget {
        target: Some(target),
    }
}

impl Baton {
    /// Asks Baton, which must answer (an ALLOW or a DENY).
    pub async fn authorize(&self, request: pb::AuthorizeRequest) -> pb::AuthorizeResponse {
        self.try_authorize(request)
            .await
            .unwrap_or_else(|status| panic!("Authorize failed: {status:?}"))
    }

    pub async fn try_authorize(
        &self,
        request: pb::AuthorizeRequest,
    ) -> Result<pb::AuthorizeResponse, tonic::Status> {
        self.client
            .clone()
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Asks Baton as the gateway that presents `bearer`.
    pub async fn try_authorize_as(
        &self,
        bearer: &str,
        request: pb::AuthorizeRequest,
    ) -> Result<pb::AuthorizeResponse, tonic::Status> {
        let mut request = tonic::Request::new(request);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().expect("ASCII metadata"),
        );
        self.client
            .clone()
            .authorize(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Puts a revocation of `target` in force, as an admin would: through the governance API.
    pub async fn revoke(&self, target: Target) {
        let mut request = tonic::Request::new(pb::RevokeRequest {
            target: Some(target_to_pb(target)),
            reason: "a test revokes it".to_owned(),
            expires_at: None,
        });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {ADMIN_TOKEN}")
                .parse()
                .expect("ASCII metadata"),
        );
        self.governance
            .clone()
            .revoke(request)
            .await
            .expect("the revocation is in force");
    }

    /// Exchanges a subject token for a verdict, as a token service would.
    pub async fn exchange(
        &self,
        request: pb::ExchangeRequest,
    ) -> Result<pb::ExchangeResponse, tonic::Status> {
        self.client
            .clone()
            .exchange(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Asks Baton, which must allow, and mints the access token of the verdict.
    pub async fn allow_and_mint(
        &self,
        request: pb::AuthorizeRequest,
    ) -> (pb::AuthorizeResponse, String) {
        let response = self.authorize(request).await;
        assert_allowed(&response);
        let minted = self
            .minter
            .mint(&response.verdict, now())
            .await
            .unwrap_or_else(|e| panic!("mint refused: {}: {e}", e.code()));
        (response, minted.token)
    }

    /// Runs `baton-minter mint` against this Baton with the minter's key, the test issuer and
    /// `extra` arguments, the verdict on stdin.
    pub async fn mint_with_binary(&self, verdict: &str, extra: &[&str]) -> Output {
        let mut args: Vec<String> = [
            "mint",
            "--baton",
            &self.url,
            "--key",
            path_str(&self.minter_key_file),
            "--issuer",
            MINTER_ISSUER,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        run_minter(args, Some(verdict.to_owned())).await
    }
}

/// Runs the `baton-minter` binary off the runtime's thread: it calls the Baton this runtime
/// serves, which must keep running meanwhile.
pub async fn run_minter(args: Vec<String>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton-minter"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start baton-minter");
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write the verdict");
        }
        drop(input);
        child.wait_with_output().expect("baton-minter runs")
    })
    .await
    .expect("the blocking task does not panic")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

/// A copy of the shipped bundle without its test cases, in `dir`: for settings its cases do
/// not expect.
pub fn shipped_without_tests(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let copy = dir.join("bundle");
    std::fs::create_dir_all(&copy).expect("a bundle directory");
    for file in baton::bundle::read_dir(&shipped).expect("the shipped bundle") {
        if file.name != "tests.json" {
            std::fs::write(copy.join(&file.name), &file.text).expect("write a bundle file");
        }
    }
    copy
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `"Agent:data-analyst"` as an entity reference.
pub fn entity(typed: &str) -> pb::EntityRef {
    let (kind, id) = typed.split_once(':').expect("`Type:id`");
    pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    }
}

fn scopes(scopes: &[&str]) -> Vec<String> {
    scopes.iter().map(|s| (*s).to_owned()).collect()
}

/// A first hop: `principal` calls `callee` itself, through the loopback gateway.
pub fn first_hop(principal: &str, callee: &str, requested: &[&str]) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: Some(entity(principal)),
        callee: Some(entity(callee)),
        principal: Some(entity(principal)),
        scopes: scopes(requested),
        ..Default::default()
    }
}

/// A later hop: the chain, principal and ceiling come from `token` alone.
pub fn next_hop(
    caller: &str,
    callee: &str,
    token: &str,
    requested: &[&str],
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        caller: Some(entity(caller)),
        callee: Some(entity(callee)),
        scopes: scopes(requested),
        subject_token: token.to_owned(),
        ..Default::default()
    }
}

/// A task context with an `amount`, as a protobuf `Struct`.
pub fn amount(amount: f64) -> prost_types::Struct {
    use prost_types::value::Kind;
    prost_types::Struct {
        fields: [(
            "amount".to_owned(),
            prost_types::Value {
                kind: Some(Kind::NumberValue(amount)),
            },
        )]
        .into_iter()
        .collect(),
    }
}

/// The chain of a response as `Type:id`.
pub fn chain_of(response: &pb::AuthorizeResponse) -> Vec<String> {
    response
        .chain
        .iter()
        .map(|e| format!("{}:{}", e.r#type, e.id))
        .collect()
}

/// `expires_at` in seconds since the epoch.
pub fn expires_at(response: &pb::AuthorizeResponse) -> u64 {
    let at = response
        .expires_at
        .as_ref()
        .expect("an ALLOW has expires_at");
    u64::try_from(at.seconds).expect("after 1970")
}

pub fn assert_allowed(response: &pb::AuthorizeResponse) {
    assert_eq!(
        response.decision(),
        Decision::Allow,
        "expected ALLOW: {response:#?}"
    );
    assert!(!response.verdict.is_empty(), "an ALLOW carries a verdict");
}

/// The reason Baton gave for a refused call, checked to have `code` and a readable message.
pub fn assert_refused(
    result: Result<pb::AuthorizeResponse, tonic::Status>,
    code: Code,
    reason: &str,
) -> String {
    let status = match result {
        Ok(response) => panic!("expected {code:?} {reason}, got a decision: {response:#?}"),
        Err(status) => status,
    };
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(
        (status.code(), info.reason.as_str()),
        (code, reason),
        "{status:?}"
    );
    assert_eq!(info.domain, "baton");
    let message = status.message().to_owned();
    assert!(message.len() > 10, "an unhelpful message: {message:?}");
    message
}

/// The decoded JSON of a compact JWS's `segment` (0 header, 1 payload), unverified.
pub fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a compact JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// The claims of a token, unverified.
pub fn claims<T: DeserializeOwned>(token: &str) -> T {
    serde_json::from_value(segment(token, 1)).expect("the expected claims")
}

/// A compact JWS of `header` and `claims` with `signature` as is: for forgeries.
pub fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The signing input of a JWS: `<header>.<payload>`, base64url.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// HMAC-SHA256 (RFC 2104), for the HS256 key-confusion forgery: a verifier fooled into HMAC
/// would use the public key it knows as the secret.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Hop 1 of scenario 1, allowed and minted: the assistant's token for its call to the analyst.
pub async fn assistant_token(baton: &Baton) -> (pb::AuthorizeResponse, String) {
    baton
        .allow_and_mint(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate", "finance.read"],
        ))
        .await
}

/// Hops 1 and 2 of scenario 1: the analyst's token for its call to the database agent.
pub async fn analyst_token(baton: &Baton) -> (pb::AuthorizeResponse, String) {
    let (_, assistant) = assistant_token(baton).await;
    baton
        .allow_and_mint(next_hop(
            "Agent:user-assistant",
            "Agent:data-analyst",
            &assistant,
            &["reports.generate", "finance.read"],
        ))
        .await
}

/// The claims of `token` with the members of `patch` set (or removed where null).
pub fn patched(token: &str, patch: Value) -> Value {
    let mut claims = segment(token, 1);
    let members = claims.as_object_mut().expect("claims are an object");
    for (name, value) in patch.as_object().expect("a patch is an object") {
        if value.is_null() {
            members.remove(name);
        } else {
            members.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// `claims` signed properly with `key` and `typ`.
pub fn sign(key: &SigningKey, typ: &str, claims: &Value) -> String {
    baton::token::jws::sign(key, typ, claims).expect("signing works")
}

/// `token` with one byte of its signature flipped.
pub fn flip_signature_byte(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').expect("a compact JWS");
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    bytes[10] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `claims` under the header and signature of `token`: a payload swapped after signing.
pub fn splice(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let header = parts.next().expect("a header");
    let signature = parts.nth(1).expect("a signature");
    format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
