//! Access review: the standing-access report of `baton govern report` for the active bundle
//! over a window of this server's audit trail, the same [`Review`] rendered as a page.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::ConsoleState;
use super::layout::{frame, problem, respond};
use super::session::Signed;
use crate::audit::AuditError;
use crate::replay::Window;
use crate::standing_access::{
    AgentLine, DEFAULT_MAX_EVALUATIONS, Review, ReviewSettings, StandingAccessReport,
};

/// The longest window the page reviews, in days: the trail's retention bounds it anyway.
const MAX_DAYS: u32 = 3660;
const DAY: Duration = Duration::from_secs(86_400);

/// The window and horizon, in days, from the query string.
#[derive(Debug, Deserialize)]
pub struct Params {
    #[serde(default = "default_days")]
    days: u32,
    #[serde(default = "default_expiring")]
    expiring: u32,
}

fn default_days() -> u32 {
    90
}

fn default_expiring() -> u32 {
    30
}

/// `GET /review`.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(params): Query<Params>,
) -> Response {
    if !(1..=MAX_DAYS).contains(&params.days) || params.expiring > MAX_DAYS {
        return problem(
            StatusCode::BAD_REQUEST,
            &signed.session,
            "/review",
            &format!("`days` must be 1 to {MAX_DAYS} and `expiring` at most {MAX_DAYS}"),
        );
    }
    let now = state.pipeline.clock().now();
    let bundle = state.pipeline.bundle();
    let window = Window::since(DAY.saturating_mul(params.days), now);
    let settings = ReviewSettings {
        window,
        now,
        expiring_within: DAY.saturating_mul(params.expiring),
        max_evaluations: DEFAULT_MAX_EVALUATIONS,
    };
    let (from, until) = (window.from, window.until);
    let mut records = match state.pipeline.audit().records_in(from, until) {
        Ok(records) => records,
        Err(e) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &signed.session,
                "/review",
                &format!("the audit trail cannot be read: {e}"),
            );
        }
    };
    // The review takes each batch as the trail yields it, so a long window is never held in
    // memory; enumerating grants is Cedar evaluations by the thousand: off the async workers.
    let report = tokio::task::spawn_blocking(move || {
        let mut review = Review::new(&bundle, settings);
        while let Some(batch) = records.blocking_recv() {
            for record in &batch? {
                review.offer_record(record);
            }
        }
        Ok::<_, AuditError>(review.finish())
    })
    .await;
    match report {
        Ok(Ok(report)) => respond(
            StatusCode::OK,
            frame(
                "Access review",
                "/review",
                &signed.session,
                None,
                body(&report, &params),
            ),
        ),
        Ok(Err(e)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &signed.session,
            "/review",
            &format!("the audit trail cannot be read: {e}"),
        ),
        Err(e) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            &signed.session,
            "/review",
            &format!("the review failed: {e}"),
        ),
    }
}

fn agent_row(line: &AgentLine) -> maud::Markup {
    html! {
        td { a href={"/agents/" (line.agent)} { code { (line.agent) } } }
        td {
            @match &line.owner {
                Some(owner) if line.owner_missing => { code { (owner) } " (not in the directory)" }
                Some(owner) => { code { (owner) } }
                None => { span.muted { "none" } }
            }
        }
        td { (line.expires.as_deref().unwrap_or("never")) }
    }
}

fn body(report: &StandingAccessReport, params: &Params) -> maud::Markup {
    html! {
        h1 { "Access review" }
        p.lead {
            "Standing access of bundle " code { (report.bundle_version) } " over the last "
            (params.days) " days of this server's audit trail: " (report.decisions)
            " decisions, " (report.agents) " agents. The same report as "
            code { "baton govern report" } "."
        }
        form.inline method="get" action="/review" {
            label for="days" { "Window (days)" }
            input id="days" name="days" type="number" min="1" max=(MAX_DAYS) value=(params.days);
            label for="expiring" { "Expiring within (days)" }
            input id="expiring" name="expiring" type="number" min="0" max=(MAX_DAYS) value=(params.expiring);
            button type="submit" { "Review" }
        }
        h2 #unseen { "Agents never seen (" (report.unseen_agents.len()) ")" }
        @if report.unseen_agents.is_empty() {
            p.muted { "Every agent of the directory took part in a decision of the window." }
        } @else {
            table aria-labelledby="unseen" {
                thead { tr { th scope="col" { "Agent" } th scope="col" { "Owner" } th scope="col" { "Expires" } } }
                tbody { @for line in &report.unseen_agents { tr { (agent_row(line)) } } }
            }
        }
        h2 #unused { "Grants nobody used" }
        @if let Some(why) = &report.grants_not_enumerated {
            p.error { "Not enumerated: " (why) }
        } @else if report.unused_grants.is_empty() {
            p.muted { "Every grant the policies allow was used in the window." }
        } @else {
            p { (report.unused_grants.len()) " of " (report.grants.unwrap_or(0)) " grants the policies allow were not used." }
            table aria-labelledby="unused" {
                thead { tr { th scope="col" { "Caller" } th scope="col" { "Callee" } th scope="col" { "Scope" } } }
                tbody {
                    @for grant in &report.unused_grants {
                        tr { td { code { (grant.caller) } } td { code { (grant.callee) } } td { code { (grant.scope) } } }
                    }
                }
            }
        }
        h2 #expiring { "Expired or expiring within " (params.expiring) " days (" (report.expiring.len()) ")" }
        @if report.expiring.is_empty() {
            p.muted { "No agent expires within the horizon." }
        } @else {
            table aria-labelledby="expiring" {
                thead { tr { th scope="col" { "Agent" } th scope="col" { "Owner" } th scope="col" { "Expires" } th scope="col" { "State" } } }
                tbody {
                    @for e in &report.expiring {
                        tr { (agent_row(&e.agent)) td { @if e.expired { strong { "expired" } } @else { "expiring" } } }
                    }
                }
            }
        }
    }
}
