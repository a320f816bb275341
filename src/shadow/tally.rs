//! The counts of one shadow's comparison, and its disagreements grouped by policy, bounded so
//! a bundle of many policies cannot grow them without end.

use std::collections::HashMap;

/// Distinct policies counted by name; disagreements of any further policy are counted under
/// [`OTHER`]. The same bound holds for the metric's `policy` label.
pub const MAX_POLICIES: usize = 100;

/// The name disagreements of policies past [`MAX_POLICIES`] are counted under.
pub const OTHER: &str = "(other)";

/// Example decision ids kept per policy.
pub const EXAMPLES: usize = 3;

/// The disagreements one policy was behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDisagreements {
    /// The policy id, or [`OTHER`].
    pub policy: String,
    /// How many disagreements it was behind.
    pub count: u64,
    /// The first few live decision ids it changed, to look up in the audit trail.
    pub examples: Vec<String>,
}

/// Counts since the shadow was installed.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub compared: u64,
    pub agreed: u64,
    pub disagreed: u64,
    policies: HashMap<String, (u64, Vec<String>)>,
}

impl Tally {
    /// Counts one comparison that agreed.
    pub fn agreed(&mut self) {
        self.compared = self.compared.saturating_add(1);
        self.agreed = self.agreed.saturating_add(1);
    }

    /// Counts one disagreement behind `policies`, with the live decision's id; returns the
    /// names it was counted under (each policy, or [`OTHER`] past the bound).
    pub fn disagreed(&mut self, policies: &[String], decision_id: &str) -> Vec<String> {
        self.compared = self.compared.saturating_add(1);
        self.disagreed = self.disagreed.saturating_add(1);
        let mut names: Vec<String> = policies
            .iter()
            .map(|p| {
                if self.policies.contains_key(p) || self.policies.len() < MAX_POLICIES {
                    p.clone()
                } else {
                    OTHER.to_owned()
                }
            })
            .collect();
        if names.is_empty() {
            names.push(OTHER.to_owned());
        }
        names.dedup();
        for name in &names {
            let (count, examples) = self.policies.entry(name.clone()).or_default();
            *count = count.saturating_add(1);
            if examples.len() < EXAMPLES {
                examples.push(decision_id.to_owned());
            }
        }
        names
    }

    /// Every policy's disagreements, most first, then by name.
    pub fn by_policy(&self) -> Vec<PolicyDisagreements> {
        let mut all: Vec<PolicyDisagreements> = self
            .policies
            .iter()
            .map(|(policy, (count, examples))| PolicyDisagreements {
                policy: policy.clone(),
                count: *count,
                examples: examples.clone(),
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.policy.cmp(&b.policy)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_past_the_bound_are_counted_together_with_a_few_examples_each() {
        let mut tally = Tally::default();
        for i in 0..MAX_POLICIES + 10 {
            tally.disagreed(&[format!("p{i}")], &format!("d{i}"));
        }
        for i in 0..15 {
            tally.disagreed(&["p0".to_owned()], &format!("again{i}"));
        }
        tally.agreed();
        let by = tally.by_policy();
        assert_eq!(by.len(), MAX_POLICIES + 1);
        assert_eq!(by[0].policy, "p0");
        assert_eq!(by[0].count, 16);
        assert_eq!(by[0].examples.len(), EXAMPLES);
        assert_eq!(by[1].count, 10);
        assert_eq!(by[1].policy, OTHER);
        assert_eq!(
            (tally.compared, tally.agreed, tally.disagreed),
            (126, 1, 125)
        );
    }
}
