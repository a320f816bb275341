//! Applying a verified upstream credential to a hop (the chained-hops rules of the delegation
//! contract): the principal, the chain, the ceiling, the transaction and what is still owed
//! come from the token alone, and the caller must be the identity the token was issued to.

use super::DelegationError;
use crate::decision::DecisionRequest;
use crate::token::Upstream;

/// Rewrites `request` from `upstream`. `principal_given` says whether the wire request named a
/// principal at all; a named one must match the token's.
///
/// Every actor the token names stays in the chain: the holder is the caller, the actors before
/// it are the earlier hops, and a holder that is also the principal is still listed as an
/// actor, so depth and cycle rules see every hop the token carries.
pub fn apply(
    request: &mut DecisionRequest,
    upstream: &Upstream,
    principal_given: bool,
    now: u64,
) -> Result<(), DelegationError> {
    if upstream.exp_max <= now {
        return Err(DelegationError::GrantExpired {
            exp_max: upstream.exp_max,
        });
    }
    if !request.delegation_chain.is_empty() {
        return Err(DelegationError::ChainBesideToken {
            field: "delegation_chain",
        });
    }
    if request.ceiling.is_some() {
        return Err(DelegationError::ChainBesideToken { field: "ceiling" });
    }
    let holder = upstream.holder();
    if *holder != request.caller {
        return Err(DelegationError::NotTheHolder {
            caller: request.caller.to_string(),
            holder: holder.to_string(),
        });
    }
    if principal_given && request.principal != upstream.principal {
        return Err(DelegationError::PrincipalMismatch {
            requested: request.principal.to_string(),
            token: upstream.principal.to_string(),
        });
    }
    if let Some(txn) = &request.transaction_id
        && *txn != upstream.txn
    {
        return Err(DelegationError::TransactionMismatch {
            requested: txn.clone(),
            token: upstream.txn.clone(),
        });
    }
    let earlier = upstream.actors.split_last().map_or(&[][..], |(_, e)| e);
    request.delegation_chain = earlier.to_vec();
    request.caller_is_actor = !upstream.actors.is_empty();
    request.principal = upstream.principal.clone();
    request.ceiling = Some(upstream.ceiling.iter().cloned().collect());
    request.transaction_id = Some(upstream.txn.clone());
    request.upstream_obligations = upstream.obligations.clone();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::decision::DelegationChain;
    use crate::identity::{Identity, IdentityKind};

    fn service(id: &str) -> Identity {
        Identity::new(IdentityKind::Service, id)
    }

    fn agent(id: &str) -> Identity {
        Identity::new(IdentityKind::Agent, id)
    }

    fn upstream(principal: Identity, actors: Vec<Identity>) -> Upstream {
        Upstream {
            principal,
            actors,
            ceiling: BTreeSet::from(["logs.read".to_owned()]),
            exp_max: 2_000,
            txn: "t".into(),
            issuer: "i".into(),
            jti: "j".into(),
            exp: 2_000,
            nbf: None,
            verdicts: vec!["v".into()],
            obligations: vec!["watermark".into()],
            bound_to: None,
        }
    }

    #[test]
    fn a_token_that_comes_back_to_its_principal_keeps_every_hop() {
        let monitoring = service("monitoring");
        let token = upstream(
            monitoring.clone(),
            vec![agent("diagnostics"), monitoring.clone()],
        );
        let mut request = DecisionRequest::new(
            monitoring.clone(),
            agent("log-analysis"),
            monitoring.clone(),
        );
        apply(&mut request, &token, false, 1_000).unwrap();
        let chain = DelegationChain::of(&request);
        assert_eq!(chain.depth(), 3);
        assert_eq!(chain.first_repeat(), Some(&monitoring));
        assert_eq!(request.upstream_obligations, ["watermark"]);
    }

    #[test]
    fn a_subject_holding_its_own_token_calls_for_itself() {
        let monitoring = service("monitoring");
        let token = upstream(monitoring.clone(), Vec::new());
        let mut request =
            DecisionRequest::new(monitoring.clone(), agent("diagnostics"), monitoring.clone());
        apply(&mut request, &token, false, 1_000).unwrap();
        assert_eq!(DelegationChain::of(&request).depth(), 1);
    }

    #[test]
    fn an_ended_grant_is_refused() {
        let monitoring = service("monitoring");
        let token = upstream(monitoring.clone(), Vec::new());
        let mut request =
            DecisionRequest::new(monitoring.clone(), agent("diagnostics"), monitoring.clone());
        assert!(matches!(
            apply(&mut request, &token, false, 2_000),
            Err(DelegationError::GrantExpired { exp_max: 2_000 })
        ));
    }
}
