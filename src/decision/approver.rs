//! Who decides on an approval, and what each approver answered. Apart from the approval
//! itself so that an answer's [`ApprovalRef`](super::ApprovalRef) can carry the sign-offs.

use serde::{Deserialize, Serialize};

use crate::identity::Identity;

/// Who decides on an approval: an admin, by the name its token or certificate is known by,
/// and the directory identity (a `User` of the bundle) that name stands for, if it has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Approver {
    /// The admin token's or certificate's name.
    pub admin: String,
    /// The `User` the admin is, as `--approver` maps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

impl Approver {
    /// An admin known by `admin` alone, with no directory identity.
    pub fn admin(admin: impl Into<String>) -> Self {
        Self {
            admin: admin.into(),
            identity: None,
        }
    }

    /// The admin `admin`, who is `identity` in the directory.
    pub fn user(admin: impl Into<String>, identity: Identity) -> Self {
        Self {
            admin: admin.into(),
            identity: Some(identity),
        }
    }

    /// How records name the approver: the identity as `User:id`, else the admin's name. Two
    /// approvers with the same name are the same approver.
    pub fn name(&self) -> String {
        match &self.identity {
            Some(who) => format!("{}:{}", who.kind, who.id),
            None => self.admin.clone(),
        }
    }
}

/// One approver's answer to an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signoff {
    /// Who answered.
    #[serde(flatten)]
    pub approver: Approver,
    /// Approved, or rejected.
    pub approved: bool,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// Why, as the approver wrote it.
    pub rationale: String,
}
