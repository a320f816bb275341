//! The `baton.v1.Governance` handlers: revocation and human approval, for authenticated
//! operators and approvers. Mounted behind the admin interceptor, which names the caller.

use tonic::{Request, Response, Status};

use super::admin_auth::{approver, author};
use super::convert::{self, approval_status, unix_timestamp};
use super::status::ApiError;
use crate::approval::{ApprovalQuery, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use crate::decision::{Approval, ApprovalStatus, FieldViolation, InvalidRequest, Signoff};
use crate::governance::Governance;
use crate::identity::{Identity, IdentityKind};
use crate::pb::{self, revocation_target::Target as PbTarget};
use crate::revocation::{Revocation, Target};

/// Answers governance RPCs: converts, and calls [`Governance`] with the authenticated author.
#[derive(Clone)]
pub struct GovernanceApi {
    governance: Governance,
}

impl GovernanceApi {
    /// The gRPC door of `governance`.
    pub fn new(governance: Governance) -> Self {
        Self { governance }
    }
}

fn invalid(field: &str, why: &str) -> Status {
    ApiError::from(InvalidRequest::from(FieldViolation::new(field, why))).into()
}

/// A principal as named on the wire: a known type and a non-empty id, or `field` is named.
fn principal_from_pb(field: &str, who: pb::EntityRef) -> Result<Identity, Status> {
    let kind = IdentityKind::parse(&who.r#type)
        .ok_or_else(|| invalid(&format!("{field}.type"), "must be User, Service or Agent"))?;
    if who.id.trim().is_empty() {
        return Err(invalid(&format!("{field}.id"), "must not be empty"));
    }
    Ok(Identity::new(kind, who.id))
}

fn query_from_pb(msg: pb::ListApprovalsRequest) -> Result<ApprovalQuery, Status> {
    let status = match pb::ApprovalStatus::try_from(msg.status) {
        Ok(pb::ApprovalStatus::Unspecified) => None,
        Ok(pb::ApprovalStatus::Pending) => Some(ApprovalStatus::Pending),
        Ok(pb::ApprovalStatus::Approved) => Some(ApprovalStatus::Approved),
        Ok(pb::ApprovalStatus::Rejected) => Some(ApprovalStatus::Rejected),
        Ok(pb::ApprovalStatus::Used) => Some(ApprovalStatus::Used),
        Err(_) => return Err(invalid("status", "is not an approval status")),
    };
    let principal = msg
        .principal
        .map(|who| principal_from_pb("principal", who))
        .transpose()?;
    let limit = match msg.limit.map(usize::try_from) {
        None => DEFAULT_LIST_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(invalid(
                "limit",
                &format!("must be from 1 to {MAX_LIST_LIMIT}"),
            ));
        }
    };
    Ok(ApprovalQuery {
        status,
        principal,
        limit,
    })
}

fn target_from_pb(target: Option<pb::RevocationTarget>) -> Result<Target, Status> {
    let missing = || {
        invalid(
            "target",
            "must name an agent, a principal, a transaction or a verdict",
        )
    };
    let target = target.and_then(|t| t.target).ok_or_else(missing)?;
    let non_empty = |field: &str, id: String| {
        if id.trim().is_empty() {
            Err(invalid(field, "must not be empty"))
        } else {
            Ok(id)
        }
    };
    Ok(match target {
        PbTarget::Agent(id) => Target::Agent(non_empty("target.agent", id)?),
        PbTarget::Principal(who) => Target::Principal(principal_from_pb("target.principal", who)?),
        PbTarget::TransactionId(id) => Target::Transaction(non_empty("target.transaction_id", id)?),
        PbTarget::VerdictId(id) => Target::Verdict(non_empty("target.verdict_id", id)?),
    })
}

fn target_to_pb(target: &Target) -> pb::RevocationTarget {
    let target = match target {
        Target::Agent(id) => PbTarget::Agent(id.clone()),
        Target::Principal(who) => PbTarget::Principal(convert::entity_ref(who)),
        Target::Transaction(id) => PbTarget::TransactionId(id.clone()),
        Target::Verdict(id) => PbTarget::VerdictId(id.clone()),
    };
    pb::RevocationTarget {
        target: Some(target),
    }
}

fn revocation_to_pb(r: &Revocation) -> pb::Revocation {
    pb::Revocation {
        target: Some(target_to_pb(&r.target)),
        reason: r.reason.clone(),
        revoked_by: r.revoked_by.clone(),
        revoked_at: Some(unix_timestamp(r.revoked_at)),
        expires_at: r.expires_at.map(unix_timestamp),
    }
}

fn signoff_to_pb(s: &Signoff) -> pb::ApprovalSignoff {
    pb::ApprovalSignoff {
        approver: s.approver.name(),
        admin: s.approver.admin.clone(),
        identity: s.approver.identity.as_ref().map(convert::entity_ref),
        approved: s.approved,
        at: Some(unix_timestamp(s.at)),
        rationale: s.rationale.clone(),
    }
}

fn approval_to_pb(a: &Approval) -> pb::Approval {
    pb::Approval {
        approval_id: a.id.clone(),
        status: approval_status(a.status) as i32,
        chain: a.chain.iter().map(convert::entity_ref).collect(),
        scopes: a.scopes.clone(),
        obligations: a.obligations.clone(),
        transaction_id: a.transaction_id.clone(),
        decision_id: a.decision_id.clone(),
        requested_at: Some(unix_timestamp(a.requested_at)),
        expires_at: Some(unix_timestamp(a.expires_at)),
        decided_by: a.decided_by.clone().unwrap_or_default(),
        decided_at: a.decided_at.map(unix_timestamp),
        rationale: a.rationale.clone().unwrap_or_default(),
        used_by_decision: a.used_by_decision.clone().unwrap_or_default(),
        in_outbox: false,
        approvals_required: u32::from(a.approvals_required),
        approvals_needed: u32::from(a.approvals_needed()),
        approvers: a.signoffs.iter().map(signoff_to_pb).collect(),
    }
}

impl GovernanceApi {
    async fn decide_approval(
        &self,
        request: Request<pb::DecideApprovalRequest>,
        approve: bool,
    ) -> Result<Response<pb::Approval>, Status> {
        let approver = approver(&request)?;
        let msg = request.into_inner();
        let decided = self
            .governance
            .decide_approval(&approver, &msg.approval_id, approve, &msg.rationale)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(approval_to_pb(&decided)))
    }
}

