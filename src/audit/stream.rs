//! The Redis sink: every record goes to one stream (`{prefix}:audit`, capped with
//! `MAXLEN ~`), for consumers that follow the trail, and to a key of its own with sorted-set
//! indexes by time, transaction, principal and agent, for queries. Keys and indexes expire after
//! the retention period; a record written twice (a batch retried after an ambiguous failure) is
//! one key and one index member, though two stream entries.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::AuditError;
use super::query::{AuditPage, AuditQuery, AuditTrail, Selector};
use super::record::{AuditRecord, unix_ms};
use super::sink::Encoded;
use crate::fleet::Fleet;

#[derive(Clone)]
pub struct RedisTrail {
    fleet: Arc<Fleet>,
    retention: Duration,
    stream_maxlen: u64,
    /// The longest a batch or a query may take.
    timeout: Duration,
}

impl RedisTrail {
    pub fn new(
        fleet: Arc<Fleet>,
        retention: Duration,
        stream_maxlen: u64,
        timeout: Duration,
    ) -> Self {
        Self {
            fleet,
            retention,
            stream_maxlen,
            timeout,
        }
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    fn record_key(&self, id: &str) -> String {
        self.fleet.key(&format!("audit:record:{id}"))
    }

    fn index_key(&self, index: &str, value: &str) -> String {
        self.fleet.key(&format!("audit:{index}:{value}"))
    }

    fn time_key(&self) -> String {
        self.fleet.key("audit:time")
    }

    /// The sorted sets `record` belongs to.
    fn indexes(&self, record: &AuditRecord) -> Vec<String> {
        let mut keys = vec![self.time_key()];
        if let Some(txn) = record.transaction_id() {
            keys.push(self.index_key("txn", txn));
        }
        if let Some(principal) = record.principal() {
            keys.push(self.index_key("principal", &principal));
        }
        for agent in record.agents() {
            keys.push(self.index_key("agent", agent));
        }
        keys
    }

    /// Writes `batch` in one round trip; false if Redis did not take it all.
    pub async fn write(&self, batch: &[Encoded]) -> bool {
        let retention_secs = self.retention.as_secs().max(1);
        let horizon = SystemTime::now()
            .checked_sub(self.retention)
            .map_or(0, unix_ms);
        let stream = self.fleet.key("audit");
        let mut pipe = redis::pipe();
        let mut touched = BTreeSet::new();
        for (record, json) in batch {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.stream_maxlen)
                .arg("*")
                .arg("id")
                .arg(&record.id)
                .arg("kind")
                .arg(record.event.kind())
                .arg("record")
                .arg(json)
                .ignore();
            pipe.cmd("SET")
                .arg(self.record_key(&record.id))
                .arg(json)
                .arg("EX")
                .arg(retention_secs)
                .ignore();
            let score = record.time_ms();
            for key in self.indexes(record) {
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg(score)
                    .arg(&record.id)
                    .ignore();
                touched.insert(key);
            }
        }
        // Members past the retention would point at expired records.
        for key in touched {
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(format!("({horizon}"))
                .ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(retention_secs).ignore();
        }
        self.fleet
            .pipe_query::<()>("XADD audit", &pipe, self.timeout)
            .await
            .is_some()
    }

    /// Answers `query` from the indexes; `None` if Redis cannot be asked.
    async fn lookup(&self, query: &AuditQuery) -> Option<AuditPage> {
        let key = match &query.selector {
            Selector::DecisionId(id) => {
                let records = self.fetch(std::slice::from_ref(id)).await?;
                return Some(query.page_of(records.into_iter().filter(|r| query.matches(r))));
            }
            Selector::All => self.time_key(),
            Selector::Transaction(txn) => self.index_key("txn", txn),
            Selector::Principal(p) => self.index_key("principal", p),
            Selector::Agent(a) => self.index_key("agent", a),
        };
        let (min, max) = query.range_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGEBYSCORE")
            .arg(&key)
            .arg(min)
            .arg(max)
            .arg("LIMIT")
            .arg(query.offset)
            .arg(query.page_size + 1);
        let (mut ids,): (Vec<String>,) = self
            .fleet
            .pipe_query("ZRANGEBYSCORE audit", &pipe, self.timeout)
            .await?;
        let more = ids.len() > query.page_size;
        ids.truncate(query.page_size);
        // An index member whose record expired meanwhile is skipped; offsets count members,
        // so pages stay aligned.
        let mut records = self.fetch(&ids).await?;
        records.retain(|r| query.kind_matches(r));
        Some(AuditPage {
            records,
            next_offset: more.then_some(query.offset + query.page_size),
        })
    }

    /// Up to `count` entries of the stream, oldest first: from the entry added at `from_ms` on,
    /// or after the entry `after` (a stream id, exclusive). Each with its stream id; entries
    /// whose record does not parse are left out. `None` if Redis cannot be asked.
    pub async fn stream_page(
        &self,
        from_ms: u64,
        after: Option<&str>,
        count: usize,
    ) -> Option<Vec<(String, Option<AuditRecord>)>> {
        let start = after.map_or_else(|| from_ms.to_string(), |id| format!("({id}"));
        let mut pipe = redis::pipe();
        pipe.cmd("XRANGE")
            .arg(self.fleet.key("audit"))
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(count);
        let (entries,): (Vec<(String, Vec<String>)>,) = self
            .fleet
            .pipe_query("XRANGE audit", &pipe, self.timeout)
            .await?;
        Some(
            entries
                .into_iter()
                .map(|(id, fields)| {
                    // Fields alternate name and value: `id`, `kind`, `record`.
                    let record = fields
                        .chunks(2)
                        .find(|pair| pair.first().is_some_and(|n| n == "record"))
                        .and_then(|pair| pair.get(1))
                        .and_then(|json| serde_json::from_str(json).ok());
                    (id, record)
                })
                .collect(),
        )
    }

    /// The records of `ids` still held, in the order given.
    async fn fetch(&self, ids: &[String]) -> Option<Vec<AuditRecord>> {
        if ids.is_empty() {
            return Some(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("GET").arg(self.record_key(id));
        }
        let found: Vec<Option<String>> = self
            .fleet
            .pipe_query("GET audit", &pipe, self.timeout)
            .await?;
        Some(
            found
                .into_iter()
                .flatten()
                .filter_map(|json| serde_json::from_str(&json).ok())
                .collect(),
        )
    }
}

#[async_trait]
impl AuditTrail for RedisTrail {
    async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError> {
        self.lookup(&query)
            .await
            .ok_or_else(|| AuditError::Unavailable(std::io::Error::other("Redis did not answer")))
    }
}
