//! A policy index: Cedar evaluates every policy in a set, so a decision over thousands of
//! agent-pair allowlist policies would cost milliseconds. The index keeps, per policy, what its
//! scope constrains (principal `==`/`in`/`is`, action, resource) and returns only the policies
//! whose scope can match a request, resolving `in` through the entity hierarchy. Policies whose
//! scope leaves a dimension unconstrained are candidates for every value of it.

// foldhash rather than SipHash: these maps are looked up on every evaluated question. Only a
// bundle and its entities insert keys; an asker's values are only looked up, so an asker
// cannot fill a bucket (foldhash resists collisions only from those who cannot see hashes).
use foldhash::{HashMap, HashSet};

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, Policy, PrincipalConstraint,
    ResourceConstraint,
};

/// What a policy's scope requires of the principal or the resource.
#[derive(Debug, Clone)]
enum EntityScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

impl From<PrincipalConstraint> for EntityScope {
    fn from(c: PrincipalConstraint) -> Self {
        match c {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Eq(u) => Self::Eq(u),
            PrincipalConstraint::In(u) => Self::In(u),
            PrincipalConstraint::Is(t) => Self::Is(t),
            PrincipalConstraint::IsIn(t, u) => Self::IsIn(t, u),
        }
    }
}

impl From<ResourceConstraint> for EntityScope {
    fn from(c: ResourceConstraint) -> Self {
        match c {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Eq(u) => Self::Eq(u),
            ResourceConstraint::In(u) => Self::In(u),
            ResourceConstraint::Is(t) => Self::Is(t),
            ResourceConstraint::IsIn(t, u) => Self::IsIn(t, u),
        }
    }
}

impl EntityScope {
    fn matches(&self, subject: &Subject<'_>) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(u) => subject.uid == u,
            Self::In(u) => subject.is_in(u),
            Self::Is(t) => subject.uid.type_name() == t,
            Self::IsIn(t, u) => subject.uid.type_name() == t && subject.is_in(u),
        }
    }
}

/// An entity of a request with its ancestors, as the index needs it.
pub struct Subject<'a> {
    uid: &'a EntityUid,
    ancestors: HashSet<&'a EntityUid>,
}

impl<'a> Subject<'a> {
    pub fn new(uid: &'a EntityUid, entities: &'a Entities) -> Self {
        let ancestors = entities
            .ancestors(uid)
            .map(Iterator::collect)
            .unwrap_or_default();
        Self { uid, ancestors }
    }

    /// The entity's groups, directly or not.
    pub fn ancestors(&self) -> impl Iterator<Item = &'a EntityUid> + '_ {
        self.ancestors.iter().copied()
    }

    fn is_in(&self, u: &EntityUid) -> bool {
        self.uid == u || self.ancestors.contains(u)
    }

    fn keys(&self) -> impl Iterator<Item = &'a EntityUid> + '_ {
        std::iter::once(self.uid).chain(self.ancestors.iter().copied())
    }
}

/// One action of an evaluation, with its action-group ancestors.
pub struct Action<'a> {
    uid: &'a EntityUid,
    groups: Vec<&'a EntityUid>,
}

impl<'a> Action<'a> {
    pub fn new(uid: &'a EntityUid, entities: &'a Entities) -> Self {
        let groups = entities
            .ancestors(uid)
            .map(Iterator::collect)
            .unwrap_or_default();
        Self { uid, groups }
    }

    /// Whether a policy with this action constraint can apply to the action: `in` is
    /// reflexive and follows the action groups, as in Cedar.
    fn admits(&self, constraint: &ActionConstraint) -> bool {
        match constraint {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => a == self.uid,
            ActionConstraint::In(groups) => groups
                .iter()
                .any(|g| g == self.uid || self.groups.contains(&g)),
        }
    }
}

