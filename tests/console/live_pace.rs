//! The live page is shown a person's pace of rows, not the server's: a burst of decisions
//! gives at most a second's budget of rows, and the rest are reported as missed, so every
//! decision is either shown or counted.

use std::time::Duration;

use http_body_util::BodyExt as _;

use crate::app::{ConsoleApp, refund};
use crate::http::Http;

/// Decisions asked at once: far more than one second's rows.
const BURST: usize = 300;
/// The console's rows per second (`console::pace::ROWS_PER_SECOND`).
const ROWS_PER_SECOND: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_shown_at_a_readable_pace_and_the_rest_counted() {
    let app = ConsoleApp::start().await;
    let http = Http::new();
    let (cookie, _) = http.log_in(&app).await;
    let (status, mut body) = http.open(&app.url("/decisions/stream"), &cookie).await;
    assert_eq!(status, 200);

    // The watch is taken before the answer's head is sent: every decision from here is fed.
    let started = tokio::time::Instant::now();
    let asks: Vec<_> = (0..BURST)
        .map(|_| {
            let mut client = app.decisions.clone();
            tokio::spawn(async move { client.authorize(refund(100, "")).await.unwrap() })
        })
        .collect();
    for ask in asks {
        ask.await.unwrap();
    }
    let asked_in = started.elapsed();

    let (mut shown, mut missed, mut text) = (0usize, 0usize, String::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while shown + missed < BURST {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("{shown} shown and {missed} missed of {BURST}"))
            .expect("the stream stays open")
            .unwrap();
        let Ok(data) = frame.into_data() else {
            continue;
        };
        text.push_str(std::str::from_utf8(&data).unwrap());
        // Whole events only; a partial one waits for its next frame.
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if event.contains("event: decision") {
                shown += 1;
            } else if event.contains("event: missed") {
                let n = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                missed += n.trim().parse::<usize>().unwrap();
            }
        }
    }
    assert_eq!(shown + missed, BURST, "every decision shown or counted");
    // Each second the burst lasted (and the one it began in) has a budget of its own.
    let windows = usize::try_from(asked_in.as_secs()).unwrap() + 2;
    assert!(
        shown <= ROWS_PER_SECOND * windows,
        "{shown} rows shown for a burst of {asked_in:?}"
    );
}
