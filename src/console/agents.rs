//! Agents: every agent of the active bundle, who may call it and whom it may call (from the
//! bundle's permits, [`crate::bundle::reach`]), its directory attributes, when the trail last
//! saw it, and the kill switch: revoke or lift, through the same [`Governance`] calls as
//! `Governance/Revoke` and `Governance/LiftRevocation`.
//!
//! [`Governance`]: crate::governance::Governance

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::ConsoleState;
use super::approvals::refused_status;
use super::decisions::percent_encode;
use super::layout::{self, Done, csrf_field, frame, problem, respond, unix_time};
use super::session::{Session, Signed};
use super::trail;
use crate::audit::Selector;
use crate::bundle::reach::{self, AgentReach, Reach};
use crate::revocation::{Revocation, Target};

fn notice(done: &Done) -> Option<&'static str> {
    match done.done.as_str() {
        "revoked" => {
            Some("Revoked. Every hop this agent takes part in is denied from the next request.")
        }
        "lifted" => Some("Revocation lifted."),
        "none" => Some("No revocation of this agent was in force."),
        _ => None,
    }
}

/// When the trail last saw `agent` in a decision, if it did within its retention.
async fn last_seen(state: &ConsoleState, agent: &str) -> Option<SystemTime> {
    let audit = state.pipeline.audit();
    if !audit.is_on() {
        return None;
    }
    let now = state.pipeline.clock().now();
    trail::latest(
        audit,
        Selector::Agent(agent.to_owned()),
        Some("decision"),
        1,
        now,
        |_| true,
    )
    .await
    .ok()?
    .first()
    .map(|r| r.time)
}

fn revocation_of<'a>(revocations: &'a [Revocation], agent: &str) -> Option<&'a Revocation> {
    revocations
        .iter()
        .find(|r| matches!(&r.target, Target::Agent(id) if id == agent))
}

fn status(revocation: Option<&Revocation>) -> Markup {
    html! {
        @match revocation {
            Some(_) => span.badge.revoked { "REVOKED" },
            None => span.badge.active { "ACTIVE" },
        }
    }
}

