//! Revisions and the active pointer in Redis, shared by every replica through the
//! [`Fleet`]'s connection, with a pub/sub notice on `<prefix>:bundles` whenever the pointer
//! moves.
//!
//! ```text
//! single server                  Redis Cluster
//! <prefix>:bundles:next          {<prefix>:bundles}:next         revision counter (INCR)
//! <prefix>:bundles:record:<n>    {<prefix>:bundles}:record:<n>   the record of revision n, JSON
//! <prefix>:bundles:files:<n>     {<prefix>:bundles}:files:<n>    its files, JSON
//! <prefix>:bundles:activations   {<prefix>:bundles}:activations  activated revisions, oldest first
//! <prefix>:bundles:active        {<prefix>:bundles}:active       the active revision
//! <prefix>:bundles:shadow        {<prefix>:bundles}:shadow       the shadowed revision, JSON
//! ```
//!
//! A revision is written in one MULTI transaction with the pointer that names it, so no replica
//! ever reads a pointer to a half-stored bundle. A Cluster runs a transaction or a script only
//! over keys of one slot, hence the hash tag on a Cluster. The tag is the channel's name, so the
//! PUBLISH inside a transaction, which the Cluster client routes by its channel as if it were a
//! key, goes to the same node. A single server keeps the untagged names it always had, so
//! existing deployments keep their bundles.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{BundleRecord, BundleStore, Draft, ShadowPointer, StoreError, StoredBundle, now_unix};
use crate::bundle::SourceFile;
use crate::fleet::{CommandError, Fleet};

/// The bundle store of every replica that shares one Redis.
pub struct RedisStore {
    fleet: Arc<Fleet>,
    /// What every key starts with: `<prefix>:bundles`, in braces on a Cluster.
    keys: String,
    /// `<prefix>:bundles`.
    channel: String,
    /// Bound on each command, so an unreachable Redis fails an admin call or a replica's
    /// startup fast instead of stalling it.
    timeout: Duration,
    notices: watch::Receiver<u64>,
}

/// Moves the pointer back one activation, if `from` is still active and `to` precedes it, and
/// publishes `to` on the channel. Returns 1 when done, -1 when the pointer moved meanwhile, -2
/// when there is nothing before it.
const ROLLBACK: &str = r"
local active = redis.call('GET', KEYS[1])
if active ~= ARGV[1] then return -1 end
local before = redis.call('LINDEX', KEYS[2], -2)
if not before or before ~= ARGV[2] then return -2 end
redis.call('RPOP', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
";

/// Clears the shadow pointer when ARGV[1] is empty or names the shadowed revision, and
/// publishes on the channel. Returns the revision cleared, or 0 when nothing was.
const STOP_SHADOW: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local revision = cjson.decode(current)['revision']
if ARGV[1] ~= '' and tostring(revision) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], 'shadow')
return revision
";

impl RedisStore {
    /// A store under `fleet`'s prefix, on its connection: construction never waits for
    /// Redis, and each command fails with [`StoreError::Unavailable`] after `timeout` while
    /// it is unreachable. Subscribes to `<prefix>:bundles`, whose messages become
    /// [`BundleStore::subscribe`]'s notices. Must be called within a Tokio runtime.
    pub fn new(fleet: Arc<Fleet>, timeout: Duration) -> Self {
        let channel = fleet.key("bundles");
        let keys = if fleet.settings().cluster {
            format!("{{{channel}}}")
        } else {
            channel.clone()
        };
        let notices = fleet.subscribe(&channel);
        Self {
            fleet,
            keys,
            channel,
            timeout,
            notices,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.keys)
    }

    async fn command<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.fleet
            .command(what, cmd, self.timeout)
            .await
            .map_err(unavailable)
    }

    async fn pipeline<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.fleet
            .pipeline(what, pipe, self.timeout)
            .await
            .map_err(unavailable)
    }

    /// Appends `revision` to the activations and points at it, at the end of the transaction
    /// `pipe` began.
    async fn point_at(
        &self,
        what: &str,
        pipe: &mut redis::Pipeline,
        revision: u64,
    ) -> Result<(), StoreError> {
        pipe.rpush(self.key("activations"), revision)
            .set(self.key("active"), revision)
            .publish(&self.channel, revision);
        self.pipeline(what, pipe).await
    }
}

