//! The Redis sink: batches go to the trail in Redis while it answers, and to the spool while
//! it does not; the spool is replayed in order once Redis is back, and new records go behind
//! it meanwhile, so the trail keeps the order things happened in. A replay round sends at most
//! [`REPLAY_ROUNDS`] batches and hands back to the writer, which serves its queue between
//! rounds: new records keep flowing (into the spool, behind the old ones) rather than wait in
//! the queue for the whole spool, and each round drains more than one batch can add.

use std::io;
use std::time::Instant;

use async_trait::async_trait;

use super::sink::{AuditSink, CATCH_UP_INTERVAL, Encoded, Outcome};
use super::spool::Spool;
use super::stream::RedisTrail;

/// Round trips of one replay round: enough to outpace the one batch the writer can spool
/// between rounds, few enough that the queue is served every few milliseconds.
pub const REPLAY_ROUNDS: usize = 4;

pub struct RedisSink {
    trail: RedisTrail,
    spool: Spool,
    /// Most records in one replayed round trip.
    max_batch: usize,
    /// No replay before then: Redis failed the last one.
    next_replay: Instant,
}

impl RedisSink {
    pub fn new(trail: RedisTrail, spool: Spool, max_batch: usize) -> Self {
        Self {
            trail,
            spool,
            max_batch: max_batch.max(1),
            next_replay: Instant::now(),
        }
    }
}

#[async_trait]
impl AuditSink for RedisSink {
    async fn append(&mut self, batch: Vec<Encoded>) -> Outcome {
        let n = batch.len();
        // While Redis is down, records go straight to the spool rather than each batch waiting
        // out a timeout; while the spool holds records, new ones go behind them.
        if self.spool.is_empty() && self.trail.fleet().is_up() && self.trail.write(&batch).await {
            return Outcome {
                written: n,
                ..Outcome::default()
            };
        }
        match self.spool.push(&batch).await {
            Ok(()) => Outcome {
                spooled: n,
                ..Outcome::default()
            },
            Err(e) => {
                tracing::error!(error = %e, records = n, "Redis is unreachable and the audit spool cannot be written; records lost");
                Outcome {
                    lost: n,
                    ..Outcome::default()
                }
            }
        }
    }

    /// The spool syncs on every append, and Redis has taken the rest.
    async fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn backlog(&self) -> bool {
        !self.spool.is_empty()
    }

    /// Sends spooled records to Redis if it is back, at most once per [`CATCH_UP_INTERVAL`]
    /// while it keeps failing.
    async fn catch_up(&mut self) -> Outcome {
        let mut outcome = Outcome::default();
        if self.spool.is_empty() || !self.trail.fleet().is_up() || Instant::now() < self.next_replay
        {
            return outcome;
        }
        let waiting = self.spool.pending();
        let budget = self.max_batch.saturating_mul(REPLAY_ROUNDS);
        let progressed = match self.spool.replay(&self.trail, self.max_batch, budget).await {
            Ok(done) => {
                outcome.replayed = done.sent;
                outcome.lost = done.unreadable;
                if self.spool.is_empty() {
                    tracing::info!(records = waiting, "replayed the audit spool to Redis");
                }
                done.sent > 0 || done.unreadable > 0
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot replay the audit spool");
                false
            }
        };
        // A round that moved on is followed by the next at once; a failed one waits.
        if !self.spool.is_empty() && !progressed {
            self.next_replay = Instant::now() + CATCH_UP_INTERVAL;
        }
        outcome
    }
}
