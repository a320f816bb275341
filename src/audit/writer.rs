//! The one task that drains the audit queue: it takes whatever is queued, up to a batch, and
//! hands it to the sink in one write. Having taken a record it lingers a moment
//! ([`LINGER`]) for more, so one hand-off to the sink's thread carries many records: handing
//! the file each record or two as it came cost the process a thread wake-up and switch every
//! few answers (1.25 `futex` calls per answer under load), more than encoding the records.
//! A flush, a close or a reader's barrier already taken ends the wait at once; one arriving
//! while the writer lingers waits for the rest of it, at most [`LINGER`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::record::AuditRecord;
use super::sink::{AuditSink, CATCH_UP_INTERVAL, Encoded, Outcome};

/// How long the writer waits, once it has a record, for more to write with it: at 20,000
/// answers a second, 40 records a write. A record reaches the sink at most this much later; a
/// reader that must see every record answered so far sends [`Message::Written`] first.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

pub enum Message {
    Record(Arc<AuditRecord>),
    /// Answered once everything queued before it reached the sink (or the spool), not synced:
    /// what a query sends so it reads every record answered before it.
    Written(oneshot::Sender<()>),
    /// Answered once everything queued before it reached the sink (or the spool), synced.
    Flush(oneshot::Sender<()>),
    /// As [`Message::Flush`], and then the writer stops: the last message of a clean
    /// shutdown. Answered only after the sync, so nothing is left for a runtime that is shutting
    /// down to cancel.
    Close(oneshot::Sender<()>),
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
    /// Lines of the file trail that are not audit records, found at start or as written.
    pub unreadable: AtomicU64,
    /// Files in the segments directory that are not Baton's, or segments without a usable index.
    pub foreign: AtomicU64,
    /// Times the live file was rotated into a segment.
    pub rotated: AtomicU64,
    /// Segments deleted past the retention.
    pub deleted: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts what a sink did; a replayed record was written as well.
    fn count(&self, outcome: Outcome) {
        Self::add(&self.written, outcome.written + outcome.replayed);
        Self::add(&self.spooled, outcome.spooled);
        Self::add(&self.replayed, outcome.replayed);
        Self::add(&self.lost, outcome.lost);
    }
}

pub struct Writer {
    sink: Box<dyn AuditSink>,
    counters: Arc<Counters>,
    max_batch: usize,
}

impl Writer {
    pub fn new(sink: Box<dyn AuditSink>, counters: Arc<Counters>, max_batch: usize) -> Self {
        Self {
            sink,
            counters,
            max_batch: max_batch.max(1),
        }
    }

    /// Runs until a [`Message::Close`], or until every sender is gone and the queue is empty.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut flushes = Vec::new();
        let mut closing = false;
        while !closing {
            let first = if self.sink.backlog() {
                tokio::select! {
                    message = queue.recv() => message,
                    () = tokio::time::sleep(CATCH_UP_INTERVAL) => {
                        self.catch_up().await;
                        continue;
                    }
                }
            } else {
                queue.recv().await
            };
            let Some(first) = first else {
                break;
            };
            let mut written = Vec::new();
            let mut next = Some(first);
            let mut lingered = false;
            loop {
                while let Some(message) = next {
                    match message {
                        Message::Record(record) => batch.push(record),
                        Message::Written(done) => written.push(done),
                        Message::Flush(done) => flushes.push(done),
                        Message::Close(done) => {
                            flushes.push(done);
                            closing = true;
                        }
                    }
                    next = if closing || batch.len() >= self.max_batch {
                        None
                    } else {
                        queue.try_recv().ok()
                    };
                }
                let waited_on = closing || !flushes.is_empty() || !written.is_empty();
                if lingered || waited_on || batch.is_empty() || batch.len() >= self.max_batch {
                    break;
                }
                tokio::time::sleep(LINGER).await;
                lingered = true;
                next = queue.try_recv().ok();
            }
            self.write(&mut batch).await;
            for done in written.drain(..) {
                let _ = done.send(());
            }
            if !flushes.is_empty() {
                self.sync().await;
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
        if !closing {
            self.sync().await;
        }
    }

    async fn write(&mut self, batch: &mut Vec<Arc<AuditRecord>>) {
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
        // Older records go first, so the trail keeps its order.
        if self.sink.backlog() {
            self.catch_up().await;
        }
        let outcome = self.sink.append(encoded).await;
        self.counters.count(outcome);
    }

    async fn catch_up(&mut self) {
        let outcome = self.sink.catch_up().await;
        self.counters.count(outcome);
    }

    async fn sync(&mut self) {
        if let Err(e) = self.sink.sync().await {
            tracing::error!(error = %e, "cannot sync the audit trail");
        }
    }
}
