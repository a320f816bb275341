//! What a replay found: counts, and the changes grouped by the policies responsible, each with
//! a few examples to look up with `baton audit`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::diff::{Change, ChangeKind};

/// Examples kept per group.
pub const EXAMPLES_PER_GROUP: usize = 3;
/// Distinct details (scopes, TTLs, obligations) kept per group.
pub const DETAILS_PER_GROUP: usize = 5;

/// The report of one replay.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReplayReport {
    /// The content hash of the candidate bundle.
    pub candidate_version: String,
    /// The start of the window replayed (RFC 3339, inclusive); `None` from the first record.
    pub from: Option<String>,
    /// The end of the window (RFC 3339, exclusive); `None` to the last record.
    pub to: Option<String>,
    /// Records of the trail in the window, of every kind.
    pub records: u64,
    /// Decision records among them.
    pub decisions: u64,
    /// Decisions decided again against the candidate.
    pub replayed: u64,
    /// Replayed decisions the candidate answers the same.
    pub unchanged: u64,
    /// Replayed decisions the candidate answers otherwise (each may show several changes).
    pub changed: u64,
    /// Decisions that could not be replayed, by why.
    pub skipped: Skipped,
    /// The changes, by kind and by the policies responsible, most frequent first.
    pub groups: Vec<Group>,
    /// How long each phase took.
    pub phases: Vec<Phase>,
}

/// Decisions a replay could not decide again, by why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Skipped {
    /// Recorded with `--audit-context hash` or `none` (or before the setting existed): the
    /// record lacks the request's context.
    pub without_full_context: u64,
    /// Denied by a revocation before any policy was asked.
    pub revoked: u64,
    /// Denied by the approval gate (an approval rejected, lapsed, used or unknown), which
    /// depends on the approval's state then, not on the policies.
    pub approval_gate: u64,
    /// Denied by the agent lifecycle rule (`--agent-lifecycle enforce`), which depends on the
    /// time then, not on the policies.
    #[serde(default)]
    pub lifecycle: u64,
}

impl Skipped {
    /// Every skipped decision.
    pub fn total(&self) -> u64 {
        self.without_full_context + self.revoked + self.approval_gate + self.lifecycle
    }
}

/// Decisions that changed the same way under the same policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// How they changed.
    pub change: ChangeKind,
    /// The policies behind the recorded answers: determining, and refusing a scope.
    pub old_policies: Vec<String>,
    /// The policies behind the candidate's answers.
    pub new_policies: Vec<String>,
    /// Decisions in the group.
    pub count: u64,
    /// What changed, in words (scopes, `300s → 60s`, `+audit`), the first few distinct.
    pub details: Vec<String>,
    /// A few of the decisions.
    pub examples: Vec<Example>,
}

/// One decision of a group, to look up in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Its transaction (`baton audit <txn>`).
    pub transaction_id: String,
    /// Its decision id.
    pub decision_id: String,
}

/// One phase of a replay and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// `load bundle`, `read trail` or `decide`.
    pub name: String,
    /// Milliseconds.
    pub millis: u64,
}

impl ReplayReport {
    /// Whether any replayed decision would be answered otherwise.
    pub fn has_changes(&self) -> bool {
        self.changed > 0
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let window = match (&self.from, &self.to) {
            (None, None) => "the whole trail".to_owned(),
            (from, to) => format!(
                "{} to {}",
                from.as_deref().unwrap_or("the first record"),
                to.as_deref().unwrap_or("the last record")
            ),
        };
        let _ = writeln!(
            out,
            "replayed {} of {} decisions ({window}) against bundle {}",
            self.replayed, self.decisions, self.candidate_version
        );
        let _ = writeln!(
            out,
            "  unchanged {}, changed {}",
            self.unchanged, self.changed
        );
        let s = &self.skipped;
        if s.without_full_context > 0 {
            let _ = writeln!(
                out,
                "  {} records skipped: recorded without --audit-context full",
                s.without_full_context
            );
        }
        if s.revoked > 0 {
            let _ = writeln!(
                out,
                "  {} records skipped: denied by a revocation, not by policy",
                s.revoked
            );
        }
        if s.approval_gate > 0 {
            let _ = writeln!(
                out,
                "  {} records skipped: denied by the approval gate, not by policy",
                s.approval_gate
            );
        }
        if s.lifecycle > 0 {
            let _ = writeln!(
                out,
                "  {} records skipped: denied by the agent lifecycle rule, not by policy",
                s.lifecycle
            );
        }
        for g in &self.groups {
            let _ = writeln!(out, "\n{} × {}", g.change.as_str(), g.count);
            let _ = writeln!(out, "    was decided by  {}", list(&g.old_policies));
            let _ = writeln!(out, "    now decided by  {}", list(&g.new_policies));
            if !g.details.is_empty() {
                let _ = writeln!(out, "    what            {}", g.details.join("; "));
            }
            for e in &g.examples {
                let _ = writeln!(
                    out,
                    "    e.g.            transaction {} decision {}",
                    e.transaction_id, e.decision_id
                );
            }
        }
        out
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// A group as it is being counted.
#[derive(Default)]
struct Tally {
    count: u64,
    details: BTreeSet<String>,
    examples: Vec<Example>,
}

/// Counts changes into groups as decisions are replayed.
#[derive(Default)]
pub(super) struct Groups {
    by_key: HashMap<(ChangeKind, Vec<String>, Vec<String>), Tally>,
}

impl Groups {
    /// Counts `change` of the decision `decision_id` in `transaction_id`.
    pub(super) fn count(
        &mut self,
        change: Change,
        old_policies: &[String],
        new_policies: &[String],
        example: impl FnOnce() -> Example,
    ) {
        let key = (change.kind, old_policies.to_vec(), new_policies.to_vec());
        let tally = self.by_key.entry(key).or_default();
        tally.count += 1;
        if tally.details.len() < DETAILS_PER_GROUP && !change.detail.is_empty() {
            tally.details.insert(change.detail);
        }
        if tally.examples.len() < EXAMPLES_PER_GROUP {
            tally.examples.push(example());
        }
    }

    /// The groups, most frequent first; among equals, by kind and policies.
    pub(super) fn into_sorted(self) -> Vec<Group> {
        let mut groups: Vec<Group> = self
            .by_key
            .into_iter()
            .map(|((change, old_policies, new_policies), t)| Group {
                change,
                old_policies,
                new_policies,
                count: t.count,
                details: t.details.into_iter().collect(),
                examples: t.examples,
            })
            .collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.change.cmp(&b.change))
                .then_with(|| a.old_policies.cmp(&b.old_policies))
                .then_with(|| a.new_policies.cmp(&b.new_policies))
        });
        groups
    }
}
