//! `baton audit <txn>`: a client that prints the delegation tree of one transaction, hop by
//! hop, from a running Baton's audit trail, read through its admin port.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::policy::{AdminConnection, authorized, channel, describe_status};
use crate::pb::{self, audit_service_client::AuditServiceClient};

/// The arguments of `baton audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The transaction whose tree to print.
    pub transaction_id: String,
    /// Where the admin API is, and the token to present.
    #[command(flatten)]
    pub admin: AdminConnection,
}

/// Prints every record of the transaction, reading page after page.
pub async fn run(args: AuditArgs) -> anyhow::Result<String> {
    let mut client = AuditServiceClient::new(channel(&args.admin).await?);
    let mut records = Vec::new();
    let mut page_token = String::new();
    loop {
        let query = pb::QueryAuditRequest {
            transaction_id: args.transaction_id.clone(),
            page_token,
            ..Default::default()
        };
        let page = client
            .query_audit(authorized(&args.admin, query)?)
            .await
            .map_err(describe_status)?
            .into_inner();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    Ok(render(&args.transaction_id, &records))
}

/// The tree: each hop indented by its depth in the chain, oldest first, with what it was
/// granted and refused, the policies that decided and when.
pub fn render(transaction_id: &str, records: &[pb::AuditRecord]) -> String {
    let mut out = format!("transaction {transaction_id}");
    if records.is_empty() {
        out.push_str("\n  (no records)");
    }
    for record in records {
        let time = record.time.as_ref().map(when).unwrap_or_default();
        match &record.event {
            Some(pb::audit_record::Event::Decision(d)) => {
                // The first hop is principal → caller → callee, or a principal calling for itself.
                let depth = d.chain.len().saturating_sub(3);
                let pad = "   ".repeat(depth);
                let verdict = match d.decision() {
                    pb::Decision::Allow => "ALLOW",
                    pb::Decision::ApprovalRequired => "APPROVAL_REQUIRED",
                    pb::Decision::Deny | pb::Decision::Unspecified => "DENY",
                };
                let _ = write!(out, "\n{pad}└─ {verdict}  {}", d.chain_line);
                let _ = write!(out, "\n{pad}     time      {time}");
                let _ = write!(out, "\n{pad}     granted   {}", list(&d.granted_scopes));
                for r in &d.refused_scopes {
                    let reason = r.reason().as_str_name();
                    let reason = reason.strip_prefix("REFUSAL_REASON_").unwrap_or(reason);
                    let _ = write!(out, "\n{pad}     refused   {} ({reason})", r.scope);
                }
                if let Some(denial) = &d.denial {
                    let _ = write!(out, "\n{pad}     denied    {}", denial.detail);
                }
                let _ = write!(
                    out,
                    "\n{pad}     policies  {}",
                    list(&d.determining_policies)
                );
                if !d.obligations.is_empty() {
                    let _ = write!(out, "\n{pad}     obliged   {}", d.obligations.join(", "));
                }
                let _ = write!(out, "\n{pad}     decision  {}", record.id);
            }
            Some(pb::audit_record::Event::Approval(a)) => {
                let _ = write!(
                    out,
                    "\n└─ {}  {} by {} at {time}: {}",
                    record.kind, a.approval_id, a.approver, a.rationale
                );
            }
            Some(pb::audit_record::Event::Revocation(r)) => {
                let _ = write!(
                    out,
                    "\n└─ {}  {} {} by {} at {time}: {}",
                    record.kind, r.target_kind, r.target, r.revoked_by, r.reason
                );
            }
            None => {
                let _ = write!(out, "\n└─ {} at {time}", record.kind);
            }
        }
    }
    out
}

fn when(t: &prost_types::Timestamp) -> String {
    let secs = u64::try_from(t.seconds).unwrap_or(0);
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::new(secs, nanos)).to_string()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}
