//! The one way to build and run Baton: [`Application::build`] turns a [`Config`] into bound
//! listeners, stores, the decision pipeline and the replica that follows the bundle store;
//! [`Application::run_until_stopped`] serves until shutdown. `baton serve` and every test
//! start the same application.

mod config;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use self::config::{Config, DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_MESSAGE_BYTES, ListenersTls};
use crate::admission::Rejection;
use crate::approval::{
    ApprovalDirError, ApprovalStore, Approvals, FileApprovals, LocalFirstApprovals, RedisApprovals,
};
use crate::audit::{Audit, AuditError};
use crate::authzen::AuthzenApi;
use crate::cache::{DecisionCache, RedisTier};
use crate::fleet::{Fleet, FleetError};
use crate::governance::Governance;
use crate::http::HttpState;
use crate::mapping::GatewayMapping;
use crate::metrics::Metrics;
use crate::pipeline::{Parts, Pipeline};
use crate::policy_store::replica::{self, Replica, ReplicaError, ServedFrom};
use crate::policy_store::{BundleStore, DirStore, LastGood, RedisStore, StoreError};
use crate::readiness::Readiness;
use crate::revocation::{RedisRevocations, RevocationError, Revocations};
use crate::server::{self, AdminPort, Bound, DecisionPort, ServeError};
use crate::shadow::Shadow;
use crate::tls::{ListenerTls, ServerTls, TlsError};
use crate::transport::{AdminApi, AdminTokens, AuditApi, DecisionApi, ExtAuthzApi, GovernanceApi};

