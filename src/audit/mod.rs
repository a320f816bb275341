//! The audit trail: who acted, on whose behalf, under which policy.
//!
//! Every decision (and every revocation, lifted revocation and human approval) becomes one
//! [`AuditRecord`]. The decision path only puts it on a bounded queue; one writer task drains
//! the queue in batches into a sink: an append-only JSON Lines file (the embedded default) or,
//! with Redis, a stream plus query indexes, spooling to a local file while Redis is unreachable
//! and replaying in order when it returns. Every record is counted where it ends
//! ([`AuditStats`]).
//!
//! - [`record`]: the record and its kinds, with constructors from plain data.
//! - [`live`]: the decisions answered from now on, for watchers in this process, published
//!   only while one watches.
//! - [`query`]: selections by decision, transaction, principal, agent and time, paginated,
//!   and the [`AuditTrail`] that answers them.
//! - `writer`: the queue's consumer, which hands batches to an `AuditSink` (`sink`).
//! - `file_trail`: the file, both sink and trail, rotated into packed and indexed segments
//!   (`segment`); `redis_sink`, `stream`, `spool`: the Redis sink, the trail in Redis, and where
//!   records wait while Redis is unreachable (`jsonl`, the spool's file).

mod disagreement;
mod file_trail;
mod jsonl;
pub mod live;
pub mod query;
pub mod record;
mod redis_sink;
pub mod scan;
mod segment;
mod sink;
mod spool;
mod stream;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

pub use self::disagreement::{Disagreement, Flip};
use self::file_trail::FileTrail;
pub use self::file_trail::{Keep, Rotation};
pub use self::live::{FeedClosed, LiveFeed, Watch, Watched};
pub use self::query::{AuditPage, AuditQuery, AuditTrail, Selector};
pub use self::record::{
    ApprovalRecord, Asked, AuditContext, AuditEvent, AuditRecord, DecisionInput, DecisionRecord,
    KeptContext, RevocationRecord, ShadowRecord, SignoffMention,
};
use self::redis_sink::RedisSink;
use self::sink::AuditSink;
use self::spool::Spool;
use self::stream::RedisTrail;
use self::writer::{Counters, Message, Writer};
use crate::fleet::Fleet;

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditMode {
    /// Redis Streams when Redis is configured, else the JSON Lines file.
    Auto,
    /// The append-only JSON Lines file.
    File,
    /// Redis Streams and query indexes, with a local spool while Redis is unreachable.
    Redis,
    /// No audit trail at all; for measuring what it costs.
    Off,
}

/// What the decision path does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenFull {
    /// Wait for room: no record is ever dropped, and a sink that cannot keep up slows answers.
    Block,
    /// Drop the record and count it: answers never wait, the trail has gaps.
    Drop,
}

/// Where audit records go and how the queue in front of the sink behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// Which sink.
    pub mode: AuditMode,
    /// The JSON Lines file of the file sink.
    pub file: PathBuf,
    /// Where records wait while Redis is unreachable.
    pub spool: PathBuf,
    /// Records the queue holds before it is full.
    pub capacity: usize,
    /// Most records in one write.
    pub max_batch: usize,
    /// What the decision path does when the queue is full.
    pub when_full: WhenFull,
    /// How long Redis keeps records and their indexes.
    pub retention: Duration,
    /// The approximate length the Redis stream is capped at.
    pub stream_maxlen: u64,
    /// The longest a Redis batch or query may take.
    pub redis_timeout: Duration,
    /// When the file is rotated into segments, and which segments are kept.
    pub rotation: Rotation,
    /// What a decision record keeps of the request's context.
    pub context: AuditContext,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            mode: AuditMode::Auto,
            file: PathBuf::from("baton-audit.jsonl"),
            spool: PathBuf::from("baton-audit.spool.jsonl"),
            capacity: 16_384,
            max_batch: 512,
            when_full: WhenFull::Block,
            retention: Duration::from_secs(7 * 24 * 3600),
            stream_maxlen: 1_000_000,
            redis_timeout: Duration::from_secs(2),
            rotation: Rotation::default(),
            context: AuditContext::default(),
        }
    }
}

