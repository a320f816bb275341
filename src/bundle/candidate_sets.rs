//! The policy sets a bundle evaluates, one per distinct candidate list the index selected.
//!
//! Cedar evaluates a [`PolicySet`], and building one copies every policy into it, source text
//! included: per question that was most of an evaluation's allocations. A bundle's questions
//! repeat the same few lists (the policies of one caller at one callee), so each list's set is
//! built once and shared. The memo is bounded by the policies it holds, lives and dies with its
//! bundle, and never changes an answer: a set is a pure function of the list.

use std::sync::Arc;

use cedar_policy::PolicySet;
use moka::sync::Cache;

/// At most this many policies across the remembered sets (a set weighs its policy count, plus
/// one): bounded memory whatever the bundle's size, and ample for a fleet's working set.
const MAX_POLICIES: u64 = 64 * 1024;

/// The remembered policy sets, by candidate list (indexes into the bundle's policies).
#[derive(Clone)]
pub struct CandidateSets(Cache<Vec<u32>, Arc<PolicySet>>);

impl Default for CandidateSets {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(MAX_POLICIES)
                .weigher(|list: &Vec<u32>, _| {
                    u32::try_from(list.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(1)
                })
                .build(),
        )
    }
}

impl CandidateSets {
    /// The set remembered for `list`, if any.
    pub fn get(&self, list: &[u32]) -> Option<Arc<PolicySet>> {
        self.0.get(list)
    }

    /// Remembers `set` as the set of `list`.
    pub fn insert(&self, list: Vec<u32>, set: Arc<PolicySet>) {
        self.0.insert(list, set);
    }
}

impl std::fmt::Debug for CandidateSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateSets")
            .field("sets", &self.0.entry_count())
            .finish()
    }
}
