//! Replay: the recorded decisions of the audit trail decided again against a candidate bundle,
//! under the same settings, by the same pure [`decide`] the pipeline calls, and what would
//! change reported by the policies responsible.
//!
//! The engine takes records one at a time ([`Replay::offer`]), so every trail feeds it alike:
//! the file trail and its segments, the Redis stream, a page of an admin call. Only records kept
//! with `--audit-context full` carry the request's context and the rest of the decision's input;
//! others are counted as skipped, never guessed at. Decisions a revocation or the approval gate
//! made are skipped too: they depend on state then, not on the policies.
//!
//! - `diff`: what changed between a recorded answer and the candidate's.
//! - `report`: the counts and groups, as text and JSON.
//! - `trail`: a replay fed from a trail's channel of record batches.

mod diff;
mod report;
mod trail;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use self::diff::{Change, ChangeKind, diff};
use self::report::Groups;
pub use self::report::{
    DETAILS_PER_GROUP, EXAMPLES_PER_GROUP, Example, Group, Phase, ReplayReport, Skipped,
};
pub use self::trail::{finish, phase, replay_records};
use crate::audit::{AuditEvent, AuditRecord, DecisionRecord, KeptContext};
use crate::bundle::PolicyBundle;
use crate::decision::lifecycle::LIFECYCLE_SOURCE;
use crate::decision::{DecisionSettings, DenialCode, InvalidRequest, Outcome, decide};

/// The records a replay reads: those from `from` (inclusive) until `until` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Inclusive; `None` from the first record.
    pub from: Option<SystemTime>,
    /// Exclusive; `None` to the last record.
    pub until: Option<SystemTime>,
}

/// A window that holds no time at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the window is empty: `from` ({from}) is not before `to` ({to})")]
pub struct EmptyWindow {
    from: String,
    to: String,
}

impl Window {
    /// `[from, until)`, refused when it holds no time.
    pub fn new(from: Option<SystemTime>, until: Option<SystemTime>) -> Result<Self, EmptyWindow> {
        if let (Some(f), Some(u)) = (from, until)
            && f >= u
        {
            return Err(EmptyWindow {
                from: rfc3339(f),
                to: rfc3339(u),
            });
        }
        Ok(Self { from, until })
    }

    /// The last `span` before `now`.
    pub fn since(span: Duration, now: SystemTime) -> Self {
        Self {
            from: Some(now.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH)),
            until: None,
        }
    }

    /// The window in Unix milliseconds, `[min, max]` inclusive.
    pub fn range_ms(&self) -> (u64, u64) {
        crate::audit::query::range_ms(self.from, self.until)
    }

    /// Whether `record` falls in the window.
    pub fn contains(&self, record: &AuditRecord) -> bool {
        let (min, max) = self.range_ms();
        (min..=max).contains(&record.time_ms())
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Outcomes a replay keeps, by question, before it starts over.
const REMEMBERED: usize = 65_536;

/// A replay in progress: offer it records, then take its report.
pub struct Replay {
    bundle: Arc<PolicyBundle>,
    settings: DecisionSettings,
    window: Window,
    report: ReplayReport,
    groups: Groups,
    deciding: Duration,
    /// The candidate's answers by question digest. [`decide`] is pure, so a question asked
    /// again gets the answer it got the first time: real traffic repeats itself (the reason
    /// the server caches), and a replay of a day is mostly repeats.
    decided: HashMap<[u8; 32], Result<Outcome, InvalidRequest>>,
}

impl Replay {
    /// A replay of the records in `window` against `bundle`, under `settings`.
    pub fn new(bundle: Arc<PolicyBundle>, settings: DecisionSettings, window: Window) -> Self {
        let report = ReplayReport {
            candidate_version: bundle.version().to_owned(),
            from: window.from.map(rfc3339),
            to: window.until.map(rfc3339),
            ..ReplayReport::default()
        };
        Self {
            bundle,
            settings,
            window,
            report,
            groups: Groups::default(),
            deciding: Duration::ZERO,
            decided: HashMap::new(),
        }
    }

    /// The window it replays.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Decides `record` again if it is a decision in the window, and counts what changed.
    pub fn offer(&mut self, record: &AuditRecord) {
        if !self.window.contains(record) {
            return;
        }
        self.report.records += 1;
        let AuditEvent::Decision(decided) = &record.event else {
            return;
        };
        self.report.decisions += 1;
        if decided.source == "revocation" {
            self.report.skipped.revoked += 1;
            return;
        }
        if decided.source == LIFECYCLE_SOURCE {
            self.report.skipped.lifecycle += 1;
            return;
        }
        if decided.denial.as_ref().is_some_and(|d| by_the_gate(d.code)) {
            self.report.skipped.approval_gate += 1;
            return;
        }
        let Some(KeptContext::Full(input)) = &decided.context else {
            self.report.skipped.without_full_context += 1;
            return;
        };
        let request = input.request(decided);
        let started = Instant::now();
        let digest = request.digest();
        let outcome = match self.decided.get(&digest) {
            Some(known) => known.clone(),
            None => {
                let outcome = decide(&self.bundle, &request, &self.settings);
                if self.decided.len() >= REMEMBERED {
                    self.decided.clear();
                }
                self.decided.insert(digest, outcome.clone());
                outcome
            }
        };
        self.deciding += started.elapsed();
        self.report.replayed += 1;
        let changes = diff(
            decided,
            input.policy_ttl_secs,
            &outcome,
            &self.settings.approval_obligation,
        );
        if changes.is_empty() {
            self.report.unchanged += 1;
            return;
        }
        self.report.changed += 1;
        let old = responsible(&decided.determining_policies, &decided.refused);
        let new = outcome.as_ref().map_or_else(
            |_| Vec::new(),
            |o| responsible(&o.determining_policies, &o.refused),
        );
        for change in changes {
            self.groups
                .count(change, &old, &new, || example(record, decided));
        }
    }

    /// Time spent in the decision core so far.
    pub fn deciding(&self) -> Duration {
        self.deciding
    }

    /// The report, with the groups sorted.
    pub fn finish(self) -> ReplayReport {
        ReplayReport {
            groups: self.groups.into_sorted(),
            ..self.report
        }
    }
}

/// Replays every record of `records` against `bundle` under `settings`.
pub fn replay(
    bundle: Arc<PolicyBundle>,
    settings: DecisionSettings,
    window: Window,
    records: impl IntoIterator<Item = AuditRecord>,
) -> ReplayReport {
    let mut replay = Replay::new(bundle, settings, window);
    for record in records {
        replay.offer(&record);
    }
    replay.finish()
}

/// Denials the approval gate gives to an allow, by the state of an approval.
fn by_the_gate(code: DenialCode) -> bool {
    matches!(
        code,
        DenialCode::ApprovalRejected
            | DenialCode::ApprovalExpired
            | DenialCode::ApprovalUsed
            | DenialCode::ApprovalMismatch
            | DenialCode::ApprovalUnavailable
    )
}

/// The policies behind an answer: the determining ones and those that refused a scope.
fn responsible(determining: &[String], refused: &[crate::decision::RefusedScope]) -> Vec<String> {
    let mut all: Vec<String> = determining
        .iter()
        .chain(refused.iter().flat_map(|r| r.policy_ids.iter()))
        .cloned()
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn example(record: &AuditRecord, decided: &DecisionRecord) -> Example {
    Example {
        transaction_id: decided.transaction_id.clone(),
        decision_id: record.id.clone(),
    }
}