/// Why the audit trail could not be started or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The Redis sink was asked for without a Redis URL.
    #[error("`--audit redis` needs a Redis URL")]
    NoRedis,
    /// The audit file or the spool cannot be opened.
    #[error("cannot open the audit file `{path}`")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why it cannot be opened.
        #[source]
        source: std::io::Error,
    },
    /// A query reached a Baton whose audit trail is off.
    #[error("the audit trail is off")]
    Off,
    /// A query could not read the file, or Redis did not answer.
    #[error("the audit trail cannot be read right now")]
    Unavailable(#[source] std::io::Error),
}

/// Records read for a replay, in batches; the last item is an error if the trail could not be
/// read to the end.
pub type Records = mpsc::Receiver<Result<Vec<AuditRecord>, AuditError>>;

/// Records per batch of [`Audit::records_in`].
const SCAN_BATCH: usize = 1024;
/// Batches read ahead of the replay.
const SCAN_BATCHES: usize = 4;

/// The records of the audit stream in Redis through `fleet` (from `from` until `until`),
/// oldest first, as [`Audit::records_in`] gives them: for a reader that is not the server,
/// such as `baton policy replay --redis-url`.
pub fn redis_records(
    fleet: Arc<Fleet>,
    timeout: Duration,
    from: Option<SystemTime>,
    until: Option<SystemTime>,
) -> Records {
    let trail = RedisTrail::new(fleet, Duration::ZERO, 0, timeout);
    stream_records(trail, from, until)
}

/// Reads the stream a page at a time. A stream entry is added when the record is written,
/// never before its time, so reading starts at `from`; records spooled while Redis was away
/// arrive later than their time, so reading goes to the end and each is held to the window.
fn stream_records(
    trail: RedisTrail,
    from: Option<SystemTime>,
    until: Option<SystemTime>,
) -> Records {
    let (send, receive) = mpsc::channel(SCAN_BATCHES);
    let from_ms = from.map_or(0, record::unix_ms);
    let until_ms = until.map_or(u64::MAX, record::unix_ms);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let Some(page) = trail
                .stream_page(from_ms, after.as_deref(), SCAN_BATCH)
                .await
            else {
                let _ = send
                    .send(Err(AuditError::Unavailable(std::io::Error::other(
                        "Redis did not answer",
                    ))))
                    .await;
                return;
            };
            let last = page.last().map(|(id, _)| id.clone());
            let records: Vec<AuditRecord> = page
                .into_iter()
                .filter_map(|(_, r)| r)
                .filter(|r| (from_ms..until_ms).contains(&r.time_ms()))
                .collect();
            if send.send(Ok(records)).await.is_err() {
                return;
            }
            match last {
                Some(id) => after = Some(id),
                None => return,
            }
        }
    });
    receive
}

/// Where every record ended up, since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditStats {
    /// Records handed to the queue, whatever became of them.
    pub enqueued: u64,
    /// Times the queue was full when a record arrived (it then waited or was dropped).
    pub queue_full: u64,
    /// Dropped on a full queue (`--audit-when-full drop`).
    pub dropped: u64,
    /// Taken by the sink: the file, or Redis (replays included).
    pub written: u64,
    /// Put in the spool while Redis was unreachable.
    pub spooled: u64,
    /// Sent from the spool to Redis.
    pub replayed: u64,
    /// Neither written nor spooled: the sink and the spool both failed.
    pub lost: u64,
    /// Lines of the audit file and its segments that are not audit records, found at start or
    /// when a segment was packed; each is logged with its file and line.
    pub unreadable_lines: u64,
    /// Files in the segments directory that are not Baton's, or segments whose index is missing
    /// or unreadable; each is logged.
    pub foreign_files: u64,
    /// Times the audit file was rotated into a segment.
    pub segments_rotated: u64,
    /// Segments deleted past the retention, oldest first.
    pub segments_deleted: u64,
}

/// Where records go, where queries read them back, and the file trail when that is the one.
type SinkAndTrail = (
    Box<dyn AuditSink>,
    Box<dyn AuditTrail>,
    Option<FileTrail>,
    Option<RedisTrail>,
);

