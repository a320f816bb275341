//! Questions to the audit trail, answered a page at a time in the order things happened.

use std::time::SystemTime;

use super::AuditError;
use super::record::{AuditRecord, unix_ms};

/// Where queries read: the JSON Lines file, or the Redis indexes.
#[async_trait::async_trait]
pub trait AuditTrail: Send + Sync {
    /// The page of records `query` selects, in the order things happened.
    async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError>;
}

/// Records per page when the asker names no size, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page an asker may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Which records a query selects, besides its time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Every record in the time range.
    All,
    /// The record whose id is this: one decision.
    DecisionId(String),
    /// The whole delegation tree of one task, across hops.
    Transaction(String),
    /// A principal as `Type:id`.
    Principal(String),
    /// An agent id, as caller, callee or anywhere in a chain.
    Agent(String),
}

/// A question to the audit trail: which records, in which time range, which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Which records, besides the time range.
    pub selector: Selector,
    /// Inclusive.
    pub from: Option<SystemTime>,
    /// Exclusive.
    pub until: Option<SystemTime>,
    /// Records per page, at most [`MAX_PAGE_SIZE`].
    pub page_size: usize,
    /// Matching records to skip: what the previous page's token carries.
    pub offset: usize,
    /// Only records of this kind (`decision`, `shadow_disagreement`, …). The Redis trail
    /// pages by what the selector's index finds, so there a page may be short.
    pub kind: Option<String>,
}

/// One page, and the offset of the next if there may be more.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditPage {
    /// The page's records, oldest first.
    pub records: Vec<AuditRecord>,
    /// The offset of the next page; `None` when this one is the last.
    pub next_offset: Option<usize>,
}

impl AuditQuery {
    /// Every record `selector` selects, at any time, from the first page of default size.
    pub fn new(selector: Selector) -> Self {
        Self {
            selector,
            from: None,
            until: None,
            page_size: DEFAULT_PAGE_SIZE,
            offset: 0,
            kind: None,
        }
    }

    /// Whether `record` is of the kind asked for, if one is.
    pub fn kind_matches(&self, record: &AuditRecord) -> bool {
        self.kind
            .as_deref()
            .is_none_or(|kind| kind == record.event.kind())
    }

    /// The time range in Unix milliseconds, `[min, max]` inclusive.
    pub fn range_ms(&self) -> (u64, u64) {
        range_ms(self.from, self.until)
    }

    /// Whether `record` is one this query selects.
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let (min, max) = self.range_ms();
        let t = record.time_ms();
        if t < min || t > max || !self.kind_matches(record) {
            return false;
        }
        match &self.selector {
            Selector::All => true,
            Selector::DecisionId(id) => &record.id == id,
            Selector::Transaction(txn) => record.transaction_id() == Some(txn.as_str()),
            Selector::Principal(p) => record.principal().as_deref() == Some(p.as_str()),
            Selector::Agent(a) => record.agents().contains(&a.as_str()),
        }
    }

    /// The page of `matching` (all matches, in order) this query asks for.
    pub fn page_of(&self, matching: impl Iterator<Item = AuditRecord>) -> AuditPage {
        let mut records: Vec<AuditRecord> = matching
            .skip(self.offset)
            .take(self.page_size + 1)
            .collect();
        let more = records.len() > self.page_size;
        records.truncate(self.page_size);
        AuditPage {
            next_offset: more.then_some(self.offset + self.page_size),
            records,
        }
    }
}

/// `[from, until)` in Unix milliseconds as `[min, max]`, inclusive: the whole trail's time
/// where an end is open.
pub fn range_ms(from: Option<SystemTime>, until: Option<SystemTime>) -> (u64, u64) {
    let min = from.map_or(0, unix_ms);
    let max = until.map_or(u64::MAX, |t| unix_ms(t).saturating_sub(1));
    (min, max)
}
