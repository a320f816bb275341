//! What replicas share through Redis: one connection (a single server, or a Cluster by
//! configuration alone), its health, and the cache epoch.
//!
//! Redis is never on the critical path of an answer: every command is bounded by a small
//! timeout, a failure marks Redis down so later requests skip it at once, and a background
//! probe brings it back when it answers again. The connection manager and the Cluster client
//! reconnect by themselves.
//!
//! The epoch names the current generation of shared cache entries: entries are keyed under it,
//! and [`Fleet::invalidate`] replaces it with a fresh random value and rings a pub/sub doorbell
//! so every replica re-reads it at once. The probe re-reads it too, so a missed notice costs at
//! most one probe interval. A random value, rather than a counter, means an epoch lost to a
//! restart or eviction can never come back and revive the entries it once covered.
//!
//! Stores that must say why Redis failed (bundles, the minter's replay guard) use
//! [`Fleet::command`], [`Fleet::pipeline`] and [`Fleet::script`] instead: on the background
//! connection, within a limit of the caller's, returning Redis's own error. Every doorbell
//! reaches [`Fleet::notices`]; [`Fleet::subscribe`] counts the messages on a channel of one's
//! own.

mod command;
mod connection;
mod doorbell;
mod health;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::{Cmd, FromRedisValue, Pipeline};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

pub use self::command::CommandError;
use self::connection::Connection;
use self::health::Health;
use crate::ewma::Ewma;

/// How often the probe re-reads the epoch, which also tells whether Redis is back.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);

const EPOCH_NOTICE: &str = "epoch";

/// How Baton reaches Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URLs: one server, or the seed nodes of a Cluster.
    pub urls: Vec<String>,
    /// Speak the Cluster protocol to `urls`.
    pub cluster: bool,
    /// Prepended to every key and channel, so deployments can share one Redis.
    pub prefix: String,
    /// The longest any command on the request path may take before Baton decides without it.
    pub op_timeout: Duration,
    /// The longest a connection attempt may take; background work only.
    pub connect_timeout: Duration,
    /// A private CA and a client certificate for `rediss://` URLs; the system's roots and no
    /// client certificate when empty.
    pub tls: RedisTls,
}

/// What a `rediss://` connection presents and trusts beyond the defaults. PEM bytes, read from
/// their files when the configuration is made, so a missing file stops startup.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// CA certificates that sign the server's certificate, instead of the system's roots.
    pub ca: Option<Vec<u8>>,
    /// A client certificate chain and its private key, for a Redis that requires them
    /// (`tls-auth-clients yes`).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl RedisTls {
    /// Whether anything beyond the defaults is configured.
    pub fn is_configured(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca.clone(),
        }
    }
}

/// Certificates and keys are never printed.
impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl RedisSettings {
    /// The settings for `urls` as a single server, with the default prefix and timeouts.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            cluster: false,
            prefix: "baton".to_owned(),
            op_timeout: Duration::from_millis(25),
            connect_timeout: Duration::from_millis(500),
            tls: RedisTls::default(),
        }
    }
}

/// Why the fleet's Redis connection cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The settings name no URL.
    #[error("no Redis URL given")]
    NoUrl,
    /// A URL does not parse as a Redis URL.
    #[error("Redis URL `{url}` is invalid")]
    Url {
        /// The URL as given.
        url: String,
        /// What the Redis client made of it.
        source: redis::RedisError,
    },
    /// A CA or client certificate is configured for a URL that does not use TLS: it would
    /// silently go unused, and the operator who set it expects TLS.
    #[error("Redis URL `{url}` is not `rediss://`, but TLS certificates are configured")]
    TlsWithoutRediss {
        /// The URL as given.
        url: String,
    },
}

/// The Redis connection the replicas share, its health and the cache epoch; every Redis store
/// goes through it.
pub struct Fleet {
    connection: Connection,
    settings: RedisSettings,
    health: Health,
    latency: Ewma,
    epoch: AtomicU64,
    /// The same epoch, for those who act as soon as it changes.
    epoch_changes: watch::Sender<u64>,
    /// Doorbells other than the epoch's, for whoever keeps shared state (revocations).
    notices: broadcast::Sender<String>,
    tasks: Vec<AbortHandle>,
}

impl Fleet {
    /// Starts connecting in the background and returns at once: a Redis that is down at startup
    /// delays nothing. Must be called within a Tokio runtime.
    pub fn start(settings: RedisSettings) -> Result<Arc<Self>, FleetError> {
        let connection = Connection::new(&settings)?;
        let pubsub = connection.pubsub_client().clone();
        let fleet = Arc::new_cyclic(|weak: &Weak<Self>| {
            let probe = tokio::spawn(probe(weak.clone())).abort_handle();
            let notices = tokio::spawn(doorbell::listen(weak.clone(), pubsub)).abort_handle();
            Self {
                connection,
                settings,
                health: Health::default(),
                latency: Ewma::default(),
                epoch: AtomicU64::new(0),
                epoch_changes: watch::Sender::new(0),
                notices: broadcast::Sender::new(16),
                tasks: vec![probe, notices],
            }
        });
        Ok(fleet)
    }

