//! Live decisions: the latest answers from the audit trail, then every new one as it is
//! answered, pushed by server-sent events from the pipeline's live feed (which the decision
//! path feeds only while a page like this one is open; see [`crate::audit::live`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use maud::{Markup, html};
use serde::Deserialize;
use tokio::time::{Instant, MissedTickBehavior};

use super::ConsoleState;
use super::layout::{self, frame, outcome, respond};
use super::pace::Pace;
use super::session::Signed;
use super::trail;
use crate::audit::{AuditEvent, AuditRecord, DecisionRecord, FeedClosed, Selector, Watch, Watched};

/// Decisions the page opens with.
const RECENT: usize = 50;

/// The filters of the page and its stream; an empty field filters nothing.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    principal: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    transaction: String,
}

impl Filters {
    fn matches(&self, d: &DecisionRecord) -> bool {
        let given = |f: &str| !f.trim().is_empty();
        let agent = self.agent.trim();
        let principal = self.principal.trim();
        (!given(agent)
            || d.chain
                .iter()
                .any(|m| m.kind == crate::identity::IdentityKind::Agent && m.id == agent))
            && (!given(principal)
                || d.principal.id == principal
                || format!("{}:{}", d.principal.kind, d.principal.id) == principal)
            && (!given(&self.outcome) || d.effect.as_str() == self.outcome.trim())
            && (!given(&self.transaction) || d.transaction_id == self.transaction.trim())
    }

    /// The trail's most selective index for these filters; the rest are applied to what it
    /// returns.
    fn selector(&self) -> Selector {
        if !self.transaction.trim().is_empty() {
            Selector::Transaction(self.transaction.trim().to_owned())
        } else if !self.agent.trim().is_empty() {
            Selector::Agent(self.agent.trim().to_owned())
        } else if self.principal.contains(':') {
            Selector::Principal(self.principal.trim().to_owned())
        } else {
            Selector::All
        }
    }

