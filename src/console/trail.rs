//! What the console reads back from the audit trail: the latest records a selector matches.
//! The trail answers oldest first, a page at a time; the latest are found by reading a short
//! recent window first and widening it only when it holds too few, so a busy trail is read
//! for the last minute, not the last week.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::audit::query::MAX_PAGE_SIZE;
use crate::audit::{Audit, AuditError, AuditQuery, AuditRecord, Selector};

/// The windows tried, shortest first; the last is the default retention.
const WINDOWS: [Duration; 4] = [
    Duration::from_secs(60),
    Duration::from_secs(3600),
    Duration::from_secs(24 * 3600),
    Duration::from_secs(7 * 24 * 3600),
];

/// The most records one look reads, whatever the window: a console page never scans a whole
/// busy trail.
const MAX_READ: usize = 20_000;

/// Up to `n` of the latest records of `kind` that `selector` selects and `keep` accepts,
/// newest first, as of `now`.
pub async fn latest(
    audit: &Audit,
    selector: Selector,
    kind: Option<&str>,
    n: usize,
    now: SystemTime,
    keep: impl Fn(&AuditRecord) -> bool,
) -> Result<Vec<AuditRecord>, AuditError> {
    let mut found = VecDeque::with_capacity(n);
    for window in WINDOWS {
        found.clear();
        let mut query = AuditQuery {
            from: now.checked_sub(window),
            page_size: MAX_PAGE_SIZE,
            kind: kind.map(str::to_owned),
            ..AuditQuery::new(selector.clone())
        };
        let mut read = 0;
        loop {
            let page = audit.query(query.clone()).await?;
            read += page.records.len();
            for record in page.records.into_iter().filter(|r| keep(r)) {
                if found.len() == n {
                    found.pop_front();
                }
                found.push_back(record);
            }
            match page.next_offset {
                Some(offset) if read < MAX_READ => query.offset = offset,
                _ => break,
            }
        }
        if found.len() == n {
            break;
        }
    }
    Ok(found.into_iter().rev().collect())
}

/// Every record of `transaction`, oldest first, up to [`MAX_READ`].
pub async fn transaction(audit: &Audit, transaction: &str) -> Result<Vec<AuditRecord>, AuditError> {
    let mut query = AuditQuery {
        page_size: MAX_PAGE_SIZE,
        ..AuditQuery::new(Selector::Transaction(transaction.to_owned()))
    };
    let mut records = Vec::new();
    loop {
        let page = audit.query(query.clone()).await?;
        records.extend(page.records);
        match page.next_offset {
            Some(offset) if records.len() < MAX_READ => query.offset = offset,
            _ => return Ok(records),
        }
    }
}
