//! `baton audit <txn>`: a client that prints the delegation tree of one transaction, hop by
//! hop, from a running Baton's audit trail, read through its admin port; `--kind` narrows it
//! to one kind of record, and without a transaction lists that kind's records across the trail.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::admin_client::{AdminConnection, authorized, channel, describe_status};
use crate::pb::{self, audit_service_client::AuditServiceClient};

/// The arguments of `baton audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// The transaction whose tree to print; without it, `--kind` is needed and every record
    /// of that kind is listed.
    #[arg(required_unless_present = "kind")]
    pub transaction_id: Option<String>,
    /// Only records of this kind: `decision`, `revoked`, `revocation_lifted`,
    /// `approval_granted`, `approval_rejected` or `shadow_disagreement`.
    #[arg(long)]
    pub kind: Option<String>,
    /// Where the admin API is, and the token to present.
    #[command(flatten)]
    pub admin: AdminConnection,
}

/// Prints every record asked for, reading page after page behind a spinner on a terminal.
pub async fn run(args: AuditArgs) -> anyhow::Result<String> {
    let mut client = AuditServiceClient::new(channel(&args.admin).await?);
    let mut records = Vec::new();
    let mut page_token = String::new();
    let started = std::time::Instant::now();
    let spinner = super::progress::spinner("reading the audit trail");
    loop {
        let query = pb::QueryAuditRequest {
            transaction_id: args.transaction_id.clone().unwrap_or_default(),
            kind: args.kind.clone().unwrap_or_default(),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        let page = client
            .query_audit(authorized(&args.admin, query)?)
            .await
            .map_err(|status| {
                spinner.finish_and_clear();
                describe_status(status)
            })?
            .into_inner();
        records.extend(page.records);
        spinner.set_message(format!(
            "reading the audit trail: {} record(s)",
            records.len()
        ));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    spinner.finish_and_clear();
    let heading = match (&args.transaction_id, &args.kind) {
        (Some(txn), _) => format!("transaction {txn}"),
        (None, kind) => format!("{} records", kind.as_deref().unwrap_or("all")),
    };
    let mut out = render(&heading, &records);
    let _ = write!(
        out,
        "\n{} record(s), read in {}",
        records.len(),
        super::progress::human(started.elapsed())
    );
    Ok(out)
}

/// The tree under `heading`: each hop indented by its depth in the chain, oldest first, with
/// what it was granted and refused, the policies that decided and when.
pub fn render(heading: &str, records: &[pb::AuditRecord]) -> String {
    let mut out = heading.to_owned();
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
            Some(pb::audit_record::Event::ShadowDisagreement(s)) => {
                let _ = write!(
                    out,
                    "\n└─ SHADOW DISAGREES  revision {} on decision {} at {time}",
                    s.shadow_revision, s.decision_id
                );
                let name = |e: &Option<pb::EntityRef>| {
                    e.as_ref()
                        .map(|e| format!("{} {}", e.r#type, e.id))
                        .unwrap_or_default()
                };
                let _ = write!(
                    out,
                    "\n     hop       {} → {} for {}",
                    name(&s.caller),
                    name(&s.callee),
                    name(&s.principal)
                );
                for change in &s.changes {
                    let _ = write!(out, "\n     would     {change}");
                }
                let _ = write!(out, "\n     policies  {}", list(&s.policies));
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