/// Bound on every Redis connection attempt and command of the bundle store.
const BUNDLE_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why an application could not be built. Nothing is served.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No bundle to start with passed admission.
    #[error("the bundle is invalid")]
    Bundle(#[source] Rejection),
    /// The bundle store could not be opened or seeded.
    #[error("cannot use the bundle store")]
    Store(#[source] StoreError),
    /// The store directory cannot be created.
    #[error("cannot use the store directory `{path}`")]
    StoreDir {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be created.
        #[source]
        source: std::io::Error,
    },
    /// A port cannot be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it cannot be bound.
        #[source]
        source: std::io::Error,
    },
    /// The Redis settings are unusable.
    #[error("cannot use Redis")]
    Redis(#[from] FleetError),
    /// The revocations file or its local copy cannot be read.
    #[error("cannot load the revocations")]
    Revocations(#[from] RevocationError),
    /// Another process holds the store directory's lock.
    #[error(
        "another Baton is using the store directory `{path}` (it holds `{path}/.lock`); give each process its own --store-dir"
    )]
    StoreLocked {
        /// The directory.
        path: PathBuf,
    },
    /// The store holds bundles but cannot give its active one; see `--recover-store`.
    #[error(transparent)]
    Unrecoverable(ReplicaError),
    /// The audit sink cannot be opened.
    #[error("cannot start the audit trail")]
    Audit(#[from] AuditError),
    /// A listener's TLS files do not make a configuration.
    #[error("cannot serve TLS on the {listener} port")]
    Tls {
        /// Which listener.
        listener: &'static str,
        /// What is wrong.
        #[source]
        source: TlsError,
    },
    /// The approvals directory (or, with Redis, the approvals outbox) cannot be opened.
    #[error("cannot open the approvals store")]
    Approvals(#[from] ApprovalDirError),
    /// A console was asked for without admin tokens to log in with.
    #[error("the console (`--console-listen`) needs admin tokens to log in with")]
    ConsoleWithoutAdmin,
    /// The shadow sample is not a share.
    #[error(transparent)]
    ShadowSample(#[from] crate::shadow::InvalidSample),
}

impl From<ReplicaError> for BuildError {
    fn from(e: ReplicaError) -> Self {
        match e {
            ReplicaError::Rejected(r) => Self::Bundle(r),
            ReplicaError::Store(s) => Self::Store(s),
            e @ ReplicaError::Unrecoverable(_) => Self::Unrecoverable(e),
        }
    }
}

/// Why a running application stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A gRPC port stopped serving.
    #[error(transparent)]
    Grpc(#[from] ServeError),
    /// The HTTP port stopped serving.
    #[error("the HTTP server failed")]
    Http(#[source] std::io::Error),
    /// The console's port stopped serving.
    #[error("the console failed")]
    Console(#[source] std::io::Error),
}

/// A Baton, built and bound, not yet serving.
pub struct Application {
    decision: Bound,
    http: Bound,
    admin: Option<(Bound, AdminTokens)>,
    console: Option<(Bound, AdminTokens)>,
    pipeline: Arc<Pipeline>,
    replica: Arc<Replica>,
    readiness: Arc<Readiness>,
    max_message_bytes: usize,
    drain_timeout: std::time::Duration,
    revision: Option<u64>,
    source: ServedFrom,
    mapping: Arc<GatewayMapping>,
    /// Held for the life of the application: one process per store directory.
    store_lock: std::fs::File,
}

/// Locks `dir` against a second process: two replicas writing one directory store would
/// number revisions and move the active pointer over each other. The lock is the kernel's
/// (`flock`), so it goes with the process however it ends.
fn lock_store_dir(dir: &std::path::Path) -> Result<std::fs::File, BuildError> {
    use fs4::fs_std::FileExt as _;
    let failed = |source| BuildError::StoreDir {
        path: dir.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .map_err(failed)?;
    if file.try_lock_exclusive().map_err(failed)? {
        Ok(file)
    } else {
        Err(BuildError::StoreLocked {
            path: dir.to_owned(),
        })
    }
}

/// Binds `addr`, with TLS when `tls` says so; its files are loaded now, so a bad one stops
/// startup before anything listens.
async fn bind(
    addr: SocketAddr,
    tls: Option<ListenerTls>,
    listener: &'static str,
    alpn: &[&[u8]],
) -> Result<Bound, BuildError> {
    let tls = tls
        .map(|settings| ServerTls::load(settings, crate::tls::alpn(alpn)))
        .transpose()
        .map_err(|source| BuildError::Tls { listener, source })?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| BuildError::Listen { addr, source })?;
    Ok(Bound { tcp, tls })
}

impl Application {
    /// Builds everything `config` describes and binds its listeners: the bundle to start with
    /// (the store's active revision, else the last good copy, else `bundle_dir`), Redis when
    /// configured, the stores, the pipeline and the replica. Must be called within a Tokio
    /// runtime.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let store_dir = |source| BuildError::StoreDir {
            path: config.store_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&config.store_dir).map_err(store_dir)?;
        let store_lock = lock_store_dir(&config.store_dir)?;
        let shadow_ppm = crate::shadow::sample_ppm(config.shadow_sample)?;
        if let Some(redis) = &config.redis {
            tracing::info!(urls = redis.urls.len(), cluster = redis.cluster, prefix = %redis.prefix, "sharing state through Redis");
        }
        let fleet = config.redis.clone().map(Fleet::start).transpose()?;
        let (store, last_good) = bundle_store(&config, fleet.as_ref())?;
        let initial = replica::initial(
            store.as_ref(),
            last_good.as_ref(),
            &config.bundle_dir,
            &config.settings,
            &config.bundle_limits,
            config.recover_store,
        )
        .await?;
        let source = initial.source;
        let bundle = initial.admitted.bundle;
        for w in bundle.warnings() {
            tracing::warn!(warning = %w, "bundle warning");
        }
        crate::tls::install_crypto_provider();
        let tls = config.tls;
        let grpc = crate::tls::ALPN_GRPC;
        let decision = bind(config.listen, tls.decision, "decision", grpc).await?;
        let http = bind(config.http_listen, tls.http, "HTTP", crate::tls::ALPN_HTTP).await?;
        let console = match (config.console_listen, &config.admin_tokens) {
            (None, _) => None,
            (Some(_), None) => return Err(BuildError::ConsoleWithoutAdmin),
            (Some(addr), Some(tokens)) => Some((
                bind(addr, tls.console, "console", crate::tls::ALPN_HTTP).await?,
                tokens.clone(),
            )),
        };
        let admin = match config.admin_tokens {
            Some(tokens) => Some((
                bind(config.admin_listen, tls.admin, "admin", grpc).await?,
                tokens,
            )),
            None => None,
        };

        let metrics = Arc::new(Metrics::new());
        let revocations_file = config.store_dir.join("revocations.json");
        let (revocations, approvals, cache) = match &fleet {
            Some(fleet) => {
                let revocations = Revocations::shared(
                    Arc::new(RedisRevocations::new(Arc::clone(fleet))),
                    Some(revocations_file),
                    Arc::clone(&config.clock),
                    Arc::clone(&metrics),
                )?;
                // Opened locally first, so an approval-required answer never waits on Redis.
                let approvals: Arc<dyn ApprovalStore> = LocalFirstApprovals::open(
                    Arc::new(RedisApprovals::new(Arc::clone(fleet))),
                    &config.store_dir.join("approvals-outbox"),
                    Arc::clone(&metrics),
                )?;
                let tier = Arc::new(RedisTier::new(Arc::clone(fleet), &config.settings));
                (
                    revocations,
                    approvals,
                    DecisionCache::shared(config.cache, tier),
                )
            }
            None => (
                Revocations::open(Some(revocations_file), Arc::clone(&config.clock))?,
                // In the store directory, so approvals outlive a restart.
                Arc::new(FileApprovals::open(&config.store_dir.join("approvals"))?)
                    as Arc<dyn ApprovalStore>,
                DecisionCache::new(config.cache),
            ),
        };
        let audit = Arc::new(Audit::start(&config.audit, fleet.clone())?);
        let shadow = Arc::new(Shadow::start(
            shadow_ppm,
            config.settings.clone(),
            Arc::clone(&audit),
            Arc::clone(&metrics),
        ));
        let pipeline = Arc::new(Pipeline::new(Parts {
            bundle,
            settings: config.settings,
            limits: config.limits,
            delegation: config.delegation,
            cache,
            revocations,
            approvals: Arc::new(Approvals::new(approvals, config.approval_ttl)),
            audit,
            metrics,
            clock: config.clock,
            shadow,
            lifecycle: config.agent_lifecycle,
        }));
        let mapping = Arc::new(config.gateway_mapping);
        let revision = initial.record.as_ref().map(|r| r.revision);
        let replica = Arc::new(Replica::new(
            pipeline.clone(),
            store,
            last_good,
            config.bundle_limits,
            initial.record,
        ));
        Ok(Self {
            decision,
            http,
            admin,
            console,
            pipeline,
            replica,
            readiness: Arc::new(Readiness::default()),
            max_message_bytes: config.max_message_bytes,
            drain_timeout: config.drain_timeout,
            revision,
            source,
            mapping,
            store_lock,
        })
    }

    /// The decision port's address (the system's choice when configured with port 0).
    pub fn decision_addr(&self) -> SocketAddr {
        local_addr(&self.decision)
    }

    /// The HTTP port's address (the system's choice when configured with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        local_addr(&self.http)
    }

    /// The admin port's address, when admin tokens are configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(l, _)| local_addr(l))
    }

    /// The console's address, when `--console-listen` is set.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.as_ref().map(|(l, _)| local_addr(l))
    }

    /// The decision pipeline, to look at what a client cannot see (counters, the trail).
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The replica that follows the bundle store.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Where the bundle served at start came from.
    pub fn served_from(&self) -> ServedFrom {
        self.source
    }

    /// The store revision served at start, when known.
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// The decision door as a service, for callers in this process.
    pub fn decision_api(&self) -> DecisionApi {
        DecisionApi::new(Arc::clone(&self.pipeline))
    }

    /// Serves every port until `shutdown` resolves, then drains in-flight calls, stops, and
    /// flushes the audit trail. HTTP outlives the gRPC drain, so probes see `/readyz` fail
    /// and scrapes see the last calls.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        let Self {
            decision,
            http,
            admin,
            console,
            pipeline,
            replica,
            readiness,
            max_message_bytes,
            drain_timeout,
            mapping,
            store_lock,
            ..
        } = self;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        tokio::spawn(replica.clone().follow(stopped(stopping.clone())));
        let admin = async {
            let Some((listener, tokens)) = admin else {
                return Ok(());
            };
            // A whole bundle travels in one message; past the bundle limit, the transport
            // refuses it.
            let max_message = replica
                .limits()
                .max_bytes
                .saturating_add(1024 * 1024)
                .max(max_message_bytes);
            let port = AdminPort {
                admin: AdminApi::new(Arc::clone(&replica), Arc::clone(pipeline.audit())),
                governance: GovernanceApi::new(Governance::of(&pipeline)),
                audit: AuditApi::new(Arc::clone(pipeline.audit())),
                tokens,
                max_message_bytes: max_message,
            };
            server::serve_admin(listener, port, stopped(stopping.clone())).await
        };
        let console = async {
            let Some((listener, tokens)) = console else {
                return Ok(());
            };
            let state = crate::console::ConsoleState::new(
                Arc::clone(&pipeline),
                Arc::clone(&replica),
                tokens,
                listener.tls.is_some(),
                stopping.clone(),
            );
            crate::console::run(listener, Arc::new(state), stopped(stopping.clone())).await
        };
        let (drained, http_stop) = tokio::sync::oneshot::channel::<()>();
        let authzen = AuthzenApi::new(
            Arc::clone(&pipeline),
            Arc::new(mapping.authzen.clone()),
            max_message_bytes,
        );
        let http_state = Arc::new(HttpState::new(
            Arc::clone(&pipeline),
            Arc::clone(&readiness),
            Arc::new(authzen),
        ));
        let decisions = async {
            let port = DecisionPort {
                api: DecisionApi::new(Arc::clone(&pipeline)),
                ext_authz: ExtAuthzApi::new(Arc::clone(&pipeline), Arc::new(mapping.envoy.clone())),
                readiness: Arc::clone(&readiness),
                max_message_bytes,
                drain_timeout,
            };
            let served = server::serve_decisions(decision, port, stopped(stopping.clone())).await;
            let _ = drained.send(());
            served
        };
        let http = crate::http::run(http, http_state, async {
            let _ = http_stop.await;
        });
        let (decisions, http, admin, console) = tokio::join!(decisions, http, admin, console);
        pipeline.audit().close().await;
        tracing::info!(stats = ?pipeline.audit().stats(), "audit trail flushed and synced");
        decisions?;
        http.map_err(RunError::Http)?;
        admin?;
        console.map_err(RunError::Console)?;
        drop(store_lock);
        Ok(())
    }
}

fn local_addr(listener: &Bound) -> SocketAddr {
    listener
        .tcp
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Where bundles live: Redis with a local last good copy, or a local directory.
fn bundle_store(
    config: &Config,
    fleet: Option<&Arc<Fleet>>,
) -> Result<(Arc<dyn BundleStore>, Option<LastGood>), BuildError> {
    match fleet {
        Some(fleet) => {
            let store = RedisStore::new(Arc::clone(fleet), BUNDLE_STORE_TIMEOUT);
            let last_good = LastGood::in_dir(&config.store_dir).map_err(BuildError::Store)?;
            Ok((Arc::new(store), Some(last_good)))
        }
        None => Ok((
            Arc::new(DirStore::open(&config.store_dir).map_err(BuildError::Store)?),
            None,
        )),
    }
}
