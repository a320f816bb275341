//! Decisions as they are answered, for watchers in this process (the console's live page).
//!
//! The decision path must not pay for a page nobody has open. Tailing the trail would need it
//! on and would read files or Redis on a timer; a broadcast channel is cheap, but its
//! `receiver_count` takes a lock. So the feed counts its watchers in an atomic of its own: an
//! unwatched feed costs each answer one relaxed load, and no record is built for it. Only
//! while a watcher is subscribed does an answer publish its audit record (built anyway when
//! the trail is on, and shared with the trail's queue as one `Arc`, never copied) onto the
//! channel, whose `send` never waits and, since watchers look on their own schedule rather than
//! wait on the channel, wakes no task; a watcher that falls behind loses the oldest records
//! rather than slowing anyone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

use super::AuditRecord;

/// Records a watcher may fall behind by before it loses the oldest: a tenth of a second (how
/// often the console looks) at 40,000 decisions a second.
const BACKLOG: usize = 4096;

/// The broadcast of answered decisions, and how many watch it.
#[derive(Debug)]
pub struct LiveFeed {
    watchers: AtomicUsize,
    sender: broadcast::Sender<Arc<AuditRecord>>,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self {
            watchers: AtomicUsize::new(0),
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl LiveFeed {
    /// Whether anyone watches: the decision path asks before building anything for the feed.
    #[inline]
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Hands `record` to every watcher; never waits. Shared, not copied: the audit queue may
    /// hold the same record.
    pub fn publish(&self, record: Arc<AuditRecord>) {
        // An error only says every watcher left meanwhile.
        let _ = self.sender.send(record);
    }

    /// A subscription to the records published from now on, counted until dropped.
    pub fn watch(self: &Arc<Self>) -> Watch {
        let receiver = self.sender.subscribe();
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch {
            feed: Arc::clone(self),
            receiver,
        }
    }
}

/// One watcher's subscription; dropping it stops the feed's publishing once none is left.
#[derive(Debug)]
pub struct Watch {
    feed: Arc<LiveFeed>,
    receiver: broadcast::Receiver<Arc<AuditRecord>>,
}

/// What a watcher finds queued.
#[derive(Debug)]
pub enum Watched {
    /// A record published since the last one.
    Record(Arc<AuditRecord>),
    /// This many records went by while the watcher was slow.
    Missed(u64),
}

/// The feed is gone: the application is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedClosed;

impl Watch {
    /// The next record already published, or how many were missed; `None` while nothing is
    /// queued. Never waits, and so never leaves a waker behind: publishing wakes nobody, and a
    /// watcher looks on its own schedule (the console every tenth of a second) rather than
    /// once per decision.
    pub fn try_next(&mut self) -> Result<Option<Watched>, FeedClosed> {
        match self.receiver.try_recv() {
            Ok(record) => Ok(Some(Watched::Record(record))),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Ok(Some(Watched::Missed(n))),
            Err(broadcast::error::TryRecvError::Closed) => Err(FeedClosed),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.feed.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_feed_is_watched_exactly_while_a_watch_is_held() {
        let feed = Arc::new(LiveFeed::default());
        assert!(!feed.is_watched());
        let first = feed.watch();
        let second = feed.watch();
        assert!(feed.is_watched());
        drop(first);
        assert!(feed.is_watched());
        drop(second);
        assert!(!feed.is_watched());
    }

    #[test]
    fn a_watch_takes_what_was_published_and_counts_what_it_missed() {
        let feed = Arc::new(LiveFeed::default());
        let mut watch = feed.watch();
        assert!(matches!(watch.try_next(), Ok(None)));
        let revocation = crate::audit::RevocationRecord {
            target_kind: "agent".into(),
            target: "a".into(),
            by: "admin".into(),
            reason: "test".into(),
            expires_at: None,
        };
        let record = Arc::new(AuditRecord::revoked(
            revocation,
            std::time::SystemTime::UNIX_EPOCH,
        ));
        for _ in 0..BACKLOG + 3 {
            feed.publish(Arc::clone(&record));
        }
        assert!(matches!(watch.try_next(), Ok(Some(Watched::Missed(3)))));
        let mut taken = 0;
        while let Ok(Some(Watched::Record(r))) = watch.try_next() {
            assert!(Arc::ptr_eq(&r, &record), "shared, not copied");
            taken += 1;
        }
        assert_eq!(taken, BACKLOG);
    }
}
