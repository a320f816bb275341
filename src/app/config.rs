//! Everything an [`Application`](super::Application) is built from, resolved: files read,
//! keys loaded, addresses parsed. `baton serve` makes one from its flags; tests and embedders
//! make one with [`Config::new`] and change what they need.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::BundleLimits;
use crate::audit::{AuditMode, AuditSettings};
use crate::cache::CacheSettings;
use crate::clock::{Clock, SystemClock};
use crate::decision::{DecisionSettings, LifecycleMode, Limits};
use crate::delegation::Delegation;
use crate::fleet::RedisSettings;
use crate::mapping::GatewayMapping;
use crate::tls::ListenerTls;
use crate::transport::AdminTokens;

/// Largest message the decision port decodes by default; the per-field limits are far below
/// it, so a request that passes this gets a precise `INVALID_ARGUMENT` instead. Beyond it the
/// transport refuses the message before decoding, with `OUT_OF_RANGE`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// How long in-flight calls get to finish after shutdown starts, by default. Streams that
/// never end on their own, such as health watches, would otherwise hold the process forever.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration of one Baton.
pub struct Config {
    /// The decision port: gRPC `baton.v1.DecisionService`, health and reflection.
    pub listen: SocketAddr,
    /// The HTTP port: JWKS, metrics and probes.
    pub http_listen: SocketAddr,
    /// The admin port, served only with `admin_tokens`.
    pub admin_listen: SocketAddr,
    /// The web console's port (`--console-listen`); `None` serves no console. It needs
    /// `admin_tokens`, which are its logins.
    pub console_listen: Option<SocketAddr>,
    /// The bundle to start with when the store has none.
    pub bundle_dir: PathBuf,
    /// Pushed bundles and revocations without Redis; with Redis, the last good bundle and the
    /// last revocations seen.
    pub store_dir: PathBuf,
    /// The server-wide rules every decision follows.
    pub settings: DecisionSettings,
    /// Whether expired and ownerless agents are denied, reported, or not looked at.
    pub agent_lifecycle: LifecycleMode,
    /// Size limits on every question.
    pub limits: Limits,
    /// Largest message the decision port decodes.
    pub max_message_bytes: usize,
    /// Bounds on what a bundle may hold, at start and on every push or activation.
    pub bundle_limits: BundleLimits,
    /// Keys, trusted issuers, gateways and which chains may be asserted.
    pub delegation: Delegation,
    /// How the requests of Envoy and AuthZEN gateways name a hop.
    pub gateway_mapping: GatewayMapping,
    /// Sizes and lifetimes of the decision cache's tiers.
    pub cache: CacheSettings,
    /// Redis, shared by every replica; `None` keeps everything in this process and
    /// `store_dir`.
    pub redis: Option<RedisSettings>,
    /// Where audit records go.
    pub audit: AuditSettings,
    /// Without tokens the admin port is not served at all.
    pub admin_tokens: Option<AdminTokens>,
    /// How long an approval waits for an approver, and then for its use.
    pub approval_ttl: Duration,
    /// The longest shutdown waits for calls in flight.
    pub drain_timeout: Duration,
    /// Where time comes from; tests move a manual clock instead of sleeping.
    pub clock: Arc<dyn Clock>,
    /// Serve `bundle_dir` when the store's active revision cannot be read (a corrupt or
    /// missing file), instead of refusing to start.
    pub recover_store: bool,
    /// TLS on each listener; plaintext where `None`.
    pub tls: ListenersTls,
    /// The share of questions, 0.0 to 1.0, decided again against the shadow bundle while
    /// one is pushed (`--shadow-sample`).
    pub shadow_sample: f64,
}

/// The TLS settings of each listener.
#[derive(Debug, Clone, Default)]
pub struct ListenersTls {
    /// The decision port.
    pub decision: Option<ListenerTls>,
    /// The HTTP port.
    pub http: Option<ListenerTls>,
    /// The admin port.
    pub admin: Option<ListenerTls>,
    /// The console's port.
    pub console: Option<ListenerTls>,
}

impl Config {
    /// Serves the bundle in `bundle_dir` on loopback ports the system chooses, keeping its
    /// store in `store_dir`, with every setting at its default, an ephemeral signing key, no
    /// admin port, no Redis, and the audit trail off until `audit` says where it goes.
    pub fn new(bundle_dir: impl Into<PathBuf>, store_dir: impl Into<PathBuf>) -> Self {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let store_dir = store_dir.into();
        Self {
            listen: any_port,
            http_listen: any_port,
            admin_listen: any_port,
            console_listen: None,
            bundle_dir: bundle_dir.into(),
            settings: DecisionSettings::default(),
            agent_lifecycle: LifecycleMode::Off,
            limits: Limits::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            bundle_limits: BundleLimits::default(),
            delegation: Delegation::ephemeral(),
            gateway_mapping: GatewayMapping::default(),
            cache: CacheSettings::default(),
            redis: None,
            audit: AuditSettings {
                mode: AuditMode::Off,
                file: store_dir.join("audit.jsonl"),
                spool: store_dir.join("audit.spool.jsonl"),
                ..AuditSettings::default()
            },
            store_dir,
            admin_tokens: None,
            approval_ttl: crate::approval::DEFAULT_APPROVAL_TTL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            clock: Arc::new(SystemClock),
            tls: ListenersTls::default(),
            recover_store: false,
            shadow_sample: crate::shadow::DEFAULT_SAMPLE,
        }
    }
}