#[async_trait::async_trait]
impl BundleStore for RedisStore {
    async fn push(&self, draft: Draft) -> Result<BundleRecord, StoreError> {
        let next = redis::cmd("INCR").arg(self.key("next")).clone();
        let revision: u64 = self.command("INCR bundles", &next).await?;
        let record = draft.record(revision);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.key(&format!("record:{revision}")), to_json(&record)?)
            .set(
                self.key(&format!("files:{revision}")),
                to_json(&draft.files)?,
            );
        self.point_at("MULTI push bundle", &mut pipe, revision)
            .await?;
        Ok(record)
    }

    async fn activate(&self, revision: u64) -> Result<(), StoreError> {
        let exists = redis::cmd("EXISTS")
            .arg(self.key(&format!("record:{revision}")))
            .clone();
        if !self.command::<bool>("EXISTS bundle", &exists).await? {
            return Err(StoreError::UnknownRevision(revision));
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.point_at("MULTI activate bundle", &mut pipe, revision)
            .await
    }

    async fn push_shadow(&self, draft: Draft) -> Result<(BundleRecord, ShadowPointer), StoreError> {
        let next = redis::cmd("INCR").arg(self.key("next")).clone();
        let revision: u64 = self.command("INCR bundles", &next).await?;
        let record = draft.record(revision);
        let pointer = ShadowPointer {
            revision,
            since: now_unix(),
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.key(&format!("record:{revision}")), to_json(&record)?)
            .set(
                self.key(&format!("files:{revision}")),
                to_json(&draft.files)?,
            )
            .set(self.key("shadow"), to_json(&pointer)?)
            .publish(&self.channel, "shadow");
        self.pipeline::<()>("MULTI push shadow bundle", &pipe)
            .await?;
        Ok((record, pointer))
    }

    async fn shadow(&self) -> Result<Option<ShadowPointer>, StoreError> {
        let get = redis::cmd("GET").arg(self.key("shadow")).clone();
        let text: Option<String> = self.command("GET shadow bundle", &get).await?;
        text.map(|t| from_json(&t)).transpose()
    }

    async fn stop_shadow(&self, only: Option<u64>) -> Result<Option<u64>, StoreError> {
        let script = redis::Script::new(STOP_SHADOW);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("shadow"))
            .arg(only.map(|r| r.to_string()).unwrap_or_default())
            .arg(&self.channel);
        let stopped: u64 = self
            .fleet
            .script("EVALSHA stop shadow bundle", &invocation, self.timeout)
            .await
            .map_err(unavailable)?;
        Ok((stopped != 0).then_some(stopped))
    }

    async fn rollback(&self, from: u64, to: u64) -> Result<(), StoreError> {
        let script = redis::Script::new(ROLLBACK);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.key("active"))
            .key(self.key("activations"))
            .arg(from)
            .arg(to)
            .arg(&self.channel);
        let outcome: i64 = self
            .fleet
            .script("EVALSHA rollback bundle", &invocation, self.timeout)
            .await
            .map_err(unavailable)?;
        match outcome {
            1 => Ok(()),
            -1 => Err(StoreError::Conflict { expected: from }),
            _ => Err(StoreError::NothingToRollBack),
        }
    }

    async fn active(&self) -> Result<Option<u64>, StoreError> {
        let get = redis::cmd("GET").arg(self.key("active")).clone();
        self.command("GET active bundle", &get).await
    }

    async fn activations(&self) -> Result<Vec<u64>, StoreError> {
        let range = redis::cmd("LRANGE")
            .arg(self.key("activations"))
            .arg(0)
            .arg(-1)
            .clone();
        self.command("LRANGE bundle activations", &range).await
    }

    async fn get(&self, revision: u64) -> Result<Option<StoredBundle>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.key(&format!("record:{revision}")))
            .get(self.key(&format!("files:{revision}")));
        let (record, files): (Option<String>, Option<String>) =
            self.pipeline("GET bundle", &pipe).await?;
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
        let next = redis::cmd("GET").arg(self.key("next")).clone();
        let latest: Option<u64> = self.command("GET bundle counter", &next).await?;
        let keys: Vec<String> = (1..=latest.unwrap_or(0))
            .rev()
            .take(limit)
            .map(|n| self.key(&format!("record:{n}")))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mget = redis::cmd("MGET").arg(keys).clone();
        let records: Vec<Option<String>> = self.command("MGET bundle records", &mget).await?;
        records.iter().flatten().map(|r| from_json(r)).collect()
    }

    fn subscribe(&self) -> Option<watch::Receiver<u64>> {
        Some(self.notices.clone())
    }
}

/// The failure with its causes, all an admin caller or the log gets to see of it.
fn unavailable(e: CommandError) -> StoreError {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    StoreError::Unavailable(text)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}
