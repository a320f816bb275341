//! The delegation chain of a hop: principal → … → caller → callee.

use std::collections::HashSet;

use super::request::DecisionRequest;
use crate::identity::Identity;

/// Every identity a hop passes through, the principal first and the callee last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationChain {
    members: Vec<Identity>,
}

impl DelegationChain {
    /// The chain of `request`: see [`DelegationChain::new`].
    pub fn of(request: &DecisionRequest) -> Self {
        Self::new(
            &request.principal,
            &request.delegation_chain,
            &request.caller,
            &request.callee,
            request.caller_is_actor,
        )
    }

    /// The caller is listed after the earlier hops unless it is the principal acting for
    /// itself, which the principal's own entry already records. A caller that is an actor of
    /// a verified credential (`caller_is_actor`) is always listed, even when it is the
    /// principal: the chain a token carries is never shortened.
    pub fn new(
        principal: &Identity,
        earlier_hops: &[Identity],
        caller: &Identity,
        callee: &Identity,
        caller_is_actor: bool,
    ) -> Self {
        let mut members = Vec::with_capacity(earlier_hops.len() + 3);
        members.push(principal.clone());
        members.extend(earlier_hops.iter().cloned());
        if caller_is_actor || !earlier_hops.is_empty() || caller != principal {
            members.push(caller.clone());
        }
        members.push(callee.clone());
        Self { members }
    }

    /// The members, the principal first and the callee last.
    pub fn members(&self) -> &[Identity] {
        &self.members
    }

    /// The members, the principal first and the callee last, without a copy.
    pub fn into_members(self) -> Vec<Identity> {
        self.members
    }

    /// Hops from the principal to the callee: 1 for a direct call.
    pub fn depth(&self) -> usize {
        self.members.len().saturating_sub(1)
    }

    /// Whether the caller acts for someone else, or for itself through other actors: any
    /// chain longer than a direct call.
    pub fn is_delegated(&self) -> bool {
        self.depth() > 1
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
            false,
        );
        assert_eq!(chain.depth(), 1);
        assert!(!chain.is_delegated());
        assert_eq!(chain.first_repeat(), None);
    }

    #[test]
    fn a_principal_holding_a_token_stays_in_the_chain_as_an_actor() {
        let monitoring = Identity::new(Service, "monitoring");
        let diagnostics = Identity::new(Agent, "diagnostics");
        let chain = DelegationChain::new(
            &monitoring,
            std::slice::from_ref(&diagnostics),
            &monitoring,
            &diagnostics,
            true,
        );
        assert_eq!(
            chain.members(),
            [
                monitoring.clone(),
                diagnostics.clone(),
                monitoring.clone(),
                diagnostics.clone()
            ]
        );
        assert_eq!(chain.depth(), 3);
        assert!(chain.is_delegated());
        // Its own token, with no earlier actor: still two hops.
        let own = DelegationChain::new(&monitoring, &[], &monitoring, &diagnostics, true);
        assert_eq!(own.depth(), 2);
    }

    #[test]
    fn earlier_hops_sit_between_principal_and_caller() {
        let chain = DelegationChain::new(
            &Identity::new(User, "alice"),
            &[Identity::new(Agent, "assistant")],
            &Identity::new(Agent, "analyst"),
            &Identity::new(Agent, "database"),
            false,
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
            false,
        );
        assert_eq!(chain.first_repeat(), Some(&a));
    }
}