/// Posting lists for one dimension (principal or resource). Each policy sits in exactly one list,
/// so the lists a request selects are disjoint and need no deduplication.
#[derive(Debug, Default)]
struct Postings {
    eq: HashMap<EntityUid, Vec<u32>>,
    within: HashMap<EntityUid, Vec<u32>>,
    by_type: HashMap<EntityTypeName, Vec<u32>>,
    any: Vec<u32>,
}

impl Postings {
    fn insert(&mut self, scope: &EntityScope, idx: u32) {
        let list = match scope {
            EntityScope::Any => &mut self.any,
            EntityScope::Eq(u) => self.eq.entry(u.clone()).or_default(),
            // `is T in G` is kept under `G`: usually the more selective key.
            EntityScope::In(u) | EntityScope::IsIn(_, u) => {
                self.within.entry(u.clone()).or_default()
            }
            EntityScope::Is(t) => self.by_type.entry(t.clone()).or_default(),
        };
        list.push(idx);
    }

    fn lists<'s>(&'s self, subject: &'s Subject<'_>) -> impl Iterator<Item = &'s [u32]> + 's {
        let eq = self.eq.get(subject.uid).map(Vec::as_slice);
        let typed = self.by_type.get(subject.uid.type_name()).map(Vec::as_slice);
        let within = subject
            .keys()
            .filter_map(|k| self.within.get(k).map(Vec::as_slice));
        [Some(self.any.as_slice()), eq, typed]
            .into_iter()
            .flatten()
            .chain(within)
    }

    fn count(&self, subject: &Subject<'_>) -> usize {
        self.lists(subject).map(<[u32]>::len).sum()
    }
}

/// The candidate-policy index of one bundle. Immutable once built.
#[derive(Debug)]
pub struct PolicyIndex {
    principals: Vec<EntityScope>,
    actions: Vec<ActionConstraint>,
    resources: Vec<EntityScope>,
    by_principal: Postings,
    by_resource: Postings,
}

impl PolicyIndex {
    /// Indexes `policies`; a policy's position in the slice is its index number.
    pub fn build<'p>(policies: impl IntoIterator<Item = &'p Policy>) -> Self {
        let mut index = Self {
            principals: Vec::new(),
            actions: Vec::new(),
            resources: Vec::new(),
            by_principal: Postings::default(),
            by_resource: Postings::default(),
        };
        for (i, policy) in policies.into_iter().enumerate() {
            let Ok(idx) = u32::try_from(i) else { break };
            let principal = EntityScope::from(policy.principal_constraint());
            let resource = EntityScope::from(policy.resource_constraint());
            index.by_principal.insert(&principal, idx);
            index.by_resource.insert(&resource, idx);
            index.principals.push(principal);
            index.resources.push(resource);
            index.actions.push(policy.action_constraint());
        }
        index
    }

    /// For each of `actions`, the policies whose scope matches `principal`, that action, and
    /// `resource`, in index order. Walks the shorter of the principal and resource postings
    /// once and checks the rest. A list per action, not one for the batch: Cedar evaluates
    /// every policy of the set it is given, so a policy of another action in the set is an
    /// evaluation that can only come out "not applicable".
    pub fn candidates(
        &self,
        principal: &Subject<'_>,
        actions: &[Action<'_>],
        resource: &Subject<'_>,
    ) -> Vec<Vec<u32>> {
        let walk_principals =
            self.by_principal.count(principal) <= self.by_resource.count(resource);
        let lists: Vec<&[u32]> = if walk_principals {
            self.by_principal.lists(principal).collect()
        } else {
            self.by_resource.lists(resource).collect()
        };
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); actions.len()];
        for &idx in lists.into_iter().flatten() {
            let i = idx as usize;
            if !(self.principals[i].matches(principal) && self.resources[i].matches(resource)) {
                continue;
            }
            for (action, list) in actions.iter().zip(out.iter_mut()) {
                if action.admits(&self.actions[i]) {
                    list.push(idx);
                }
            }
        }
        for list in &mut out {
            list.sort_unstable();
        }
        out
    }
}
