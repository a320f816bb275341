//! `baton serve`: flags, each with a `BATON_*` environment variable, and the [`Config`] they
//! make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::app::{Config, ListenersTls};
use crate::decision::{DecisionSettings, Limits};
use crate::delegation::Delegation;
use crate::delegation::trust::{AssertedChains, Gateways};
use crate::delegation::verdict::VerdictIssuer;
use crate::telemetry::LogFormat;
use crate::tls::{ClientAuth, ListenerTls};
use crate::token::{KeySet, Keyring, SigningKey, TrustedIssuer};
use crate::transport::AdminTokens;
use crate::workload::{KnownCertificates, WorkloadIdentities};

/// The longest session `--max-ttl` may allow: a year. Longer is a standing privilege.
const MAX_SESSION_SECS: u64 = 366 * 24 * 3600;

/// The flags of `baton serve`, each also settable by a `BATON_*` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// A TOML file holding any of these flags (without their dashes), as defaults that
    /// environment variables and flags override. See `baton config check`.
    #[arg(long, env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve gRPC on.
    #[arg(long, env = "BATON_LISTEN", value_parser = listen_address, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Policy bundle directory.
    #[arg(long, env = "BATON_BUNDLE", default_value = "policies")]
    pub bundle: PathBuf,
    /// The rules every decision follows: chain depth, cycles, TTLs, the approval obligation.
    #[command(flatten)]
    pub decision: DecisionArgs,
    /// Longest wait for in-flight calls after SIGTERM or Ctrl-C, in seconds.
    #[arg(long, env = "BATON_DRAIN_TIMEOUT", default_value_t = crate::app::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout: u64,
    /// Largest encoded request, in bytes; a larger one is refused naming `request`.
    #[arg(long, env = "BATON_MAX_REQUEST_BYTES", default_value_t = Limits::default().max_request_bytes)]
    pub max_request_bytes: usize,
    /// Largest encoded task context, in bytes.
    #[arg(long, env = "BATON_MAX_CONTEXT_BYTES", default_value_t = Limits::default().max_context_bytes)]
    pub max_context_bytes: usize,
    /// Deepest nesting of the task context.
    #[arg(long, env = "BATON_MAX_CONTEXT_DEPTH", default_value_t = Limits::default().max_context_depth)]
    pub max_context_depth: usize,
    /// Most scopes in one request (and in a ceiling).
    #[arg(long, env = "BATON_MAX_SCOPES", default_value_t = Limits::default().max_scopes)]
    pub max_scopes: usize,
    /// Longest scope name, in bytes.
    #[arg(long, env = "BATON_MAX_SCOPE_BYTES", default_value_t = Limits::default().max_scope_bytes)]
    pub max_scope_bytes: usize,
    /// Longest entity id or transaction id, in bytes.
    #[arg(long, env = "BATON_MAX_ID_BYTES", default_value_t = Limits::default().max_id_bytes)]
    pub max_id_bytes: usize,
    /// Most entries of an asserted delegation chain.
    #[arg(long, env = "BATON_MAX_CHAIN_ENTRIES", default_value_t = Limits::default().max_chain_entries)]
    pub max_chain_entries: usize,
    /// Most items in one BatchAuthorize.
    #[arg(long, env = "BATON_MAX_BATCH_ITEMS", default_value_t = Limits::default().max_batch_items)]
    pub max_batch_items: usize,
    /// Largest gRPC message the decision port decodes, in bytes; beyond it the transport
    /// refuses the message with `OUT_OF_RANGE` before decoding it.
    #[arg(long, env = "BATON_MAX_MESSAGE_BYTES", default_value_t = crate::app::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Address to serve HTTP on: `/.well-known/jwks.json`, `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "BATON_HTTP_LISTEN", value_parser = listen_address, default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// The key that signs verdicts (PEM PKCS#8 or JWK): Ed25519, RSA (2048 to 4096 bits) or
    /// P-256; verdicts carry its algorithm (`EdDSA`, `RS256`, `ES256`) as their `alg`. Without
    /// one, an ephemeral Ed25519 key is generated at startup.
    #[arg(long, env = "BATON_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// More public keys to publish beside the signing key (PEM, JWK or JWKS files), so verdicts
    /// signed by a rotated-out key stay verifiable.
    #[arg(
        long = "publish-key",
        env = "BATON_PUBLISH_KEYS",
        value_delimiter = ','
    )]
    pub publish_keys: Vec<PathBuf>,
    /// `iss` of verdicts.
    #[arg(long, env = "BATON_ISSUER", default_value = crate::delegation::DEFAULT_ISSUER)]
    pub issuer: String,
    /// `aud` of verdicts: the token minter that redeems them.
    #[arg(long, env = "BATON_VERDICT_AUDIENCE", default_value = crate::delegation::DEFAULT_VERDICT_AUDIENCE)]
    pub verdict_audience: String,
    /// How long a verdict itself is valid, in seconds (at most 120).
    #[arg(long, env = "BATON_VERDICT_LIFETIME", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=crate::delegation::verdict::MAX_VERDICT_LIFETIME_SECS))]
    pub verdict_lifetime: u64,
    /// A token issuer whose access tokens hops may present, as `ISSUER=JWKS_FILE`.
    #[arg(long = "trusted-issuer", env = "BATON_TRUSTED_ISSUERS", value_delimiter = ',', value_parser = trusted_issuer)]
    pub trusted_issuers: Vec<(String, PathBuf)>,
    /// Which requests may go without a `subject_token`.
    #[arg(
        long,
        env = "BATON_ASSERTED_CHAINS",
        value_enum,
        default_value = "first-hop"
    )]
    pub asserted_chains: AssertedChains,
    /// How Envoy `ext_authz` checks and AuthZEN evaluations name a hop: a TOML file of peer
    /// identity patterns, routes, and AuthZEN type names (see the README, "Gateways").
    #[arg(long, env = "BATON_GATEWAY_MAPPING")]
    pub gateway_mapping: Option<PathBuf>,
    /// Gateway bearer tokens, `name token` per line. Without it, callers on the loopback
    /// interface are the trusted gateways.
    #[arg(long, env = "BATON_GATEWAY_TOKENS")]
    pub gateway_tokens: Option<PathBuf>,
    /// Decisions kept in the in-process cache; 0 turns it off.
    #[arg(long, env = "BATON_CACHE_CAPACITY", default_value_t = crate::cache::CacheSettings::default().capacity)]
    pub cache_capacity: u64,
    /// Longest any cached decision is kept, in seconds; an allow never outlives its grant.
    #[arg(long, env = "BATON_CACHE_MAX_TTL", default_value_t = crate::cache::CacheSettings::default().max_ttl.as_secs())]
    pub cache_max_ttl: u64,
    /// When the Redis tier is read on an in-process miss: `auto` when a round trip has lately
    /// been faster than evaluating, `always` on every miss.
    #[arg(long, env = "BATON_REDIS_READS", value_enum, default_value = "auto")]
    pub redis_reads: crate::cache::RedisReads,
    /// Redis URL(s) shared by every replica: `redis://host:6379/0`, or `rediss://` for TLS.
    /// Decisions, bundle revisions and the active pointer, revocations and approvals live
    /// there. Without one, everything is kept by this process and `--store-dir`.
    #[arg(long = "redis-url", env = "BATON_REDIS_URL", value_delimiter = ',')]
    pub redis_urls: Vec<String>,
    /// Treat the Redis URLs as seed nodes of a Redis Cluster.
    #[arg(long, env = "BATON_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Prefix of every Redis key and channel, so deployments can share one Redis.
    #[arg(long, env = "BATON_REDIS_PREFIX", default_value = "baton")]
    pub redis_prefix: String,
    /// CA certificates (PEM) that sign the Redis server's certificate, for `rediss://` URLs;
    /// the system's roots without it.
    #[arg(long, env = "BATON_REDIS_CA")]
    pub redis_ca: Option<PathBuf>,
    /// A client certificate chain (PEM) for a Redis that requires one; needs `--redis-key`.
    #[arg(long, env = "BATON_REDIS_CERT", requires = "redis_key")]
    pub redis_cert: Option<PathBuf>,
    /// The private key (PEM) of `--redis-cert`.
    #[arg(long, env = "BATON_REDIS_KEY", requires = "redis_cert")]
    pub redis_key: Option<PathBuf>,
    /// Longest a Redis command may hold up an Authorize before Baton decides without it, in
    /// milliseconds.
    #[arg(long, env = "BATON_REDIS_TIMEOUT_MS", default_value_t = 25)]
    pub redis_timeout_ms: u64,
    /// Longest a connection attempt to Redis may take, in milliseconds (background only).
    #[arg(long, env = "BATON_REDIS_CONNECT_TIMEOUT_MS", default_value_t = 500)]
    pub redis_connect_timeout_ms: u64,
    /// Where the audit trail goes: `auto` is Redis Streams with `--redis-url`, else the JSON
    /// Lines file; `off` keeps none.
    #[arg(long, env = "BATON_AUDIT", value_enum, default_value = "auto")]
    pub audit: crate::audit::AuditMode,
    /// The append-only JSON Lines file of the audit trail.
    #[arg(long, env = "BATON_AUDIT_FILE", default_value = "baton-audit.jsonl")]
    pub audit_file: PathBuf,
    /// Rotate the audit file into a segment once it holds this many bytes; 0 never rotates by
    /// size. Segments go to a directory beside it (`baton-audit.segments`), packed and indexed.
    #[arg(long, env = "BATON_AUDIT_ROTATE_BYTES", default_value_t = crate::audit::Rotation::default().max_bytes)]
    pub audit_rotate_bytes: u64,
    /// Also rotate the audit file before a record this much newer than its oldest, such as
    /// `1d` or `6h`.
    #[arg(long, env = "BATON_AUDIT_ROTATE_INTERVAL", value_parser = humantime::parse_duration)]
    pub audit_rotate_interval: Option<std::time::Duration>,
    /// Which audit segments to keep: an age (`30d`: segments whose newest record is that much
    /// older than the trail's newest are deleted), a number of segments (`200`), or both
    /// (`30d,200`). Whole segments are deleted, oldest first; without it all are kept.
    #[arg(long, env = "BATON_AUDIT_KEEP")]
    pub audit_keep: Option<crate::audit::Keep>,
    /// Where audit records wait while Redis is unreachable, replayed in order when it returns.
    #[arg(
        long,
        env = "BATON_AUDIT_SPOOL",
        default_value = "baton-audit.spool.jsonl"
    )]
    pub audit_spool: PathBuf,
    /// Audit records queued between the decision path and the writer.
    #[arg(long, env = "BATON_AUDIT_QUEUE", default_value_t = crate::audit::AuditSettings::default().capacity)]
    pub audit_queue: usize,
    /// When the audit queue is full: `block` waits for room (no record lost), `drop` drops the
    /// record and counts it.
    #[arg(
        long,
        env = "BATON_AUDIT_WHEN_FULL",
        value_enum,
        default_value = "block"
    )]
    pub audit_when_full: crate::audit::WhenFull,
    /// How long Redis keeps audit records and their query indexes, such as `7d` or `12h`.
    #[arg(long, env = "BATON_AUDIT_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub audit_retention: std::time::Duration,
    /// Agents past their `expires`, without an `owner`, or whose owner left the directory:
    /// `off` does not look, `warn` allows them and says so in the answer, the verdict and the
    /// audit record, `enforce` denies any chain holding one (`AGENT_ORPHANED`).
    #[arg(long, env = "BATON_AGENT_LIFECYCLE", value_enum, default_value = "off")]
    pub agent_lifecycle: crate::decision::LifecycleMode,
    /// What a decision record keeps of the request's context: `full` keeps it verbatim with
    /// everything a re-decision needs (`baton policy replay` requires it), `hash` a SHA-256 of
    /// its canonical JSON (data minimisation: proves what was asked without keeping it),
    /// `none` nothing.
    #[arg(long, env = "BATON_AUDIT_CONTEXT", value_enum, default_value = "hash")]
    pub audit_context: crate::audit::AuditContext,
    /// The approximate length the Redis audit stream is capped at (`XADD MAXLEN ~`).
    #[arg(long, env = "BATON_AUDIT_STREAM_MAXLEN", default_value_t = crate::audit::AuditSettings::default().stream_maxlen)]
    pub audit_stream_maxlen: u64,
    /// Log format.
    #[arg(long, env = "BATON_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Address to serve the admin API (`baton.v1.PolicyAdmin`, `baton.v1.Governance`,
    /// `baton.v1.AuditService`) on. It is served only when an admin token is configured.
    #[arg(long, env = "BATON_ADMIN_LISTEN", value_parser = listen_address, default_value = "127.0.0.1:50052")]
    pub admin_listen: SocketAddr,
    /// Address to serve the web console on (an admin's browser logs in with an admin token);
    /// off unless set, and refused without admin tokens. With `--tls-cert` it is served over
    /// TLS, without client certificates: the login is the token.
    #[arg(long, env = "BATON_CONSOLE_LISTEN", value_parser = listen_address)]
    pub console_listen: Option<SocketAddr>,
    /// Admin bearer tokens, `name token` per line; the name is logged as the author of every
    /// admin action. `BATON_ADMIN_TOKEN` gives a single token, named `admin`, instead.
    #[arg(long, env = "BATON_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Where pushed bundles and revocations live without Redis; with Redis, where this
    /// replica keeps its last good bundle and the last revocations it saw.
    #[arg(long, env = "BATON_STORE_DIR", default_value = ".baton")]
    pub store_dir: PathBuf,
    /// Start even when the store's active revision cannot be read (a corrupt or missing file
    /// in `--store-dir`), serving `--bundle` and recording it as a new revision. Without it,
    /// `serve` refuses to start rather than serve another policy than the one last pushed.
    #[arg(long, env = "BATON_RECOVER_STORE")]
    pub recover_store: bool,
    /// The share of questions, 0.0 to 1.0, decided again against a shadow bundle (`baton
    /// policy push --shadow`), off the request path on one idle-priority thread; 0 turns
    /// shadow evaluation off.
    #[arg(long, env = "BATON_SHADOW_SAMPLE", default_value_t = crate::shadow::DEFAULT_SAMPLE,
          value_parser = shadow_sample)]
    pub shadow_sample: f64,
    /// How long an approval may wait for an approver and then for its use, in seconds.
    #[arg(long, env = "BATON_APPROVAL_TTL", default_value_t = crate::approval::DEFAULT_APPROVAL_TTL.as_secs())]
    pub approval_ttl: u64,
    /// Largest bundle accepted, in bytes of file names and contents.
    #[arg(long, env = "BATON_MAX_BUNDLE_BYTES", default_value_t = crate::admission::BundleLimits::default().max_bytes)]
    pub max_bundle_bytes: usize,
    /// Most policies a bundle may hold.
    #[arg(long, env = "BATON_MAX_BUNDLE_POLICIES", default_value_t = crate::admission::BundleLimits::default().max_policies)]
    pub max_bundle_policies: usize,
    /// TLS certificate chain (PEM) for every listener (decision, admin, HTTP); plaintext
    /// without it. Reloaded when the file changes.
    #[arg(long, env = "BATON_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "BATON_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, env = "BATON_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// Whether the listeners ask clients for a certificate; `optional` and `required` need
    /// `--client-ca`.
    #[arg(long, env = "BATON_CLIENT_AUTH", value_enum, default_value = "none")]
    pub client_auth: ClientAuth,
    /// `--client-auth` for the decision port alone.
    #[arg(long, env = "BATON_DECISION_CLIENT_AUTH", value_enum)]
    pub decision_client_auth: Option<ClientAuth>,
    /// `--client-auth` for the admin port alone.
    #[arg(long, env = "BATON_ADMIN_CLIENT_AUTH", value_enum)]
    pub admin_client_auth: Option<ClientAuth>,
    /// `--client-auth` for the HTTP port alone (probes and Prometheus rarely have a
    /// certificate: `optional` lets them in, and a workload with one is still known by it).
    #[arg(long, env = "BATON_HTTP_CLIENT_AUTH", value_enum)]
    pub http_client_auth: Option<ClientAuth>,
    /// A rule that makes a client certificate a caller: `spiffe://corp.example/agent/{id}=Agent:{id}`,
    /// or for a DNS name `dns:{id}.agents.corp.example=Agent:{id}`. A request whose caller
    /// is not the workload its certificate proves is refused (`CALLER_NOT_AUTHENTICATED`).
    #[arg(
        long = "workload-identity",
        alias = "workload-identities",
        env = "BATON_WORKLOAD_IDENTITIES",
        value_delimiter = ','
    )]
    pub workload_identities: Vec<String>,
    /// A gateway known by its client certificate, as `NAME=spiffe://…`, `NAME=dns:HOST` or
    /// `NAME=sha256:HEX` (the name may be left out): it may assert callers, as a gateway token
    /// does.
    #[arg(
        long = "gateway-cert",
        env = "BATON_GATEWAY_CERTS",
        value_delimiter = ','
    )]
    pub gateway_certs: Vec<String>,
    /// An admin known by its client certificate, as `NAME=spiffe://…`, `NAME=dns:HOST` or
    /// `NAME=sha256:HEX`; the name is logged as the author of its admin actions.
    #[arg(long = "admin-cert", env = "BATON_ADMIN_CERTS", value_delimiter = ',')]
    pub admin_certs: Vec<String>,
    /// An admin who approves as a person of the directory, as `NAME=User:ID`: NAME is an admin
    /// token's or admin certificate's name, `User:ID` a user of the bundle. Such an approver
    /// never approves a request it is party to, and counts once towards `@approvers`.
    #[arg(long = "approver", env = "BATON_APPROVERS", value_delimiter = ',')]
    pub approvers: Vec<String>,
    /// Refuse subject tokens that are not bound to a certificate (`cnf`, RFC 8705):
    /// `BOUND_TOKEN_REQUIRED`. Without it unbound tokens keep working.
    #[arg(long, env = "BATON_REQUIRE_BOUND_TOKENS")]
    pub require_bound_tokens: bool,
    /// How often the TLS files are checked for a rotation, in milliseconds.
    #[arg(long, env = "BATON_TLS_RELOAD_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub tls_reload_ms: u64,
    /// OTLP/gRPC endpoint to export spans to, such as `http://otel-collector:4317`. Without one,
    /// spans are not exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// A share from 0.0 to 1.0.