/// The sink `settings` choose and its trail; `None` when the trail is off.
fn open(
    settings: &AuditSettings,
    fleet: Option<Arc<Fleet>>,
    counters: &Arc<Counters>,
) -> Result<Option<SinkAndTrail>, AuditError> {
    let opened = |path: &PathBuf| {
        let path = path.clone();
        move |source| AuditError::Open { path, source }
    };
    let redis = |fleet: Arc<Fleet>| {
        RedisTrail::new(
            fleet,
            settings.retention,
            settings.stream_maxlen,
            settings.redis_timeout,
        )
    };
    match (settings.mode, fleet) {
        (AuditMode::Off, _) => Ok(None),
        (AuditMode::Redis, None) => Err(AuditError::NoRedis),
        (AuditMode::Auto | AuditMode::Redis, Some(fleet)) => {
            let spool = Spool::open(&settings.spool).map_err(opened(&settings.spool))?;
            if !spool.is_empty() {
                tracing::info!(records = spool.pending(), spool = %settings.spool.display(), "audit records from an earlier run wait for Redis");
            }
            let sink = RedisSink::new(redis(Arc::clone(&fleet)), spool, settings.max_batch);
            let trail = redis(fleet);
            Ok(Some((
                Box::new(sink),
                Box::new(trail.clone()),
                None,
                Some(trail),
            )))
        }
        (AuditMode::Auto | AuditMode::File, _) => {
            let (sink, trail) =
                file_trail::open(&settings.file, settings.rotation, Arc::clone(counters))
                    .map_err(opened(&settings.file))?;
            Ok(Some((
                Box::new(sink),
                Box::new(trail.clone()),
                Some(trail),
                None,
            )))
        }
    }
}

/// The handle the decision path holds: cheap to call, never waits on a sink.
pub struct Audit {
    queue: Option<mpsc::Sender<Message>>,
    when_full: WhenFull,
    counters: Arc<Counters>,
    /// Where queries read; `None` when the trail is off.
    trail: Option<Box<dyn AuditTrail>>,
    /// The file trail, when records go to the file.
    file: Option<FileTrail>,
    /// The Redis trail, when records go to Redis.
    redis: Option<RedisTrail>,
    /// What a decision record keeps of the request's context.
    context: AuditContext,
}

impl Audit {
    /// No trail: records are neither built nor kept.
    pub fn off() -> Self {
        Self {
            queue: None,
            when_full: WhenFull::Block,
            counters: Arc::default(),
            trail: None,
            file: None,
            redis: None,
            context: AuditContext::default(),
        }
    }

    /// Opens the sink `settings` choose and starts the writer. Must be called within a Tokio
    /// runtime.
    pub fn start(settings: &AuditSettings, fleet: Option<Arc<Fleet>>) -> Result<Self, AuditError> {
        let counters = Arc::new(Counters::default());
        let Some((sink, trail, file, redis)) = open(settings, fleet, &counters)? else {
            return Ok(Self::off());
        };
        let (queue, drained) = mpsc::channel(settings.capacity.max(1));
        let writer = Writer::new(sink, Arc::clone(&counters), settings.max_batch);
        tokio::spawn(writer.run(drained));
        Ok(Self {
            queue: Some(queue),
            when_full: settings.when_full,
            counters,
            trail: Some(trail),
            file,
            redis,
            context: settings.context,
        })
    }

    /// What a decision record keeps of the request's context.
    pub fn context(&self) -> AuditContext {
        self.context
    }

