//! Where approvals live: Redis when configured, shared by every replica, so an approval asked
//! for on one replica can be given and used on another; otherwise in process. Every change is
//! a compare-and-set of the whole record, so two replicas can never both use one approval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Approval, ApprovalStatus};
use crate::fleet::Fleet;

/// The obligation that asks for a human, as the shipped refund policy writes it.
pub const DEFAULT_APPROVAL_OBLIGATION: &str = "human_approval";
/// How long a pending approval waits for an approver, and an approved one for its use.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(900);

/// Replaces the record only if it is still what was read.
const COMPARE_AND_SET: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0";

/// Attempts at a compare-and-set before giving up on a contended record.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval with this id (it may have expired)")]
    NotFound,
    #[error("the approval is {0:?}, not pending")]
    NotPending(ApprovalStatus),
    #[error("the approval expired")]
    Expired,
    #[error("the approval store is unreachable")]
    Unavailable,
    #[error("the approval changed concurrently too often; retry")]
    Contended,
}

pub struct Approvals {
    fleet: Option<Arc<Fleet>>,
    local: Mutex<HashMap<String, Approval>>,
    /// The obligation that calls for approval.
    pub obligation: String,
    pub ttl: Duration,
}

impl Approvals {
    pub fn new(fleet: Option<Arc<Fleet>>, obligation: String, ttl: Duration) -> Self {
        Self {
            fleet,
            local: Mutex::new(HashMap::new()),
            obligation,
            ttl,
        }
    }

    /// In process, with the default obligation and lifetime.
    pub fn in_memory() -> Self {
        Self::new(
            None,
            DEFAULT_APPROVAL_OBLIGATION.to_owned(),
            DEFAULT_APPROVAL_TTL,
        )
    }

    pub async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
        let Some(fleet) = &self.fleet else {
            let mut local = self.local.lock().map_err(|_| ApprovalError::Unavailable)?;
            local.retain(|_, a| a.expires_at > now);
            local.insert(approval.id.clone(), approval.clone());
            return Ok(());
        };
        let json = serde_json::to_string(approval).map_err(|_| ApprovalError::Unavailable)?;
        // Kept a while past expiry, so a late use is told "expired" rather than "unknown".
        let keep = approval.expires_at.saturating_sub(now).saturating_add(3600);
        let cmd = redis::cmd("SET")
            .arg(key(fleet, &approval.id))
            .arg(json)
            .arg("EX")
            .arg(keep)
            .clone();
        fleet
            .query::<()>("SET approval", &cmd)
            .await
            .ok_or(ApprovalError::Unavailable)
    }

    pub async fn get(&self, id: &str) -> Result<Approval, ApprovalError> {
        Ok(self.read(id).await?.0)
    }

    /// Applies `change` to the approval atomically and returns the result.
    pub async fn update<E: From<ApprovalError>>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Approval) -> Result<(), E>,
    ) -> Result<Approval, E> {
        let Some(fleet) = &self.fleet else {
            let mut local = self.local.lock().map_err(|_| ApprovalError::Unavailable)?;
            let approval = local.get_mut(id).ok_or(ApprovalError::NotFound)?;
            let mut changed = approval.clone();
            change(&mut changed)?;
            *approval = changed.clone();
            return Ok(changed);
        };
        for _ in 0..ATTEMPTS {
            let (mut approval, raw) = self.read(id).await?;
            change(&mut approval)?;
            let json = serde_json::to_string(&approval).map_err(|_| ApprovalError::Unavailable)?;
            let cmd = redis::cmd("EVAL")
                .arg(COMPARE_AND_SET)
                .arg(1)
                .arg(key(fleet, id))
                .arg(raw)
                .arg(json)
                .clone();
            match fleet.query::<i64>("EVAL approval", &cmd).await {
                Some(1) => return Ok(approval),
                Some(_) => continue,
                None => return Err(ApprovalError::Unavailable.into()),
            }
        }
        Err(ApprovalError::Contended.into())
    }

    /// The record and its stored form, for the compare-and-set.
    async fn read(&self, id: &str) -> Result<(Approval, String), ApprovalError> {
        let Some(fleet) = &self.fleet else {
            let local = self.local.lock().map_err(|_| ApprovalError::Unavailable)?;
            let approval = local.get(id).cloned().ok_or(ApprovalError::NotFound)?;
            return Ok((approval, String::new()));
        };
        let cmd = redis::cmd("GET").arg(key(fleet, id)).clone();
        let raw: Option<String> = fleet
            .query("GET approval", &cmd)
            .await
            .ok_or(ApprovalError::Unavailable)?;
        let raw = raw.ok_or(ApprovalError::NotFound)?;
        let approval = serde_json::from_str(&raw).map_err(|_| ApprovalError::NotFound)?;
        Ok((approval, raw))
    }
}

fn key(fleet: &Fleet, id: &str) -> String {
    fleet.key(&format!("approval:{id}"))
}