fn shadow_sample(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    crate::shadow::sample_ppm(share).map_err(|e| e.to_string())?;
    Ok(share)
}

impl ServeArgs {
    /// The configuration these flags describe: keys, issuers and token files are read here,
    /// so a missing or malformed one stops `serve` before anything listens.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::new(&self.bundle, &self.store_dir);
        config.recover_store = self.recover_store;
        config.listen = self.listen;
        config.http_listen = self.http_listen;
        config.admin_listen = self.admin_listen;
        config.console_listen = self.console_listen;
        config.settings = self.settings();
        config.agent_lifecycle = self.agent_lifecycle;
        config.limits = self.limits();
        config.max_message_bytes = self.max_message_bytes;
        config.bundle_limits = self.bundle_limits();
        config.delegation = self.delegation()?;
        if let Some(path) = &self.gateway_mapping {
            config.gateway_mapping = crate::mapping::GatewayMapping::from_file(path)?;
        }
        config.cache = self.cache();
        config.redis = self.redis()?;
        config.audit = self.audit();
        config.admin_tokens = self.admin_tokens()?;
        config.approval_ttl = Duration::from_secs(self.approval_ttl);
        config.shadow_sample = self.shadow_sample;
        config.drain_timeout = Duration::from_secs(self.drain_timeout);
        config.clock = Arc::new(crate::clock::SystemClock);
        config.tls = self.tls()?;
        Ok(config)
    }

    /// TLS for each listener: the same certificate, each port's own client authentication.
    pub fn tls(&self) -> anyhow::Result<ListenersTls> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            if self.client_auth != ClientAuth::None
                || [
                    self.decision_client_auth,
                    self.admin_client_auth,
                    self.http_client_auth,
                ]
                .iter()
                .flatten()
                .any(|a| *a != ClientAuth::None)
            {
                anyhow::bail!("--client-auth needs --tls-cert and --tls-key");
            }
            return Ok(ListenersTls::default());
        };
        let listener = |auth: Option<ClientAuth>| -> anyhow::Result<ListenerTls> {
            let auth = auth.unwrap_or(self.client_auth);
            let mut tls = ListenerTls::new(cert, key);
            tls.reload_interval = Duration::from_millis(self.tls_reload_ms);
            match (&self.client_ca, auth) {
                (_, ClientAuth::None) => {}
                (Some(ca), auth) => tls = tls.with_clients(ca, auth),
                (None, _) => anyhow::bail!("--client-auth optional or required needs --client-ca"),
            }
            Ok(tls)
        };
        Ok(ListenersTls {
            decision: Some(listener(self.decision_client_auth)?),
            admin: Some(listener(self.admin_client_auth)?),
            http: Some(listener(self.http_client_auth)?),
            console: Some(listener(Some(ClientAuth::None))?),
        })
    }

    /// The size limits on every question.
    pub fn limits(&self) -> Limits {
        Limits {
            max_id_bytes: self.max_id_bytes,
            max_scopes: self.max_scopes,
            max_scope_bytes: self.max_scope_bytes,
            max_chain_entries: self.max_chain_entries,
            max_context_bytes: self.max_context_bytes,
            max_context_depth: self.max_context_depth,
            max_batch_items: self.max_batch_items,
            max_request_bytes: self.max_request_bytes,
        }
    }

    /// The admin tokens from `--admin-token-file`, else `BATON_ADMIN_TOKEN`; none turns the
    /// admin API off rather than leave it open.
    fn admin_tokens(&self) -> anyhow::Result<Option<AdminTokens>> {
        let certificates = KnownCertificates::parse(&self.admin_certs)
            .map_err(|e| anyhow::anyhow!("--admin-cert: {e}"))?;
        let tokens = if let Some(path) = &self.admin_token_file {
            AdminTokens::from_file(path)?.with_certificates(certificates)
        } else {
            match std::env::var("BATON_ADMIN_TOKEN") {
                Ok(token) => AdminTokens::single(&token)?.with_certificates(certificates),
                Err(_) if !certificates.is_empty() => AdminTokens::certificates_only(certificates),
                Err(_) if !self.approvers.is_empty() => anyhow::bail!(
                    "--approver names admins, and there is no admin token or admin certificate"
                ),
                Err(_) => {
                    tracing::info!(
                        "no admin token (--admin-token-file or BATON_ADMIN_TOKEN): the admin API is off, audit queries included"
                    );
                    return Ok(None);
                }
            }
        };
        Ok(Some(tokens.with_approvers(&self.approvers)?))
    }

    /// Keys, issuers and gateway trust from the flags.
    fn delegation(&self) -> anyhow::Result<Delegation> {
        let signer = match &self.signing_key {
            Some(path) => SigningKey::from_file(path)
                .with_context(|| format!("cannot load the signing key `{}`", path.display()))?,
            None => {
                tracing::warn!(
                    "no --signing-key: verdicts are signed with an ephemeral key that ends with this process"
                );
                SigningKey::generate()
            }
        };
        let mut published = Vec::new();
        for path in &self.publish_keys {
            let keys = KeySet::from_file(path)
                .with_context(|| format!("cannot load the published keys `{}`", path.display()))?;
            published.extend(keys.keys().iter().cloned());
        }
        let mut trusted = Vec::new();
        for (issuer, path) in &self.trusted_issuers {
            let keys = KeySet::from_file(path)
                .with_context(|| format!("cannot load the keys of issuer `{issuer}`"))?;
            trusted.push(TrustedIssuer {
                issuer: issuer.clone(),
                keys,
            });
        }
        let gateway_certs = KnownCertificates::parse(&self.gateway_certs)
            .map_err(|e| anyhow::anyhow!("--gateway-cert: {e}"))?;
        let gateways = match &self.gateway_tokens {
            Some(path) => Gateways::from_file(path)?,
            None if gateway_certs.is_empty() => {
                tracing::info!(
                    "no --gateway-tokens or --gateway-cert: callers on the loopback interface are the trusted gateways"
                );
                Gateways::default()
            }
            None => Gateways::default(),
        }
        .with_certificates(gateway_certs);
        let workloads = WorkloadIdentities::parse(&self.workload_identities)
            .map_err(|e| anyhow::anyhow!("--workload-identity: {e}"))?;
        if !workloads.is_empty() && self.client_ca.is_none() {
            anyhow::bail!(
                "--workload-identity needs --client-ca: only a verified certificate proves a workload"
            );
        }
        let mut delegation = Delegation::new(
            Keyring::new(signer, published),
            VerdictIssuer {
                issuer: self.issuer.clone(),
                audience: self.verdict_audience.clone(),
                lifetime_secs: self.verdict_lifetime,
            },
            trusted,
            self.asserted_chains,
            gateways,
        );
        delegation.workloads = workloads;
        delegation.require_bound_tokens = self.require_bound_tokens;
        Ok(delegation)
    }

    /// The size limits on a bundle.
    pub fn bundle_limits(&self) -> crate::admission::BundleLimits {
        crate::admission::BundleLimits {
            max_bytes: self.max_bundle_bytes,
            max_policies: self.max_bundle_policies,
        }
    }

    /// The sizes and lifetimes of the decision cache.
    pub fn cache(&self) -> crate::cache::CacheSettings {
        crate::cache::CacheSettings {
            capacity: self.cache_capacity,
            max_ttl: std::time::Duration::from_secs(self.cache_max_ttl),
            redis_reads: self.redis_reads,
        }
    }

    /// Redis, if a URL is given, with its TLS files read.
    pub fn redis(&self) -> anyhow::Result<Option<crate::fleet::RedisSettings>> {
        if self.redis_urls.is_empty() {
            return Ok(None);
        }
        let tls = redis_tls(
            self.redis_ca.as_deref(),
            self.redis_cert.as_deref(),
            self.redis_key.as_deref(),
        )?;
        Ok(Some(crate::fleet::RedisSettings {
            cluster: self.redis_cluster,
            prefix: self.redis_prefix.clone(),
            op_timeout: std::time::Duration::from_millis(self.redis_timeout_ms),
            connect_timeout: std::time::Duration::from_millis(self.redis_connect_timeout_ms),
            tls,
            ..crate::fleet::RedisSettings::new(self.redis_urls.clone())
        }))
    }

    /// Where audit records go.
    pub fn audit(&self) -> crate::audit::AuditSettings {
        crate::audit::AuditSettings {
            mode: self.audit,
            file: self.audit_file.clone(),
            spool: self.audit_spool.clone(),
            capacity: self.audit_queue,
            when_full: self.audit_when_full,
            retention: self.audit_retention,
            stream_maxlen: self.audit_stream_maxlen,
            rotation: crate::audit::Rotation {
                max_bytes: self.audit_rotate_bytes,
                interval: self.audit_rotate_interval,
                keep: self.audit_keep.unwrap_or_default(),
            },
            context: self.audit_context,
            ..crate::audit::AuditSettings::default()
        }
    }

    /// The server-wide rules every decision follows.
    pub fn settings(&self) -> DecisionSettings {
        self.decision.settings()
    }
}