    fn query_string(&self) -> String {
        let pairs = [
            ("agent", &self.agent),
            ("principal", &self.principal),
            ("outcome", &self.outcome),
            ("transaction", &self.transaction),
        ];
        let encoded: Vec<String> = pairs
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
            .collect();
        if encoded.is_empty() {
            String::new()
        } else {
            format!("?{}", encoded.join("&"))
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decision_of(record: &AuditRecord) -> Option<&DecisionRecord> {
    match &record.event {
        AuditEvent::Decision(d) => Some(d),
        _ => None,
    }
}

/// One decision as a table row; the live stream sends the same markup.
pub fn row(record: &AuditRecord, d: &DecisionRecord) -> Markup {
    let hop = format!("{} → {}", d.caller, d.callee);
    html! {
        tr id={"d-" (record.id)} {
            td { time datetime=(humantime::format_rfc3339_seconds(record.time)) { (layout::time(record.time)) } }
            td {
                (outcome(d.effect.as_str()))
                @if let Some(denial) = &d.denial {
                    br;
                    small.muted { (serde_json::to_value(denial.code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                }
            }
            td { (d.principal) }
            td title=(d.chain_line) { (hop) }
            td {
                @if !d.granted.is_empty() { code { (d.granted.join(" ")) } }
                @if !d.refused.is_empty() {
                    @if !d.granted.is_empty() { br; }
                    span.muted { "refused: " }
                    code { (d.refused.iter().map(|r| r.scope.as_str()).collect::<Vec<_>>().join(" ")) }
                }
            }
            td { a href={"/transactions/" (percent_encode(&d.transaction_id))} { code { (short(&d.transaction_id)) } } }
        }
    }
}

/// The first characters of a long id, enough to tell ids apart on a page.
pub fn short(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

fn filters_form(f: &Filters) -> Markup {
    let outcomes = [
        ("", "Any"),
        ("ALLOW", "Allow"),
        ("DENY", "Deny"),
        ("APPROVAL_REQUIRED", "Approval required"),
    ];
    html! {
        form.filters method="get" action="/decisions" aria-label="Filter decisions" {
            label { "Agent" input type="text" name="agent" value=(f.agent) placeholder="refund-agent"; }
            label { "Principal" input type="text" name="principal" value=(f.principal) placeholder="User:bob"; }
            label {
                "Outcome"
                select name="outcome" {
                    @for (value, name) in outcomes {
                        option value=(value) selected[f.outcome.trim() == value] { (name) }
                    }
                }
            }
            label { "Transaction" input type="text" name="transaction" value=(f.transaction); }
            button type="submit" { "Filter" }
            a href="/decisions" { "Clear" }
        }
    }
}

/// `GET /decisions`: the latest decisions, then live ones.
pub async fn page(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let audit = state.pipeline.audit();
    let now = state.pipeline.clock().now();
    let recent = if audit.is_on() {
        trail::latest(
            audit,
            filters.selector(),
            Some("decision"),
            RECENT,
            now,
            |r| decision_of(r).is_some_and(|d| filters.matches(d)),
        )
        .await
        .map_err(|e| e.to_string())
    } else {
        Err("the audit trail is off, so only decisions answered from now on show".to_owned())
    };
    let stream = format!("/decisions/stream{}", filters.query_string());
    let body = html! {
        h1 { "Live decisions" }
        p.lead { "Every answer Baton gives, newest first. New ones appear as they are answered." }
        (filters_form(&filters))
        p #live-status .live-status role="status" aria-live="polite" {
            "Showing the latest from the audit trail; reload to update (live updates need JavaScript)."
        }
        @if let Err(why) = &recent {
            p.error { "Recent decisions unavailable: " (why) }
        }
        table #decisions data-stream=(stream) {
            caption.muted { "Decisions" }
            thead { tr { th scope="col" { "Time" } th scope="col" { "Outcome" } th scope="col" { "Principal" } th scope="col" { "Hop" } th scope="col" { "Scopes" } th scope="col" { "Transaction" } } }
            tbody {
                @match &recent {
                    Ok(records) if !records.is_empty() => {
                        @for record in records {
                            @if let Some(d) = decision_of(record) { (row(record, d)) }
                        }
                    }
                    _ => { tr #no-decisions { td colspan="6" .muted { "No decisions yet." } } }
                }
            }
        }
        script src="/static/live.js" defer {}
    };
    respond(
        StatusCode::OK,
        frame("Live decisions", "/decisions", &signed.session, None, body),
    )
}

/// How often a live page looks for new decisions: often enough to seem immediate, seldom
/// enough that a busy replica's decisions are taken by the hundred, and the decision path
/// wakes nobody (see [`crate::audit::live`]).
const LOOK_EVERY: Duration = Duration::from_millis(100);

/// `GET /decisions/stream`: each new decision the filters match, as an HTML row in a
/// `decision` event, at most [`ROWS_PER_SECOND`](super::pace::ROWS_PER_SECOND) a second;
/// `missed` with how many went by unshown, whether this watcher fell behind or the rows came
/// faster than a page shows them. Ends when the application stops.
pub async fn stream(
    State(state): State<Arc<ConsoleState>>,
    _signed: Signed,
    Query(filters): Query<Filters>,
) -> impl IntoResponse {
    let mut looks = tokio::time::interval(LOOK_EVERY);
    looks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let tail = Tail {
        watch: state.pipeline.live().watch(),
        filters,
        pace: Pace::new(Instant::now()),
        ready: VecDeque::new(),
    };
    let events = stream::unfold(
        (tail, looks, state.stopping.clone()),
        |(mut tail, mut looks, mut stopping)| async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                if let Some(event) = tail.ready.pop_front() {
                    return Some((Ok::<_, Infallible>(event), (tail, looks, stopping)));
                }
                tokio::select! {
                    now = looks.tick() => tail.look(now).ok()?,
                    _ = stopping.changed() => return None,
                }
            }
        },
    );
    sse(events)
}

/// One live page's view of the feed.
struct Tail {
    watch: Watch,
    filters: Filters,
    pace: Pace,
    ready: VecDeque<Event>,
}

impl Tail {
    /// Takes every decision published since the last look: the matching ones the pace admits
    /// become rows, and what went by unshown is reported once due.
    fn look(&mut self, now: Instant) -> Result<(), FeedClosed> {
        let mut missed = 0u64;
        while let Some(watched) = self.watch.try_next()? {
            match watched {
                Watched::Record(record) => {
                    if let Some(d) = decision_of(&record)
                        && self.filters.matches(d)
                        && self.pace.admit(now)
                    {
                        let row = row(&record, d).into_string();
                        self.ready
                            .push_back(Event::default().event("decision").data(row));
                    }
                }
                Watched::Missed(n) => missed = missed.saturating_add(n),
            }
        }
        if self.pace.report_at().is_some_and(|at| at <= now) {
            missed = missed.saturating_add(self.pace.take_skipped());
        }
        if missed > 0 {
            self.ready
                .push_back(Event::default().event("missed").data(missed.to_string()));
        }
        Ok(())
    }
}

fn sse(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> impl IntoResponse {
    // A comment every few seconds also finds a browser that left without a word, so its
    // subscription (and the decision path's publishing) ends soon after.
    Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(5)))
}
