//! The page every console view is drawn in: navigation, the operator and logout, the notice
//! of the last change; and the small formatting helpers the pages share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// The console's stylesheet, served at `/static/console.css`.
pub const CSS: &str = include_str!("console.css");
/// The live page's enhancement, served at `/static/live.js`.
pub const LIVE_JS: &str = include_str!("live.js");

/// The sections of the navigation, by path and title. An "Access review" page is one more
/// entry here and one more route.
const SECTIONS: &[(&str, &str)] = &[
    ("/decisions", "Live decisions"),
    ("/approvals", "Approvals"),
    ("/agents", "Agents"),
    ("/bundles", "Bundles"),
    ("/review", "Access review"),
];

/// Every page's `head`, the login form's included.
pub fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Baton console" }
            link rel="stylesheet" href="/static/console.css";
        }
    }
}

/// A full page: `title`, the section `current` (a path of [`SECTIONS`]), and `body`.
pub fn frame(
    title: &str,
    current: &str,
    session: &Session,
    notice: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Baton" }
                    nav aria-label="Console sections" {
                        ul {
                            @for (path, name) in SECTIONS {
                                li {
                                    @if *path == current {
                                        a href=(path) aria-current="page" { (name) }
                                    } @else {
                                        a href=(path) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span { "Signed in as " strong #author { (session.author) } }
                        form method="post" action="/logout" {
                            (csrf_field(session))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main {
                    @if let Some(notice) = notice {
                        p.notice role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every form of `session` carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// An HTML response with the headers every console page has.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page saying what went wrong, with `status`.
pub fn problem(status: StatusCode, session: &Session, current: &str, message: &str) -> Response {
    let body = html! {
        h1 { "That did not work" }
        p.error role="alert" { (message) }
        p { a href=(current) { "Back" } }
    };
    respond(status, frame("Error", current, session, None, body))
}

/// A time as people read it, in UTC to the second.
pub fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// A Unix time in seconds, as [`time`] writes it.
pub fn unix_time(secs: u64) -> String {
    time(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The outcome badge: `ALLOW`, `DENY` or `APPROVAL_REQUIRED`.
pub fn outcome(effect: &str) -> Markup {
    html! { span class={"badge " (effect)} { (effect.replace('_', " ")) } }
}

/// What the last change did, by a fixed word, for the page it redirects to: a link cannot
/// make a page say anything but the notices that page knows.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Done {
    #[serde(default)]
    pub done: String,
}