/// The flags of the rules every decision follows, shared by `serve` and `policy test` so a
/// bundle's cases run under the settings a deployment uses (its `BATON_*` variables too).
#[derive(Debug, Clone, clap::Args)]
pub struct DecisionArgs {
    /// Longest delegation chain, in hops from the principal to the callee.
    #[arg(long, env = "BATON_MAX_DEPTH", default_value_t = DecisionSettings::default().max_depth)]
    pub max_depth: usize,
    /// Let an identity appear twice in one chain (denied by default).
    #[arg(long, env = "BATON_ALLOW_CYCLES")]
    pub allow_cycles: bool,
    /// Cap on every session, in seconds (at most a year).
    #[arg(long, env = "BATON_MAX_TTL", default_value_t = DecisionSettings::default().max_ttl_secs,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SESSION_SECS))]
    pub max_ttl: u64,
    /// Session length when no determining permit carries `@ttl`, in seconds.
    #[arg(long, env = "BATON_DEFAULT_TTL", default_value_t = DecisionSettings::default().default_ttl_secs,
          value_parser = clap::value_parser!(u64).range(1..=MAX_SESSION_SECS))]
    pub default_ttl: u64,
    /// The obligation that holds an allow for human approval (APPROVAL_REQUIRED).
    #[arg(long, env = "BATON_APPROVAL_OBLIGATION", default_value = crate::decision::DEFAULT_APPROVAL_OBLIGATION)]
    pub approval_obligation: String,
}

