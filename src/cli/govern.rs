//! `baton govern`: revocation and human approval against a running Baton's admin port, and
//! the standing-access review (`report`).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tonic::transport::Channel;

use super::admin_client::{AdminConnection, authorized, channel, describe_status};
use crate::pb::{self, governance_client::GovernanceClient, revocation_target::Target};

/// The arguments of `baton govern`.
#[derive(Debug, clap::Args)]
pub struct GovernArgs {
    /// The governance command to run.
    #[command(subcommand)]
    pub command: GovernCommand,
}

/// Exactly one thing to revoke or lift.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// An agent id: the kill switch.
    #[arg(long)]
    pub agent: Option<String>,
    /// A principal, as `Type:id` (`User:alice`).
    #[arg(long)]
    pub principal: Option<String>,
    /// A transaction: every hop of one task, and every token minted for it.
    #[arg(long)]
    pub transaction: Option<String>,
    /// A verdict, by its decision id.
    #[arg(long)]
    pub verdict: Option<String>,
}

/// The commands of `baton govern`.
#[derive(Debug, clap::Subcommand)]
pub enum GovernCommand {
    /// Revoke on every replica within a second.
    Revoke {
        /// What to revoke.
        #[command(flatten)]
        target: TargetArgs,
        /// Why; kept in the audit trail.
        #[arg(long)]
        reason: String,
        /// Lapse by itself after this long (`30m`, `2h`); without it, until lifted.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        lasting: Option<Duration>,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Lift a revocation.
    Lift {
        /// What to lift the revocation of.
        #[command(flatten)]
        target: TargetArgs,
        /// Why; kept in the audit trail.
        #[arg(long)]
        reason: String,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// The revocations in force.
    Revocations {
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Approve a pending approval.
    Approve {
        /// The approval's id, from the APPROVAL_REQUIRED answer.
        approval_id: String,
        /// Why; kept with the approval and in the audit trail.
        #[arg(long)]
        rationale: String,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Reject a pending approval.
    Reject {
        /// The approval's id, from the APPROVAL_REQUIRED answer.
        approval_id: String,
        /// Why; kept with the approval and in the audit trail.
        #[arg(long)]
        rationale: String,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// List approvals with the requests they were asked for: pending first, then approved,
    /// then the rest, newest first within each.
    Approvals {
        /// Only approvals with this status; pending and approved give only unexpired ones.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only approvals asked on behalf of this principal, as `Type:id` (`User:bob`).
        #[arg(long)]
        principal: Option<String>,
        /// At most this many (1 to 1000; the server gives 100 without it).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// The standing-access review: agents never seen in a window, grants the policies allow
    /// that nobody used, agents nearing expiry.
    Report(Box<super::govern_report::ReportArgs>),
    /// Show an approval and the request it was asked for.
    Approval {
        /// The approval's id, from the APPROVAL_REQUIRED answer.
        approval_id: String,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
}

/// An approval status to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    /// Waiting for an approver, and not expired.
    Pending,
    /// Approved, and not used or expired yet.
    Approved,
    /// Rejected by an approver.
    Rejected,
    /// Used by the request it was given for.
    Used,
}

impl From<StatusArg> for pb::ApprovalStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Pending => Self::Pending,
            StatusArg::Approved => Self::Approved,
            StatusArg::Rejected => Self::Rejected,
            StatusArg::Used => Self::Used,
        }
    }
}

/// Runs the command against the admin API and prints what it changed or found; an error
/// status from the server is an error.
pub async fn run(args: GovernArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        GovernCommand::Revoke {
            target,
            reason,
            lasting,
            admin,
        } => {
            let expires_at = lasting.map(|d| prost_types::Timestamp::from(SystemTime::now() + d));
            let message = pb::RevokeRequest {
                target: Some(target.into_pb()?),
                reason,
                expires_at,
            };
            let r = client(&admin)
                .await?
                .revoke(authorized(&admin, message)?)
                .await?;
            println!("revoked {}", revocation_line(&r.into_inner()));
        }
        GovernCommand::Lift {
            target,
            reason,
            admin,
        } => {
            let message = pb::LiftRevocationRequest {
                target: Some(target.into_pb()?),
                reason,
            };
            let r = client(&admin)
                .await?
                .lift_revocation(authorized(&admin, message)?)
                .await?;
            println!(
                "{}",
                if r.into_inner().lifted {
                    "lifted"
                } else {
                    "was not revoked"
                }
            );
        }
        GovernCommand::Revocations { admin } => {
            let message = pb::ListRevocationsRequest {};
            let r = client(&admin)
                .await?
                .list_revocations(authorized(&admin, message)?)
                .await?;
            for revocation in r.into_inner().revocations {
                println!("{}", revocation_line(&revocation));
            }
        }
        GovernCommand::Approve {
            approval_id,
            rationale,
            admin,
        } => decide(&admin, approval_id, rationale, true).await?,
        GovernCommand::Reject {
            approval_id,
            rationale,
            admin,
        } => decide(&admin, approval_id, rationale, false).await?,
        GovernCommand::Approvals {
            status,
            principal,
            limit,
            json,
            admin,
        } => {
            let message = pb::ListApprovalsRequest {
                status: status.map_or(pb::ApprovalStatus::Unspecified, Into::into) as i32,
                principal: principal.as_deref().map(entity_ref).transpose()?,
                limit,
            };
            let r = client(&admin)
                .await?
                .list_approvals(authorized(&admin, message)?)
                .await
                .map_err(describe_status)?
                .into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&listing_json(&r))?);
            } else {
                print!("{}", listing_text(&r));
            }
        }
        GovernCommand::Report(report) => super::govern_report::run(*report).await?,
        GovernCommand::Approval { approval_id, admin } => {
            let message = pb::GetApprovalRequest { approval_id };
            let r = client(&admin)
                .await?
                .get_approval(authorized(&admin, message)?)
                .await?;
            println!("{}", approval_text(&r.into_inner()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Approves or rejects one approval, and prints it as it now stands.
async fn decide(
    admin: &AdminConnection,
    approval_id: String,
    rationale: String,
    approve: bool,
) -> anyhow::Result<()> {
    let message = pb::DecideApprovalRequest {
        approval_id,
        rationale,
    };
    let mut client = client(admin).await?;
    let request = authorized(admin, message)?;
    let decided = if approve {
        client.approve(request).await?
    } else {
        client.reject(request).await?
    };
    println!("{}", approval_text(&decided.into_inner()));
    Ok(())
}

impl TargetArgs {
    fn into_pb(self) -> anyhow::Result<pb::RevocationTarget> {
        let target = if let Some(id) = self.agent {
            Target::Agent(id)
        } else if let Some(who) = self.principal {
            Target::Principal(entity_ref(&who)?)
        } else if let Some(id) = self.transaction {
            Target::TransactionId(id)
        } else if let Some(id) = self.verdict {
            Target::VerdictId(id)
        } else {
            anyhow::bail!("name what to revoke: --agent, --principal, --transaction or --verdict");
        };
        Ok(pb::RevocationTarget {
            target: Some(target),
        })
    }
}

/// A `--principal` as given: `Type:id`.
fn entity_ref(who: &str) -> anyhow::Result<pb::EntityRef> {
    let (kind, id) = who
        .split_once(':')
        .with_context(|| format!("--principal must be `Type:id`, got `{who}`"))?;
    Ok(pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    })
}

async fn client(admin: &AdminConnection) -> anyhow::Result<GovernanceClient<Channel>> {
    Ok(GovernanceClient::new(channel(admin).await?))
}

fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| SystemTime::try_from(*t).ok()).map_or_else(
        || "-".to_owned(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

fn revocation_line(r: &pb::Revocation) -> String {
    let target = match r.target.as_ref().and_then(|t| t.target.as_ref()) {
        Some(Target::Agent(id)) => format!("agent {id}"),
        Some(Target::Principal(who)) => format!("principal {} {}", who.r#type, who.id),
        Some(Target::TransactionId(id)) => format!("transaction {id}"),
        Some(Target::VerdictId(id)) => format!("verdict {id}"),
        None => "-".to_owned(),
    };
    let until = match &r.expires_at {
        Some(t) => format!(" until {}", time(Some(t))),
        None => String::new(),
    };
    format!(
        "{target}: {} (by {} at {}{until})",
        r.reason,
        r.revoked_by,
        time(r.revoked_at.as_ref())
    )
}

fn status_name(a: &pb::Approval) -> &'static str {
    a.status()
        .as_str_name()
        .trim_start_matches("APPROVAL_STATUS_")
}

fn chain_line(a: &pb::Approval) -> String {
    let chain: Vec<String> = a
        .chain
        .iter()
        .map(|e| format!("{} {}", e.r#type, e.id))
        .collect();
    chain.join(" → ")
}

/// How many approvers an approval has and needs: `approvals 1/2`, or nothing for one
/// that needs a single approver (as every approval did before `@approvers`).
fn approvals_count(a: &pb::Approval) -> String {
    let given = a.approvers.iter().filter(|s| s.approved).count();
    if a.approvals_required <= 1 {
        return String::new();
    }
    format!(
        "  approvals {given}/{}{}",
        a.approvals_required,
        if a.approvals_needed > 0 {
            format!(" ({} more needed)", a.approvals_needed)
        } else {
            String::new()
        }
    )
}

/// One line an approval: status, id, chain, scopes, and when it expires.
fn listing_text(r: &pb::ListApprovalsResponse) -> String {
    let mut out = String::new();
    if r.incomplete {
        out.push_str("the shared store is unreachable: only this replica's outbox is listed\n");
    }
    if r.approvals.is_empty() {
        out.push_str("no approvals\n");
    }
    for a in &r.approvals {
        out.push_str(&format!(
            "{:<8} {}  {}  [{}]  expires {}{}{}\n",
            status_name(a),
            a.approval_id,
            chain_line(a),
            a.scopes.join(", "),
            time(a.expires_at.as_ref()),
            approvals_count(a),
            if a.in_outbox { "  (in outbox)" } else { "" },
        ));
    }
    if r.truncated {
        out.push_str(
            "more approvals match: raise --limit or narrow with --status or --principal\n",
        );
    }
    out
}

fn listing_json(r: &pb::ListApprovalsResponse) -> serde_json::Value {
    use serde_json::json;
    let time = |t: Option<&prost_types::Timestamp>| t.map(|t| time(Some(t)));
    let approvals: Vec<serde_json::Value> = r
        .approvals
        .iter()
        .map(|a| {
            json!({
                "approval_id": a.approval_id,
                "status": status_name(a),
                "chain": a.chain.iter().map(|e| json!({ "type": e.r#type, "id": e.id })).collect::<Vec<_>>(),
                "scopes": a.scopes,
                "obligations": a.obligations,
                "transaction_id": a.transaction_id,
                "decision_id": a.decision_id,
                "requested_at": time(a.requested_at.as_ref()),
                "expires_at": time(a.expires_at.as_ref()),
                "decided_by": (!a.decided_by.is_empty()).then_some(&a.decided_by),
                "decided_at": time(a.decided_at.as_ref()),
                "rationale": (!a.rationale.is_empty()).then_some(&a.rationale),
                "used_by_decision": (!a.used_by_decision.is_empty()).then_some(&a.used_by_decision),
                "in_outbox": a.in_outbox,
                "approvals_required": a.approvals_required,
                "approvals_needed": a.approvals_needed,
                "approvers": a.approvers.iter().map(|s| json!({
                    "approver": s.approver,
                    "admin": s.admin,
                    "approved": s.approved,
                    "at": time(s.at.as_ref()),
                    "rationale": s.rationale,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "approvals": approvals,
        "truncated": r.truncated,
        "incomplete": r.incomplete,
    })
}

fn approval_text(a: &pb::Approval) -> String {
    let mut out = format!(
        "approval {} {}\n  chain        {}\n  scopes       {}\n  transaction  {}\n  expires      {}",
        a.approval_id,
        status_name(a),
        chain_line(a),
        a.scopes.join(", "),
        a.transaction_id,
        time(a.expires_at.as_ref()),
    );
    if a.approvals_required > 1 {
        out.push_str(&format!(
            "\n  approvers    {} required, {} more needed",
            a.approvals_required, a.approvals_needed
        ));
    }
    for s in &a.approvers {
        out.push_str(&format!(
            "\n  {:<12} by {} at {}: {}",
            if s.approved { "approved" } else { "rejected" },
            s.approver,
            time(s.at.as_ref()),
            s.rationale
        ));
    }
    // Records from before approvers were listed name only the one who decided.
    if a.approvers.is_empty() && !a.decided_by.is_empty() {
        out.push_str(&format!(
            "\n  decided      by {} at {}: {}",
            a.decided_by,
            time(a.decided_at.as_ref()),
            a.rationale
        ));
    }
    out
}
