//! Approvals in Redis, `{prefix}:approval:{id}`, shared by every replica. The stored JSON is
//! its own version: a compare-and-set replaces it only while it is byte for byte what was read.

use std::sync::Arc;
use std::time::Duration;

use super::{ApprovalError, ApprovalStore, KEPT_PAST_EXPIRY_SECS, Listing, Versioned};
use crate::decision::Approval;
use crate::fleet::Fleet;

/// Replaces the record only if it is still what was read.
const COMPARE_AND_SET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0";

/// Keys a `SCAN` step looks at when listing.
const SCAN_COUNT: usize = 500;

/// Records read by one `MGET` when listing.
const READ_BATCH: usize = 200;

/// The bound on each step of a listing: an admin call, off the request path.
const LIST_LIMIT: Duration = Duration::from_secs(2);

/// Approvals in the fleet's Redis, visible to every replica.
pub struct RedisApprovals {
    fleet: Arc<Fleet>,
}

impl RedisApprovals {
    /// Approvals kept under the fleet's key prefix.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        Self { fleet }
    }

    fn key(&self, id: &str) -> String {
        self.fleet.key(&format!("approval:{id}"))
    }

    /// Where the generation is kept. Not under `approval:`, so no listing takes it for one.
    fn generation_key(&self) -> String {
        self.fleet.key("approvals:generation")
    }

    /// The pattern of every approval's key: the prefix taken literally, whatever it holds.
    fn pattern(&self) -> String {
        let mut pattern = String::new();
        for c in self.fleet.key("approval:").chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}

#[async_trait::async_trait]
impl ApprovalStore for RedisApprovals {
    async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
        let json = serde_json::to_string(approval).map_err(|_| ApprovalError::Unavailable)?;
        let keep = approval
            .expires_at
            .saturating_sub(now)
            .saturating_add(KEPT_PAST_EXPIRY_SECS);
        let cmd = ::redis::cmd("SET")
            .arg(self.key(&approval.id))
            .arg(json)
            .arg("EX")
            .arg(keep)
            // Create only: a late forward from an outbox must not undo an approver's decision.
            .arg("NX")
            .clone();
        self.fleet
            .query::<()>("SET approval", &cmd)
            .await
            .ok_or(ApprovalError::Unavailable)
    }

    async fn read(&self, id: &str) -> Result<Option<Versioned>, ApprovalError> {
        let cmd = ::redis::cmd("GET").arg(self.key(id)).clone();
        let raw: Option<String> = self
            .fleet
            .query("GET approval", &cmd)
            .await
            .ok_or(ApprovalError::Unavailable)?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        // A record this release cannot read is of no use to it: as good as absent.
        Ok(serde_json::from_str(&raw).ok().map(|approval| Versioned {
            approval,
            version: raw,
        }))
    }

    async fn replace(
        &self,
        id: &str,
        version: &str,
        next: &Approval,
    ) -> Result<bool, ApprovalError> {
        let json = serde_json::to_string(next).map_err(|_| ApprovalError::Unavailable)?;
        let cmd = ::redis::cmd("EVAL")
            .arg(COMPARE_AND_SET)
            .arg(1)
            .arg(self.key(id))
            .arg(version)
            .arg(json)
            .clone();
        match self.fleet.query::<i64>("EVAL approval", &cmd).await {
            Some(replaced) => Ok(replaced == 1),
            None => Err(ApprovalError::Unavailable),
        }
    }

    async fn generation(&self) -> Result<Option<String>, ApprovalError> {
        let cmd = ::redis::cmd("GET").arg(self.generation_key()).clone();
        self.fleet
            .query("GET approvals generation", &cmd)
            .await
            .ok_or(ApprovalError::Unavailable)
    }

    async fn mark(&self, generation: &str) -> Result<String, ApprovalError> {
        // Two commands rather than SET NX GET, which needs Redis 7.
        let set = ::redis::cmd("SET")
            .arg(self.generation_key())
            .arg(generation)
            .arg("NX")
            .clone();
        let was_set: Option<String> = self
            .fleet
            .query("SET approvals generation", &set)
            .await
            .ok_or(ApprovalError::Unavailable)?;
        if was_set.is_some() {
            return Ok(generation.to_owned());
        }
        // Another replica marked it first: its generation is the store's.
        self.generation().await?.ok_or(ApprovalError::Unavailable)
    }

    async fn list(&self) -> Result<Listing, ApprovalError> {
        let failed = |e: crate::fleet::CommandError| {
            tracing::warn!(error = %e, "cannot list the approvals in Redis");
            ApprovalError::Unavailable
        };
        let mut keys = self
            .fleet
            .scan("SCAN approvals", &self.pattern(), SCAN_COUNT, LIST_LIMIT)
            .await
            .map_err(failed)?;
        // SCAN may give a key twice (the keyspace rehashed meanwhile).
        keys.sort_unstable();
        keys.dedup();
        let mut approvals = Vec::with_capacity(keys.len());
        for batch in keys.chunks(READ_BATCH) {
            let cmd = ::redis::cmd("MGET").arg(batch).clone();
            let raw: Vec<Option<String>> = self
                .fleet
                .command("MGET approvals", &cmd, LIST_LIMIT)
                .await
                .map_err(failed)?;
            // Gone since the scan (expired), or unreadable by this release: not listed.
            approvals.extend(
                raw.into_iter()
                    .flatten()
                    .filter_map(|json| serde_json::from_str::<Approval>(&json).ok()),
            );
        }
        Ok(Listing::complete(approvals))
    }
}