impl DecisionArgs {
    /// The rules these flags set.
    pub fn settings(&self) -> DecisionSettings {
        DecisionSettings {
            max_depth: self.max_depth,
            allow_cycles: self.allow_cycles,
            max_ttl_secs: self.max_ttl,
            default_ttl_secs: self.default_ttl,
            approval_obligation: self.approval_obligation.clone(),
        }
    }
}

/// The `rediss://` CA and client certificate from their files, each error naming its flag.
pub fn redis_tls(
    ca: Option<&std::path::Path>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<crate::fleet::RedisTls> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("cannot read {flag} `{}`", path.display()))
    };
    let ca = ca.map(|p| read("--redis-ca", p)).transpose()?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((read("--redis-cert", cert)?, read("--redis-key", key)?)),
        (None, None) => None,
        _ => anyhow::bail!("--redis-cert and --redis-key go together"),
    };
    Ok(crate::fleet::RedisTls { ca, client })
}

/// A listen address: `host:port` with an IP or a host name (`localhost:50051`,
/// `baton-0.baton:50051`), resolved once at start to the first address it names.
fn listen_address(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{s}` (expected host:port): {e}"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

fn trusted_issuer(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((issuer, path)) if !issuer.is_empty() && !path.is_empty() => {
            Ok((issuer.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected `ISSUER=JWKS_FILE`, got `{s}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_host_names() {
        let resolved = listen_address("localhost:50051").unwrap();
        assert!(resolved.ip().is_loopback(), "{resolved}");
        assert_eq!(resolved.port(), 50051);
        assert_eq!(
            listen_address("0.0.0.0:8080").unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 8080))
        );
        let refused = listen_address("localhost").unwrap_err();
        assert!(refused.contains("`localhost`"), "{refused}");
    }
}
