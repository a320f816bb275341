//! How many decisions a live page is shown per second.
//!
//! A busy replica answers thousands of decisions a second; a person reads a few, and the page
//! keeps 200 rows. Rendering every one of them for the browser cost the server another 6% of each
//! decision's instructions (`benches/console_callgrind.sh`) for rows nobody can read, and that
//! CPU is the decisions' too. So each watcher is shown at most [`ROWS_PER_SECOND`] rows a
//! second; the rest are counted, and the count is reported at the first look a second after
//! the first one skipped, as the feed reports records a slow browser missed.

use std::time::Duration;

use tokio::time::Instant;

/// Rows one live page is shown per second, at most.
pub const ROWS_PER_SECOND: u32 = 50;
const WINDOW: Duration = Duration::from_secs(1);

/// One watcher's budget of rows.
#[derive(Debug)]
pub struct Pace {
    window_start: Instant,
    shown: u32,
    skipped: u64,
    report_at: Option<Instant>,
}

impl Pace {
    /// A budget whose first window starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            shown: 0,
            skipped: 0,
            report_at: None,
        }
    }

    /// Whether a decision arriving at `now` is shown; if not, it is counted as skipped.
    pub fn admit(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.shown = 0;
        }
        if self.shown < ROWS_PER_SECOND {
            self.shown += 1;
            return true;
        }
        self.skipped = self.skipped.saturating_add(1);
        self.report_at.get_or_insert(now + WINDOW);
        false
    }

    /// When the skipped decisions are to be reported; `None` while none are.
    pub fn report_at(&self) -> Option<Instant> {
        self.report_at
    }

    /// The decisions skipped since the last report, which this one is.
    pub fn take_skipped(&mut self) -> u64 {
        self.report_at = None;
        std::mem::take(&mut self.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_shows_at_most_its_budget_and_counts_the_rest() {
        let start = Instant::now();
        let mut pace = Pace::new(start);
        let shown = (0..ROWS_PER_SECOND + 30)
            .filter(|i| pace.admit(start + Duration::from_millis(u64::from(*i))))
            .count();
        assert_eq!(shown, ROWS_PER_SECOND as usize);
        let first_skip = start + Duration::from_millis(u64::from(ROWS_PER_SECOND));
        assert_eq!(pace.report_at(), Some(first_skip + WINDOW));

        // The next second has a budget of its own; the count waits for its report.
        assert!(pace.admit(start + WINDOW));
        assert_eq!(pace.take_skipped(), 30);
        assert_eq!(pace.report_at(), None);
        assert_eq!(pace.take_skipped(), 0);
    }
}