    /// The settings it was started with.
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A key or channel name under this deployment's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.settings.prefix)
    }

    /// Whether the last command got an answer: false before the first one, and from a failed
    /// or slow command until one succeeds again.
    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    /// The recent round-trip time, once known.
    pub fn latency(&self) -> Option<Duration> {
        self.latency.get()
    }

    /// Commands that failed or timed out since start.
    pub fn errors(&self) -> u64 {
        self.health.errors()
    }

    /// The current generation of shared entries; zero until first read from Redis.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Changes to [`Fleet::epoch`]: another replica invalidated, or Redis lost the epoch.
    pub fn watch_epoch(&self) -> watch::Receiver<u64> {
        self.epoch_changes.subscribe()
    }

    /// Doorbells rung by [`Fleet::ring`] on any replica, this one included.
    pub fn notices(&self) -> broadcast::Receiver<String> {
        self.notices.subscribe()
    }

    /// Counts the messages published on `channel` (a full name, as [`Fleet::key`] gives it),
    /// plus one for every fresh subscription, since messages may have been missed while there
    /// was none. The subscription is a connection of its own, kept for as long as a receiver
    /// is. Must be called within a Tokio runtime.
    pub fn subscribe(&self, channel: &str) -> watch::Receiver<u64> {
        let (counter, receiver) = watch::channel(0);
        tokio::spawn(doorbell::count(
            self.connection.pubsub_client().clone(),
            channel.to_owned(),
            self.settings.connect_timeout,
            counter,
        ));
        receiver
    }

    /// Tells every replica that `what` changed in Redis. Best effort: followers also poll.
    pub async fn ring(&self, what: &str) {
        let ring = redis::cmd("PUBLISH")
            .arg(self.key("events"))
            .arg(what)
            .clone();
        let _ = self
            .query_within::<i64>("PUBLISH", &ring, self.settings.connect_timeout)
            .await;
    }

    /// Runs one command within the request-path timeout. A failure is counted, marks Redis
    /// down, and reads as `None`: callers carry on without Redis.
    pub async fn query<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Option<T> {
        self.query_within(what, cmd, self.settings.op_timeout).await
    }

    async fn query_within<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &Cmd,
        limit: Duration,
    ) -> Option<T> {
        let started = Instant::now();
        let answer = tokio::time::timeout(limit, self.connection.query(cmd)).await;
        let value = self.settle(what, limit, answer).ok();
        if value.is_some() {
            self.latency.record(started.elapsed());
        }
        value
    }

    /// Counts a command's outcome into Redis's health.
    fn settle<T>(
        &self,
        what: &str,
        limit: Duration,
        answer: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, CommandError> {
        match answer {
            Ok(Ok(value)) => {
                self.health.succeeded();
                Ok(value)
            }
            Ok(Err(source)) => {
                self.health.failed(what, &source);
                Err(CommandError::Failed {
                    what: what.to_owned(),
                    source,
                })
            }
            Err(_) => {
                self.health
                    .failed(what, &format_args!("no answer within {limit:?}"));
                Err(CommandError::TimedOut {
                    what: what.to_owned(),
                    limit,
                })
            }
        }
    }

    /// Sends `pipe` in one round trip within `limit`, for background work such as audit
    /// batches. A failure is counted and marks Redis down, like [`Fleet::query`]'s, and reads
    /// as `None`; [`Fleet::pipeline`] says why.
    pub async fn pipe_query<T: FromRedisValue>(
        &self,
        what: &str,
        pipe: &Pipeline,
        limit: Duration,
    ) -> Option<T> {
        // A batch's round trip says nothing of a single read's, so it stays out of `latency`.
        self.pipeline(what, pipe, limit).await.ok()
    }

    /// Retires every shared cache entry on every replica: a fresh epoch, then the doorbell.
    /// Returns false if Redis could not be told; the caller's own tiers must then be flushed
    /// by other means, and the change retried.
    pub async fn invalidate(&self) -> bool {
        let fresh = fresh_epoch();
        let set = redis::cmd("SET").arg(self.key("epoch")).arg(fresh).clone();
        if self
            .query_within::<()>("SET epoch", &set, self.settings.connect_timeout)
            .await
            .is_none()
        {
            return false;
        }
        self.adopt(fresh);
        // A replica that misses the doorbell reads the epoch at its next probe.
        self.ring(EPOCH_NOTICE).await;
        true
    }

    /// Reads the epoch, creating it if this is the first replica (or Redis lost it).
    async fn refresh_epoch(&self) {
        self.connection.ensure_connected().await;
        let key = self.key("epoch");
        let limit = self.settings.connect_timeout;
        let get = redis::cmd("GET").arg(&key).clone();
        let current = match self
            .query_within::<Option<u64>>("GET epoch", &get, limit)
            .await
        {
            Some(Some(epoch)) => Some(epoch),
            Some(None) => {
                if self.epoch() != 0 {
                    // Nothing to re-seed: the entries went with it, and the fresh random epoch
                    // below can never revive one this replica still holds locally.
                    tracing::warn!(
                        "Redis lost the shared cache epoch (emptied or restarted); starting a fresh one"
                    );
                }
                let create = redis::cmd("SET")
                    .arg(&key)
                    .arg(fresh_epoch())
                    .arg("NX")
                    .clone();
                let _ = self
                    .query_within::<Option<String>>("SET epoch", &create, limit)
                    .await;
                self.query_within::<Option<u64>>("GET epoch", &get, limit)
                    .await
                    .flatten()
            }
            None => None,
        };
        if let Some(epoch) = current {
            self.adopt(epoch);
        }
    }

    fn adopt(&self, epoch: u64) {
        let old = self.epoch.swap(epoch, Ordering::Relaxed);
        if old != epoch {
            self.epoch_changes.send_replace(epoch);
            if old != 0 {
                tracing::debug!(epoch, "shared cache epoch changed");
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Never zero, which means "not read yet".
fn fresh_epoch() -> u64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut half = [0u8; 8];
    half.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(half).max(1)
}

async fn probe(fleet: Weak<Fleet>) {
    loop {
        let Some(strong) = fleet.upgrade() else {
            return;
        };
        strong.refresh_epoch().await;
        drop(strong);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}