#[tonic::async_trait]
impl pb::governance_server::Governance for GovernanceApi {
    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::Revocation>, Status> {
        let by = author(&request)?;
        let msg = request.into_inner();
        let target = target_from_pb(msg.target)?;
        // A time at or before the epoch is in the past; the domain refuses past times.
        let expires_at = msg
            .expires_at
            .map(|t| u64::try_from(t.seconds).unwrap_or(0));
        let revocation = self
            .governance
            .revoke(&by, target, &msg.reason, expires_at)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(revocation_to_pb(&revocation)))
    }

    async fn lift_revocation(
        &self,
        request: Request<pb::LiftRevocationRequest>,
    ) -> Result<Response<pb::LiftRevocationResponse>, Status> {
        let by = author(&request)?;
        let msg = request.into_inner();
        let target = target_from_pb(msg.target)?;
        let lifted = self
            .governance
            .lift(&by, &target, &msg.reason)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::LiftRevocationResponse {
            lifted: lifted.is_some(),
        }))
    }

    async fn list_revocations(
        &self,
        request: Request<pb::ListRevocationsRequest>,
    ) -> Result<Response<pb::ListRevocationsResponse>, Status> {
        author(&request)?;
        let revocations = self.governance.revocations_in_force();
        Ok(Response::new(pb::ListRevocationsResponse {
            revocations: revocations.iter().map(revocation_to_pb).collect(),
        }))
    }

    async fn approve(
        &self,
        request: Request<pb::DecideApprovalRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        self.decide_approval(request, true).await
    }

    async fn reject(
        &self,
        request: Request<pb::DecideApprovalRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        self.decide_approval(request, false).await
    }

    async fn get_approval(
        &self,
        request: Request<pb::GetApprovalRequest>,
    ) -> Result<Response<pb::Approval>, Status> {
        author(&request)?;
        let msg = request.into_inner();
        let approval = self
            .governance
            .approval(&msg.approval_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(approval_to_pb(&approval)))
    }

    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        author(&request)?;
        let query = query_from_pb(request.into_inner())?;
        let page = self
            .governance
            .approvals(&query)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListApprovalsResponse {
            approvals: page
                .approvals
                .iter()
                .map(|listed| pb::Approval {
                    in_outbox: listed.in_outbox,
                    ..approval_to_pb(&listed.approval)
                })
                .collect(),
            truncated: page.truncated,
            incomplete: !page.complete,
        }))
    }
}
