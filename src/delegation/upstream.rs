//! Applying a verified upstream credential to a hop (the chained-hops rules of the delegation
//! contract): the principal, the chain, the ceiling and the transaction come from the token
//! alone, and the caller must be the identity the token was issued to.

use super::DelegationError;
use crate::decision::DecisionRequest;
use crate::token::Upstream;

/// Rewrites `request` from `upstream`. `principal_given` says whether the wire request named a
/// principal at all; a named one must match the token's.
pub fn apply(
    request: &mut DecisionRequest,
    upstream: Upstream,
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
    let Some((holder, earlier)) = upstream.actors.split_last() else {
        return Err(DelegationError::NotTheHolder {
            caller: request.caller.to_string(),
            holder: "nobody".to_owned(),
        });
    };
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
    // A token whose only actor is its subject was held by the principal itself.
    request.delegation_chain = if *holder == upstream.principal {
        Vec::new()
    } else {
        earlier.to_vec()
    };
    request.principal = upstream.principal;
    request.ceiling = Some(upstream.ceiling.into_iter().collect());
    request.transaction_id = Some(upstream.txn);
    Ok(())
}
