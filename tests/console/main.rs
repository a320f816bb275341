//! The web console, driven by a real headless Chromium through chromedriver (WebDriver)
//! against a real Baton: logging in, live decisions, a transaction's graph, the approvals
//! inbox, the kill switch; and, with a plain HTTP client, the refusals without a session or
//! with a forged CSRF token. Every browser test writes screenshots of the pages it saw to
//! `target/console-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod app;
mod browser;
#[allow(dead_code)] // each user takes only part of it
#[path = "../support/eventually.rs"]
mod eventually;
mod flows;
mod http;
mod live_pace;
mod refusals;
#[allow(dead_code)] // each user takes only part of it
#[path = "../support/spawn.rs"]
mod spawn;
