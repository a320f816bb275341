//! Revisions and the active pointer in Redis, shared by every replica, with a pub/sub notice on
//! `{prefix}:bundles` whenever the pointer moves.
//!
//! ```text
//! {prefix}:bundles:next            revision counter (INCR)
//! {prefix}:bundles:record:{n}      the record of revision n, JSON
//! {prefix}:bundles:files:{n}       its files, JSON
//! {prefix}:bundles:activations     list of activated revisions, oldest first
//! {prefix}:bundles:active          the active revision
//! ```
//!
//! A revision is written in one MULTI transaction with the pointer that names it, so no replica
//! ever reads a pointer to a half-stored bundle.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;
use tokio_stream::StreamExt as _;

use super::{BundleRecord, BundleStore, Draft, StoreError, StoredBundle};
use crate::bundle::SourceFile;

/// Where Redis is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RedisStoreConfig {
    pub url: String,
    /// Prefix of every key and of the channel.
    pub prefix: String,
    /// Bound on each connection attempt and each command, so an unreachable Redis fails fast
    /// instead of stalling an admin call or a replica's startup.
    pub timeout: Duration,
}

pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    notices: watch::Receiver<u64>,
}

/// Moves the pointer back one activation, if `from` is still active and `to` precedes it.
/// Returns 1 when done, -1 when the pointer moved meanwhile, -2 when there is nothing before it.
const ROLLBACK: &str = r"
local active = redis.call('GET', KEYS[1])
if active ~= ARGV[1] then return -1 end
local before = redis.call('LINDEX', KEYS[2], -2)
if not before or before ~= ARGV[2] then return -2 end
redis.call('RPOP', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
";

impl RedisStore {
    /// A store that connects lazily: construction never waits for Redis, and commands fail
    /// with [`StoreError::Unavailable`] after `config.timeout` while it is unreachable. Starts
    /// the subscriber task that turns `{prefix}:bundles` messages into notices.
    pub fn new(config: &RedisStoreConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.timeout);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(unavailable)?;
        Ok(Self::with_connection(
            connection,
            client,
            &config.prefix,
            config.timeout,
        ))
    }

    /// A store over a connection someone else manages; `client` opens the pub/sub connection.
    pub fn with_connection(
        connection: ConnectionManager,
        client: redis::Client,
        prefix: &str,
        timeout: Duration,
    ) -> Self {
        let (tx, notices) = watch::channel(0);
        tokio::spawn(subscribe(client, format!("{prefix}:bundles"), timeout, tx));
        Self {
            connection,
            prefix: prefix.to_owned(),
            notices,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:bundles:{name}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:bundles", self.prefix)
    }
}

#[async_trait::async_trait]
impl BundleStore for RedisStore {
    async fn push(&self, draft: Draft) -> Result<BundleRecord, StoreError> {
        let mut con = self.connection.clone();
        let revision: u64 = con.incr(self.key("next"), 1).await.map_err(unavailable)?;
        let record = draft.record(revision);
        let record_json = to_json(&record)?;
        let files_json = to_json(&draft.files)?;
        redis::pipe()
            .atomic()
            .set(self.key(&format!("record:{revision}")), record_json)
            .set(self.key(&format!("files:{revision}")), files_json)
            .rpush(self.key("activations"), revision)
            .set(self.key("active"), revision)
            .publish(self.channel(), revision)
            .query_async::<()>(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(record)
    }

    async fn activate(&self, revision: u64) -> Result<(), StoreError> {
        let mut con = self.connection.clone();
        let exists: bool = con
            .exists(self.key(&format!("record:{revision}")))
            .await
            .map_err(unavailable)?;
        if !exists {
            return Err(StoreError::UnknownRevision(revision));
        }
        redis::pipe()
            .atomic()
            .rpush(self.key("activations"), revision)
            .set(self.key("active"), revision)
            .publish(self.channel(), revision)
            .query_async::<()>(&mut con)
            .await
            .map_err(unavailable)
    }

    async fn rollback(&self, from: u64, to: u64) -> Result<(), StoreError> {
        let mut con = self.connection.clone();
        let outcome: i64 = redis::Script::new(ROLLBACK)
            .key(self.key("active"))
            .key(self.key("activations"))
            .key(self.channel())
            .arg(from)
            .arg(to)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        match outcome {
            1 => Ok(()),
            -1 => Err(StoreError::Conflict { expected: from }),
            _ => Err(StoreError::NothingToRollBack),
        }
    }

    async fn active(&self) -> Result<Option<u64>, StoreError> {
        let mut con = self.connection.clone();
        con.get(self.key("active")).await.map_err(unavailable)
    }

    async fn activations(&self) -> Result<Vec<u64>, StoreError> {
        let mut con = self.connection.clone();
        con.lrange(self.key("activations"), 0, -1)
            .await
            .map_err(unavailable)
    }

    async fn get(&self, revision: u64) -> Result<Option<StoredBundle>, StoreError> {
        let mut con = self.connection.clone();
        let (record, files): (Option<String>, Option<String>) = redis::pipe()
            .get(self.key(&format!("record:{revision}")))
            .get(self.key(&format!("files:{revision}")))
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        match (record, files) {
            (Some(record), Some(files)) => Ok(Some(StoredBundle {
                record: from_json(&record)?,
                files: from_json::<Vec<SourceFile>>(&files)?,
            })),
            (None, _) => Ok(None),
            (Some(_), None) => Err(StoreError::Corrupt(format!(
                "revision {revision} has no files"
            ))),
        }
    }

    async fn list(&self, limit: usize) -> Result<Vec<BundleRecord>, StoreError> {
        let mut con = self.connection.clone();
        let latest: Option<u64> = con.get(self.key("next")).await.map_err(unavailable)?;
        let keys: Vec<String> = (1..=latest.unwrap_or(0))
            .rev()
            .take(limit)
            .map(|n| self.key(&format!("record:{n}")))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<Option<String>> = con.mget(keys).await.map_err(unavailable)?;
        records.iter().flatten().map(|r| from_json(r)).collect()
    }

    fn subscribe(&self) -> Option<watch::Receiver<u64>> {
        Some(self.notices.clone())
    }
}

/// Forwards every message on `channel` as a notice, reconnecting for as long as anyone
/// listens. A fresh subscription is itself a notice: messages may have been missed meanwhile.
async fn subscribe(
    client: redis::Client,
    channel: String,
    timeout: Duration,
    tx: watch::Sender<u64>,
) {
    let mut seen = 0u64;
    while !tx.is_closed() {
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                tracing::debug!(%channel, "subscribed to bundle notices");
                seen += 1;
                tx.send_replace(seen);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    tracing::debug!(revision = ?message.get_payload::<u64>().ok(), "bundle notice");
                    seen += 1;
                    tx.send_replace(seen);
                }
                tracing::warn!(%channel, "lost the bundle notice subscription; resubscribing");
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot subscribe to bundle notices"),
            Err(_) => tracing::debug!("subscribing to bundle notices timed out"),
        }
        tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}
