//! The delegation chain of a hop: principal → … → caller → callee.

use std::collections::HashSet;

use crate::identity::Identity;

/// Every identity a hop passes through, the principal first and the callee last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationChain {
    members: Vec<Identity>,
}

impl DelegationChain {
    /// The caller is listed after the earlier hops unless it is the principal acting for itself,
    /// which the principal's own entry already records.
    pub fn new(
        principal: &Identity,
        earlier_hops: &[Identity],
        caller: &Identity,
        callee: &Identity,
    ) -> Self {
        let mut members = Vec::with_capacity(earlier_hops.len() + 3);
        members.push(principal.clone());
        members.extend(earlier_hops.iter().cloned());
        if !(earlier_hops.is_empty() && caller == principal) {
            members.push(caller.clone());
        }
        members.push(callee.clone());
        Self { members }
    }

    pub fn members(&self) -> &[Identity] {
        &self.members
    }

    pub fn into_members(self) -> Vec<Identity> {
        self.members
    }

    /// Hops from the principal to the callee: 1 for a direct call.
    pub fn depth(&self) -> usize {
        self.members.len().saturating_sub(1)
    }

    /// The first identity that appears twice, if any.
    pub fn first_repeat(&self) -> Option<&Identity> {
        let mut seen = HashSet::with_capacity(self.members.len());
        self.members.iter().find(|m| !seen.insert(*m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind::{Agent, Service, User};

    #[test]
    fn a_service_acting_for_itself_appears_once() {
        let monitoring = Identity::new(Service, "monitoring");
        let chain = DelegationChain::new(
            &monitoring,
            &[],
            &monitoring,
            &Identity::new(Agent, "diagnostics"),
        );
        assert_eq!(chain.depth(), 1);
        assert_eq!(chain.first_repeat(), None);
    }

    #[test]
    fn earlier_hops_sit_between_principal_and_caller() {
        let chain = DelegationChain::new(
            &Identity::new(User, "alice"),
            &[Identity::new(Agent, "assistant")],
            &Identity::new(Agent, "analyst"),
            &Identity::new(Agent, "database"),
        );
        let ids: Vec<&str> = chain.members().iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["alice", "assistant", "analyst", "database"]);
        assert_eq!(chain.depth(), 3);
    }

    #[test]
    fn repeats_are_found() {
        let a = Identity::new(Agent, "a");
        let chain = DelegationChain::new(
            &Identity::new(User, "u"),
            std::slice::from_ref(&a),
            &Identity::new(Agent, "b"),
            &a,
        );
        assert_eq!(chain.first_repeat(), Some(&a));
    }
}
