//! The one task that drains the audit queue: it takes whatever is queued, up to a batch, and
//! hands it to the sink in one write, so under load the batches grow on their own and when
//! idle a record is written at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::jsonl::JsonlFile;
use super::record::AuditRecord;
use super::spool::{Spool, blocking};
use super::stream::{Encoded, RedisTrail};

/// How often a spool with records waiting tries Redis again once the fleet reports it up.
const REPLAY_INTERVAL: Duration = Duration::from_millis(250);

pub enum Message {
    Record(Box<AuditRecord>),
    /// Answered once everything queued before it reached the sink (or the spool), synced.
    Flush(oneshot::Sender<()>),
}

/// Every record is counted where it ends: written, spooled then replayed, dropped on a full
/// queue, or lost to a failing sink.
#[derive(Debug, Default)]
pub struct Counters {
    pub enqueued: AtomicU64,
    pub queue_full: AtomicU64,
    pub dropped: AtomicU64,
    pub written: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub lost: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub enum Sink {
    File(JsonlFile),
    Redis { trail: RedisTrail, spool: Spool },
}

pub struct Writer {
    pub sink: Sink,
    pub counters: Arc<Counters>,
    pub max_batch: usize,
    next_replay: Instant,
}

impl Writer {
    pub fn new(sink: Sink, counters: Arc<Counters>, max_batch: usize) -> Self {
        Self {
            sink,
            counters,
            max_batch: max_batch.max(1),
            next_replay: Instant::now(),
        }
    }

    /// Runs until every sender is gone and the queue is empty.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut flushes = Vec::new();
        loop {
            let first = if self.backlog() {
                tokio::select! {
                    message = queue.recv() => message,
                    () = tokio::time::sleep(REPLAY_INTERVAL) => {
                        self.replay().await;
                        continue;
                    }
                }
            } else {
                queue.recv().await
            };
            let Some(first) = first else {
                break;
            };
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Record(record) => batch.push(*record),
                    Message::Flush(done) => flushes.push(done),
                }
                next = if batch.len() < self.max_batch {
                    queue.try_recv().ok()
                } else {
                    None
                };
            }
            self.write(&mut batch).await;
            if !flushes.is_empty() {
                self.sync().await;
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
        self.sync().await;
    }

    fn backlog(&self) -> bool {
        matches!(&self.sink, Sink::Redis { spool, .. } if !spool.is_empty())
    }

    async fn write(&mut self, batch: &mut Vec<AuditRecord>) {
        if batch.is_empty() {
            return;
        }
        let encoded: Vec<Encoded> = batch
            .drain(..)
            .filter_map(|record| match serde_json::to_string(&record) {
                Ok(json) => Some((record, json)),
                Err(e) => {
                    tracing::error!(error = %e, id = %record.id, "cannot encode an audit record; it is lost");
                    Counters::add(&self.counters.lost, 1);
                    None
                }
            })
            .collect();
        let n = encoded.len();
        if matches!(self.sink, Sink::Redis { .. }) {
            // Spooled records go first, so the trail keeps its order.
            if self.backlog() {
                self.replay().await;
            }
        }
        let counters = Arc::clone(&self.counters);
        match &mut self.sink {
            Sink::File(file) => {
                let file = file.clone();
                let lines: Vec<String> = encoded.into_iter().map(|(_, json)| json).collect();
                match blocking(move || file.append(&lines)).await {
                    Ok(()) => Counters::add(&counters.written, n),
                    Err(e) => {
                        tracing::error!(error = %e, records = n, "cannot append to the audit file; records lost");
                        Counters::add(&counters.lost, n);
                    }
                }
            }
            Sink::Redis { trail, spool } => {
                // While Redis is down, records go straight to the spool rather than each batch
                // waiting out a timeout.
                if spool.is_empty() && trail.fleet().is_up() && trail.write(&encoded).await {
                    Counters::add(&counters.written, n);
                    return;
                }
                match spool.push(&encoded).await {
                    Ok(()) => Counters::add(&counters.spooled, n),
                    Err(e) => {
                        tracing::error!(error = %e, records = n, "Redis is unreachable and the audit spool cannot be written; records lost");
                        Counters::add(&counters.lost, n);
                    }
                }
            }
        }
    }

    /// Sends spooled records to Redis if it is back, at most once per [`REPLAY_INTERVAL`]
    /// while it keeps failing.
    async fn replay(&mut self) {
        let Sink::Redis { trail, spool } = &mut self.sink else {
            return;
        };
        if spool.is_empty() || !trail.fleet().is_up() || Instant::now() < self.next_replay {
            return;
        }
        let waiting = spool.pending();
        match spool.replay(trail, self.max_batch).await {
            Ok(done) => {
                Counters::add(&self.counters.replayed, done.sent);
                Counters::add(&self.counters.written, done.sent);
                Counters::add(&self.counters.lost, done.unreadable);
                if spool.is_empty() {
                    tracing::info!(records = waiting, "replayed the audit spool to Redis");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot replay the audit spool"),
        }
        if !spool.is_empty() {
            self.next_replay = Instant::now() + REPLAY_INTERVAL;
        }
    }

    async fn sync(&self) {
        let result = match &self.sink {
            Sink::File(file) => {
                let file = file.clone();
                blocking(move || file.sync()).await
            }
            // The spool syncs on every append, and Redis has taken the rest.
            Sink::Redis { .. } => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot sync the audit file");
        }
    }
}
