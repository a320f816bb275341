//! Approvals in this process, gone with it: for tests and for embedding Baton as a library.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::{ApprovalError, ApprovalStore, Listing, Versioned, kept};
use crate::decision::Approval;

/// Each record with a version that every replacement bumps.
#[derive(Debug, Default)]
pub struct MemoryApprovals {
    records: Mutex<HashMap<String, (Approval, u64)>>,
}

#[async_trait::async_trait]
impl ApprovalStore for MemoryApprovals {
    async fn create(&self, approval: &Approval, now: u64) -> Result<(), ApprovalError> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        // Kept a while past expiry, as in every store, so a late use hears "expired".
        records.retain(|_, (a, _)| kept(a, now));
        // Create only: a second create of one id (a forward from an outbox) changes nothing.
        records
            .entry(approval.id.clone())
            .or_insert_with(|| (approval.clone(), 0));
        Ok(())
    }

    async fn read(&self, id: &str) -> Result<Option<Versioned>, ApprovalError> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(records.get(id).map(|(approval, version)| Versioned {
            approval: approval.clone(),
            version: version.to_string(),
        }))
    }

    async fn replace(
        &self,
        id: &str,
        version: &str,
        next: &Approval,
    ) -> Result<bool, ApprovalError> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((approval, current)) = records.get_mut(id) else {
            return Err(ApprovalError::NotFound);
        };
        if current.to_string() != version {
            return Ok(false);
        }
        *approval = next.clone();
        *current = current.wrapping_add(1);
        Ok(true)
    }

    async fn list(&self) -> Result<Listing, ApprovalError> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Listing::complete(records.values().map(|(a, _)| a.clone())))
    }
}
