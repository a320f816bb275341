//! The approvals inbox: what waits for an approver, the request each is bound to and its
//! chain, and approve or reject with a rationale, through the same [`Governance`] call as
//! `Governance/Approve` and `Governance/Reject`.
//!
//! [`Governance`]: crate::governance::Governance

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleState;
use super::decisions::{percent_encode, short};
use super::layout::{Done, csrf_field, frame, problem, respond, unix_time};
use super::session::{Session, Signed};
use crate::approval::ApprovalQuery;
use crate::decision::{Approval, ApprovalStatus};
use crate::governance::GovernanceError;

/// Decided approvals shown under the pending ones.
const RECENTLY_DECIDED: usize = 20;

fn notice(done: &Done) -> Option<&'static str> {
    match done.done.as_str() {
        "approved" => Some("Approved. The request may now be asked again with its approval id."),
        "rejected" => Some("Rejected. The request will be denied if asked again."),
        "recorded" => {
            Some("Your approval is recorded. The request needs more approvers before it opens.")
        }
        _ => None,
    }
}

fn chain_line(approval: &Approval) -> String {
    approval
        .chain
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}

/// One pending approval: what it is bound to, and the approver's form.
fn pending_card(approval: &Approval, session: &Session) -> Markup {
    let heading = format!("Approval {}", short(&approval.id));
    html! {
        article.panel id={"approval-" (approval.id)} aria-label=(heading) {
            h2 { (heading) }
            dl.facts {
                dt { "Chain" } dd { (chain_line(approval)) }
                dt { "Approvers" } dd {
                    (approval.signoffs.iter().filter(|s| s.approved).count()) " of " (approval.approvals_required) " given, "
                    strong.needed { (approval.approvals_needed()) " more needed" }
                    @if !approval.signoffs.is_empty() {
                        ul {
                            @for s in &approval.signoffs {
                                li { (s.approver.name()) ", " (unix_time(s.at)) ": " (s.rationale) }
                            }
                        }
                    }
                }
                dt { "Scopes" } dd { code { (approval.scopes.join(" ")) } }
                dt { "Obligations" } dd { code { (approval.obligations.join(" ")) } }
                dt { "Transaction" } dd { a href={"/transactions/" (percent_encode(&approval.transaction_id))} { code { (approval.transaction_id) } } }
                dt { "Asked by decision" } dd { code { (approval.decision_id) } }
                dt { "Bound to request" } dd { code title="SHA-256 of the exact request" { (short(&approval.request_hash)) "…" } }
                dt { "Requested" } dd { (unix_time(approval.requested_at)) }
                dt { "Expires" } dd { (unix_time(approval.expires_at)) }
                dt { "Approval id" } dd { code { (approval.id) } }
            }
            form.stack method="post" action={"/approvals/" (percent_encode(&approval.id)) "/decide"} {
                (csrf_field(session))
                label for={"rationale-" (approval.id)} { "Rationale (required, kept in the audit trail)" }
                textarea id={"rationale-" (approval.id)} name="rationale" rows="2" required {}
                div.inline {
                    button type="submit" name="verdict" value="approve" { "Approve" }
                    button.danger type="submit" name="verdict" value="reject" { "Reject" }
                }
            }
        }
    }
}

/// `GET /approvals`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(done): Query<Done>,
) -> Response {
    let pending = state
        .governance
        .approvals(&ApprovalQuery {
            status: Some(ApprovalStatus::Pending),
            ..ApprovalQuery::default()
        })
        .await;
    let decided = state
        .governance
        .approvals(&ApprovalQuery {
            limit: RECENTLY_DECIDED,
            ..ApprovalQuery::default()
        })
        .await;
    let body = html! {
        h1 { "Approvals" }
        p.lead { "Requests that wait for a human. An approval is bound to its exact request and transaction, and used once." }
        @match &pending {
            Err(e) => { p.error { "The approvals cannot be read: " (e) } }
            Ok(page) => {
                @if !page.complete { p.error { "The shared store did not answer: only this replica's approvals are listed." } }
                @if page.approvals.is_empty() {
                    p.muted #inbox-empty { "Nothing waits for an approver." }
                }
                @for listed in &page.approvals { (pending_card(&listed.approval, &signed.session)) }
                @if page.truncated { p.muted { "More wait than are shown." } }
            }
        }
        h2 { "Recently decided" }
        @match &decided {
            Err(_) => { p.muted { "Unavailable." } }
            Ok(page) => {
                table {
                    thead { tr { th scope="col" { "Approval" } th scope="col" { "Status" } th scope="col" { "Chain" } th scope="col" { "Scopes" } th scope="col" { "Decided by" } th scope="col" { "When" } th scope="col" { "Rationale" } } }
                    tbody {
                        @for listed in page.approvals.iter().filter(|l| l.approval.status != ApprovalStatus::Pending) {
                            @let a = &listed.approval;
                            tr {
                                td { code { (short(&a.id)) } }
                                td { (format!("{:?}", a.status).to_lowercase()) }
                                td { (chain_line(a)) }
                                td { code { (a.scopes.join(" ")) } }
                                td { (a.decided_by.as_deref().unwrap_or("")) }
                                td { (a.decided_at.map(unix_time).unwrap_or_default()) }
                                td { (a.rationale.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        frame(
            "Approvals",
            "/approvals",
            &signed.session,
            notice(&done),
            body,
        ),
    )
}

/// The approver's form.
#[derive(Debug, Deserialize)]
pub struct Decide {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rationale: String,
    #[serde(default)]
    verdict: String,
}

/// The status a refused governance action answers with.
pub fn refused_status(e: &GovernanceError) -> StatusCode {
    use crate::approval::ApprovalError;
    match e {
        GovernanceError::Invalid(_) => StatusCode::BAD_REQUEST,
        GovernanceError::Approval(ApprovalError::NotFound) => StatusCode::NOT_FOUND,
        GovernanceError::Approval(ApprovalError::NotPending(_) | ApprovalError::Expired) => {
            StatusCode::CONFLICT
        }
        GovernanceError::Approval(_) | GovernanceError::Revocation(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// `POST /approvals/{id}/decide`.
pub async fn decide(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<Decide>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form.csrf) {
        return refused;
    }
    let approve = match form.verdict.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                &signed.session,
                "/approvals",
                "`verdict` must be approve or reject",
            );
        }
    };
    // The approver is the session's admin with the directory identity `--approver` gives it.
    let approver = state.tokens.approver(&signed.session.author);
    match state
        .governance
        .decide_approval(&approver, &id, approve, &form.rationale)
        .await
    {
        Ok(decided) => Redirect::to(if approve && decided.status == ApprovalStatus::Pending {
            "/approvals?done=recorded"
        } else if approve {
            "/approvals?done=approved"
        } else {
            "/approvals?done=rejected"
        })
        .into_response(),
        Err(e) => problem(
            refused_status(&e),
            &signed.session,
            "/approvals",
            &e.to_string(),
        ),
    }
}
