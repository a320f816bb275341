//! What the writer hands batches to, and what it learns back: the file and Redis sinks alike
//! take a batch and say where each record ended, so the writer counts without knowing which
//! sink it feeds.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::record::AuditRecord;

/// A record and its JSON form, serialised once for every sink. The record is shared: the live
/// feed may hold the same one (see [`super::live`]), and nothing downstream changes it.
pub type Encoded = (Arc<AuditRecord>, String);

/// How often a sink with a backlog is given a chance to catch up, whether records arrive or
/// not.
pub const CATCH_UP_INTERVAL: Duration = Duration::from_millis(250);

/// Where the records of one call to a sink ended, counted into [`super::AuditStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Taken by the sink.
    pub written: usize,
    /// Put in a backlog, to be sent later.
    pub spooled: usize,
    /// Sent from the backlog; taken by the sink too.
    pub replayed: usize,
    /// Neither taken nor kept.
    pub lost: usize,
}

/// Where the writer puts records. One writer task owns it, so it needs no locking.
#[async_trait::async_trait]
pub trait AuditSink: Send {
    /// Takes `batch`, in order, behind everything taken before.
    async fn append(&mut self, batch: Vec<Encoded>) -> Outcome;

    /// Makes everything appended so far durable.
    async fn sync(&mut self) -> io::Result<()>;

    /// Whether records wait in a backlog, so [`AuditSink::catch_up`] has work to do.
    fn backlog(&self) -> bool {
        false
    }

    /// Sends part or all of the backlog on, if it is time to try.
    async fn catch_up(&mut self) -> Outcome {
        Outcome::default()
    }
}