/// `GET /agents`.
pub async fn list(State(state): State<Arc<ConsoleState>>, signed: Signed) -> Response {
    let bundle = state.pipeline.bundle();
    let agents = reach::agents(&bundle);
    let revocations = state.governance.revocations_in_force();
    let mut seen = Vec::with_capacity(agents.len());
    for agent in &agents {
        seen.push(last_seen(&state, &agent.id).await);
    }
    let body = html! {
        h1 { "Agents" }
        p.lead { "Every agent of the active bundle (" code { (super::decisions::short(bundle.version())) } "), with the permits that reach it." }
        table #agents {
            thead { tr {
                th scope="col" { "Agent" } th scope="col" { "Status" } th scope="col" { "Groups" } th scope="col" { "Attributes" }
                th scope="col" { "Callers" } th scope="col" { "Callees" } th scope="col" { "Last seen" }
            } }
            tbody {
                @for (agent, seen) in agents.iter().zip(&seen) {
                    tr {
                        td { a href={"/agents/" (percent_encode(&agent.id))} { (agent.id) } }
                        td { (status(revocation_of(&revocations, &agent.id))) }
                        td { (agent.groups.join(", ")) }
                        td { @for (k, v) in &agent.attributes { code { (k) "=" (v) } " " } }
                        td { (agent.callers.len()) }
                        td { (agent.callees.len()) }
                        td { @match seen { Some(t) => (layout::time(*t)), None => span.muted { "not in the trail" } } }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        frame("Agents", "/agents", &signed.session, None, body),
    )
}

fn reach_table(caption: &str, other: &str, rows: &[Reach]) -> Markup {
    html! {
        h2 { (caption) }
        @if rows.is_empty() {
            p.muted { "No permit." }
        } @else {
            table {
                thead { tr { th scope="col" { (other) } th scope="col" { "Actions" } th scope="col" { "Policy" } } }
                tbody {
                    @for r in rows {
                        tr {
                            td { code { (r.other) } }
                            td { code { (r.actions) } }
                            td { code { (r.policy) } @if r.conditional { " " span.muted { "(with conditions)" } } }
                        }
                    }
                }
            }
        }
    }
}

fn kill_switch(agent: &AgentReach, revocation: Option<&Revocation>, session: &Session) -> Markup {
    let base = agent_path(&agent.id);
    html! {
        section.panel aria-labelledby="kill-switch" {
            h2 #kill-switch { "Kill switch" }
            @match revocation {
                Some(r) => {
                    p {
                        "Revoked by " strong { (r.revoked_by) } " at " (unix_time(r.revoked_at)) ": " (r.reason)
                        @if let Some(at) = r.expires_at { " (until " (unix_time(at)) ")" }
                    }
                    form.stack #lift method="post" action={(base) "/lift"} {
                        (csrf_field(session))
                        label for="lift-reason" { "Reason for lifting (required)" }
                        input #lift-reason type="text" name="reason" required;
                        div { button type="submit" { "Lift revocation" } }
                    }
                }
                None => {
                    p { "Revoking denies every hop this agent calls, is called in, or appears in, from the next request, at every door." }
                    form.stack #revoke method="post" action={(base) "/revoke"} {
                        (csrf_field(session))
                        label for="revoke-reason" { "Reason (required)" }
                        input #revoke-reason type="text" name="reason" required;
                        label for="revoke-for" { "Lasts for (optional, such as 2h or 7d; empty until lifted)" }
                        input #revoke-for type="text" name="lasts";
                        div { button.danger type="submit" { "Revoke agent" } }
                    }
                }
            }
        }
    }
}

/// `GET /agents/{id}`.
pub async fn page_of(state: &ConsoleState, signed: &Signed, id: &str, done: &Done) -> Response {
    let bundle = state.pipeline.bundle();
    let Some(agent) = reach::agents(&bundle).into_iter().find(|a| a.id == id) else {
        return problem(
            StatusCode::NOT_FOUND,
            &signed.session,
            "/agents",
            &format!("the active bundle has no agent `{id}`"),
        );
    };
    let revocations = state.governance.revocations_in_force();
    let revocation = revocation_of(&revocations, id);
    let seen = last_seen(state, id).await;
    let body = html! {
        h1 { "Agent " (agent.id) " " (status(revocation)) }
        dl.facts {
            dt { "Groups" } dd { @if agent.groups.is_empty() { span.muted { "none" } } (agent.groups.join(", ")) }
            @for (k, v) in &agent.attributes { dt { (k) } dd { code { (v) } } }
            dt { "Last seen" } dd { @match seen { Some(t) => (layout::time(t)), None => span.muted { "not in the trail" } } }
            dt { "Decisions" } dd { a href={"/decisions?agent=" (percent_encode(id))} { "Its decisions, live" } }
        }
        (kill_switch(&agent, revocation, &signed.session))
        (reach_table("Who may call it", "Caller", &agent.callers))
        (reach_table("Whom it may call", "Callee", &agent.callees))
    };
    respond(
        StatusCode::OK,
        frame(
            &format!("Agent {id}"),
            "/agents",
            &signed.session,
            notice(done),
            body,
        ),
    )
}

/// `GET /agents/{id}`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    page_of(&state, &signed, &id, &done).await
}

/// The kill switch's forms.
#[derive(Debug, Deserialize)]
pub struct Change {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    /// How long a revocation lasts (`2h`, `7d`); empty for until lifted.
    #[serde(default)]
    lasts: String,
}

/// The path of the agent's page.
fn agent_path(id: &str) -> String {
    format!("/agents/{}", percent_encode(id))
}

fn back(id: &str, done: &str) -> Response {
    Redirect::to(&format!("{}?done={done}", agent_path(id))).into_response()
}

/// `POST /agents/{id}/revoke`.
pub async fn revoke(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<Change>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form.csrf) {
        return refused;
    }
    let here = agent_path(&id);
    let expires_at = match form.lasts.trim() {
        "" => None,
        text => match humantime::parse_duration(text) {
            Ok(d) if d > Duration::ZERO => Some(
                state
                    .governance
                    .clock()
                    .unix()
                    .saturating_add(d.as_secs().max(1)),
            ),
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    &signed.session,
                    &here,
                    &format!("`lasts` must be a duration such as 2h or 7d, not `{text}`"),
                );
            }
        },
    };
    match state
        .governance
        .revoke(
            &signed.session.author,
            Target::Agent(id.clone()),
            &form.reason,
            expires_at,
        )
        .await
    {
        Ok(_) => back(&id, "revoked"),
        Err(e) => problem(refused_status(&e), &signed.session, &here, &e.to_string()),
    }
}

/// `POST /agents/{id}/lift`.
pub async fn lift(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
    Form(form): Form<Change>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form.csrf) {
        return refused;
    }
    let here = agent_path(&id);
    match state
        .governance
        .lift(
            &signed.session.author,
            &Target::Agent(id.clone()),
            &form.reason,
        )
        .await
    {
        Ok(Some(_)) => back(&id, "lifted"),
        Ok(None) => back(&id, "none"),
        Err(e) => problem(refused_status(&e), &signed.session, &here, &e.to_string()),
    }
}