    /// Whether records are kept at all.
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `record` for the sink. Waits only for room in the queue, and only with
    /// [`WhenFull::Block`]. A shared record is queued as it is, not copied.
    pub async fn record(&self, record: impl Into<Arc<AuditRecord>>) {
        let Some(queue) = &self.queue else {
            return;
        };
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        let message = Message::Record(record.into());
        let message = match queue.try_send(message) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(message)) => {
                self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                message
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.writer_gone();
                return;
            }
        };
        match self.when_full {
            WhenFull::Block => {
                if queue.send(message).await.is_err() {
                    self.writer_gone();
                }
            }
            WhenFull::Drop => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn writer_gone(&self) {
        self.counters.lost.fetch_add(1, Ordering::Relaxed);
        tracing::error!("the audit writer has stopped; a record is lost");
    }

    /// Returns once every record queued before the call reached its sink (or the spool) and the
    /// file is synced: on shutdown, and in tests.
    pub async fn flush(&self) {
        self.answered(Message::Flush).await;
    }

    /// Returns once every record queued before the call reached its sink (or the spool),
    /// without waiting for a sync.
    pub async fn written(&self) {
        self.answered(Message::Written).await;
    }

    /// Writes and syncs every record queued before the call, then stops the writer; returns
    /// once the sync is done. The last step of a clean shutdown: a sync left to the writer
    /// after the server returned raced the runtime's shutdown, which cancelled it (4 of 14
    /// shutdowns). Records arriving later are counted lost.
    pub async fn close(&self) {
        self.answered(Message::Close).await;
    }

    /// Sends the writer `message` and returns once the writer answers it (at once without one).
    async fn answered(&self, message: impl FnOnce(oneshot::Sender<()>) -> Message) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (done, answered) = oneshot::channel();
        if queue.send(message(done)).await.is_ok() {
            let _ = answered.await;
        }
    }

    /// Returns once every segment rotated so far is packed and indexed (at once without a file
    /// trail): for tests and benchmarks, since packing runs in the background.
    pub async fn packed(&self) {
        if let Some(file) = &self.file {
            file.packed().await;
        }
    }

    /// Records queued for the writer now.
    pub fn queue_depth(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| {
            u64::try_from(q.max_capacity() - q.capacity()).unwrap_or(u64::MAX)
        })
    }

    /// Where every record ended up so far, for metrics and the shutdown log.
    pub fn stats(&self) -> AuditStats {
        let c = &self.counters;
        let get = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        AuditStats {
            enqueued: get(&c.enqueued),
            queue_full: get(&c.queue_full),
            dropped: get(&c.dropped),
            written: get(&c.written),
            spooled: get(&c.spooled),
            replayed: get(&c.replayed),
            lost: get(&c.lost),
            unreadable_lines: get(&c.unreadable),
            foreign_files: get(&c.foreign),
            segments_rotated: get(&c.rotated),
            segments_deleted: get(&c.deleted),
        }
    }

    /// Every record from `from` (inclusive) until `until` (exclusive), oldest first, in
    /// batches on a channel: read from the file trail on a blocking thread, or from the Redis
    /// stream. The last item is an error if the trail could not be read to the end.
    pub fn records_in(
        &self,
        from: Option<SystemTime>,
        until: Option<SystemTime>,
    ) -> Result<Records, AuditError> {
        if let Some(file) = &self.file {
            let file = file.clone();
            let (send, receive) = mpsc::channel(SCAN_BATCHES);
            tokio::task::spawn_blocking(move || {
                let query = AuditQuery {
                    from,
                    until,
                    ..AuditQuery::new(Selector::All)
                };
                let mut batch = Vec::with_capacity(SCAN_BATCH);
                let read = file.select(&query, &mut |record| {
                    batch.push(record);
                    if batch.len() < SCAN_BATCH {
                        return true;
                    }
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(SCAN_BATCH));
                    // A receiver gone has stopped wanting records.
                    send.blocking_send(Ok(full)).is_ok()
                });
                let last = match read {
                    Ok(()) => Ok(batch),
                    Err(e) => Err(AuditError::Unavailable(e)),
                };
                let _ = send.blocking_send(last);
            });
            return Ok(receive);
        }
        match &self.redis {
            Some(redis) => Ok(stream_records(redis.clone(), from, until)),
            None => Err(AuditError::Off),
        }
    }

    /// Answers `query` from Redis when the trail is there, else from the file.
    pub async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError> {
        // The writer lingers before it writes (see `writer::LINGER`): a query sees every answer
        // given before it.
        self.written().await;
        match &self.trail {
            None => Err(AuditError::Off),
            Some(trail) => trail.query(query).await,
        }
    }
}
