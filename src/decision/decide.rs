//! The decision: connection allowlist, chain rules, then scope by scope narrowing.

use std::collections::{BTreeSet, HashSet};

use cedar_policy::{EntityUid, PolicyId};

use super::chain::DelegationChain;
use super::outcome::{Denial, DenialCode, Effect, Outcome, RefusalReason, RefusedScope};
use super::request::{DecisionRequest, FieldViolation, InvalidRequest, check_roles};
use crate::bundle::{ContextInput, Evaluation, INVOKE_ACTION, PolicyBundle, id_text};

/// Server-wide rules every decision follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionSettings {
    /// Longest chain, in hops from the principal to the callee.
    pub max_depth: usize,
    /// Whether an identity may appear twice in one chain.
    pub allow_cycles: bool,
    /// Cap on every session.
    pub max_ttl_secs: u64,
    /// Session length when no determining permit carries `@ttl`.
    pub default_ttl_secs: u64,
    /// The obligation only a human's approval meets: an allow carrying it is
    /// APPROVAL_REQUIRED until an approval is used.
    pub approval_obligation: String,
}

/// The obligation that asks for a human, as the shipped refund policy writes it.
pub const DEFAULT_APPROVAL_OBLIGATION: &str = "human_approval";

impl Default for DecisionSettings {
    fn default() -> Self {
        Self {
            max_depth: 5,
            allow_cycles: false,
            max_ttl_secs: 3600,
            default_ttl_secs: 300,
            approval_obligation: DEFAULT_APPROVAL_OBLIGATION.to_owned(),
        }
    }
}

/// Decides `request` against `bundle`. Pure: the same inputs always give the same outcome.
///
/// A scope is granted only when it is an action of the bundle, lies within the previous hop's
/// grant, and Cedar permits it both for the caller and for the principal at the callee, so an
/// agent never does for a principal what the principal could not do itself.
pub fn decide(
    bundle: &PolicyBundle,
    request: &DecisionRequest,
    settings: &DecisionSettings,
) -> Result<Outcome, InvalidRequest> {
    check_roles(request)?;
    // The transport deduplicates, but the core does not rely on it.
    let mut seen = HashSet::with_capacity(request.scopes.len());
    let scopes: Vec<&str> = request
        .scopes
        .iter()
        .map(String::as_str)
        .filter(|s| seen.insert(*s))
        .collect();
    let chain = DelegationChain::of(request);
    // Malformed input is refused before any policy rule is applied.
    let contract = bundle.contract();
    let uids = (
        contract.uid(&request.caller),
        contract.uid(&request.callee),
        contract.uid(&request.principal),
    );
    let (Some(caller), Some(callee), Some(principal)) = uids else {
        // Callers and principals are acting kinds, which every bundle declares; only a
        // resource callee can name a type this bundle does not.
        return Err(FieldViolation::new(
            "callee.type",
            format!(
                "is `{}`, which the active bundle does not declare: declare it in the schema to let chains end at it",
                request.callee.kind
            ),
        )
        .into());
    };
    let context = contract
        .context(&ContextInput {
            on_behalf_of: &request.principal,
            caller: &request.caller,
            delegated: chain.is_delegated(),
            depth: chain.depth(),
            chain: chain.members(),
            task: &request.context,
        })
        .map_err(|e| FieldViolation::new(e.path, e.problem))?;
    if !request.context.is_empty() {
        contract
            .check_context(bundle.schema(), &request.context, &context)
            .map_err(|errors| InvalidRequest {
                violations: errors
                    .into_iter()
                    .map(|e| FieldViolation::new(e.path, e.problem))
                    .collect(),
            })?;
    }

    // A callee the request describes is evaluated as described, in a copy of the directory.
    let described = match &request.callee_attributes {
        Some(properties) => Some(
            bundle
                .with_resource(&callee, properties)
                .map_err(|e| FieldViolation::new(format!("callee.{}", e.path), e.problem))?,
        ),
        None => None,
    };
    let entities = described.as_ref().unwrap_or(bundle.entities());

    let deny = |code, detail: String| Denial { code, detail };
    if chain.depth() > settings.max_depth {
        let detail = format!(
            "the chain has {} hops, over the maximum of {}",
            chain.depth(),
            settings.max_depth
        );
        return Ok(hop_denied(
            bundle,
            &scopes,
            chain,
            deny(DenialCode::ChainTooDeep, detail),
            [],
        ));
    }
    if !settings.allow_cycles
        && let Some(repeated) = chain.first_repeat()
    {
        let detail = format!("`{repeated}` appears twice in the chain");
        return Ok(hop_denied(
            bundle,
            &scopes,
            chain,
            deny(DenialCode::ChainCycle, detail),
            [],
        ));
    }

    // Scopes that survive the static checks, each with the action it names.
    let mut refused = Vec::new();
    let mut candidates: Vec<(&str, &EntityUid)> = Vec::new();
    for &scope in &scopes {
        match contract.scope(scope) {
            None => refused.push(refusal(
                scope,
                RefusalReason::UnknownScope,
                [],
                unknown_detail(scope),
            )),
            Some(_) if !within_ceiling(request, scope) => refused.push(refusal(
                scope,
                RefusalReason::AboveCeiling,
                [],
                "not granted at the previous hop".to_owned(),
            )),
            Some(action) => candidates.push((scope, action)),
        }
    }

    // The connection and the caller's scopes share one evaluation batch.
    let mut actions: Vec<&EntityUid> = vec![contract.invoke()];
    actions.extend(candidates.iter().map(|(_, a)| *a));
    let mut by_caller = bundle
        .evaluate_in(entities, &caller, &actions, &callee, &context)
        .into_iter();
    let connection = by_caller.next().unwrap_or_else(Evaluation::missing);
    if !connection.allowed || !connection.errors.is_empty() {
        let detail = if connection.errors.is_empty() {
            format!("`{}` may not invoke `{}`", request.caller, request.callee)
        } else {
            format!(
                "evaluation failed, so the connection is denied: {}",
                connection.errors.join("; ")
            )
        };
        let forbids = if connection.allowed {
            Vec::new()
        } else {
            connection.policies
        };
        return Ok(hop_denied(
            bundle,
            &scopes,
            chain,
            deny(DenialCode::ConnectionNotAllowed, detail),
            forbids,
        ));
    }

    let mut permitted: Vec<(&str, &EntityUid, Vec<PolicyId>)> = Vec::new();
    for ((scope, action), evaluation) in candidates.into_iter().zip(by_caller) {
        match judge(scope, evaluation, RefusalReason::NotPermittedForCaller) {
            Ok(policies) => permitted.push((scope, action, policies)),
            Err(r) => refused.push(r),
        }
    }

    // The confused-deputy rule: the principal must hold every scope itself. A principal acting
    // for itself was just evaluated as the caller.
    if principal != caller && !permitted.is_empty() {
        let actions: Vec<&EntityUid> = permitted.iter().map(|(_, a, _)| *a).collect();
        let by_principal = bundle.evaluate_in(entities, &principal, &actions, &callee, &context);
        let mut still = Vec::with_capacity(permitted.len());
        for ((scope, action, mut policies), evaluation) in permitted.into_iter().zip(by_principal) {
            match judge(scope, evaluation, RefusalReason::NotPermittedForPrincipal) {
                Ok(more) => {
                    policies.extend(more);
                    still.push((scope, action, policies));
                }
                Err(r) => refused.push(r),
            }
        }
        permitted = still;
    }

    // Refusals are reported in request order, whichever check refused them.
    let order = |scope: &str| scopes.iter().position(|s| *s == scope);
    refused.sort_by_key(|r| order(&r.scope));

    if permitted.is_empty() {
        // The forbids behind the deny, and nothing else: policies that failed to evaluate
        // explain their own refusals, but did not decide.
        let forbids: Vec<PolicyId> = refused
            .iter()
            .filter(|r| r.reason == RefusalReason::ForbiddenByPolicy)
            .flat_map(|r| r.policy_ids.iter().map(PolicyId::new))
            .collect();
        let mut outcome = hop_denied(
            bundle,
            &scopes,
            chain,
            deny(
                DenialCode::NoScopeGranted,
                "none of the requested scopes was granted".to_owned(),
            ),
            forbids,
        );
        outcome.refused = refused;
        return Ok(outcome);
    }

    let mut determining: BTreeSet<PolicyId> = connection.policies.into_iter().collect();
    let mut granted = Vec::with_capacity(permitted.len());
    for (scope, _, policies) in permitted {
        determining.extend(policies);
        granted.push(scope.to_owned());
    }
    // What the upstream credential still owes is owed here too: skipping the token service
    // that would have enforced it must not make it vanish.
    let mut obligations: BTreeSet<String> = request.upstream_obligations.iter().cloned().collect();
    let mut ttl = None::<u64>;
    for meta in determining.iter().filter_map(|id| bundle.meta(id)) {
        obligations.extend(meta.obligations.iter().cloned());
        if let Some(t) = meta.ttl_secs {
            ttl = Some(ttl.map_or(t, |cur| cur.min(t)));
        }
    }
    Ok(Outcome {
        effect: Effect::Allow,
        granted,
        refused,
        ttl_secs: ttl
            .unwrap_or(settings.default_ttl_secs)
            .min(settings.max_ttl_secs),
        chain: chain.into_members(),
        obligations: obligations.into_iter().collect(),
        determining_policies: determining.iter().map(id_text::policy_id).collect(),
        bundle_version: bundle.version().to_owned(),
        denial: None,
    })
}

/// A scope's verdict from one evaluation: the determining permits, or why it is refused. Any
/// evaluation error refuses the scope, even when some permit was satisfied: Baton fails closed.
/// A refusal names only what refused: the forbids that matched, or else the policies that
/// failed to evaluate, never a permit that happened to match beside them.
fn judge(
    scope: &str,
    evaluation: Evaluation,
    not_permitted: RefusalReason,
) -> Result<Vec<PolicyId>, RefusedScope> {
    if evaluation.allowed && evaluation.errors.is_empty() {
        return Ok(evaluation.policies);
    }
    let forbids = if evaluation.allowed {
        Vec::new()
    } else {
        evaluation.policies
    };
    if forbids.is_empty() && !evaluation.errors.is_empty() {
        return Err(refusal(
            scope,
            RefusalReason::EvaluationError,
            evaluation.failed,
            evaluation.errors.join("; "),
        ));
    }
    if forbids.is_empty() {
        let who = if not_permitted == RefusalReason::NotPermittedForCaller {
            "the caller"
        } else {
            "the principal"
        };
        Err(refusal(
            scope,
            not_permitted,
            [],
            format!("no policy permits {who} this scope at the callee"),
        ))
    } else {
        let names: Vec<String> = forbids.iter().map(|p| format!("`{p}`")).collect();
        Err(refusal(
            scope,
            RefusalReason::ForbiddenByPolicy,
            forbids,
            format!("forbidden by {}", names.join(", ")),
        ))
    }
}

fn refusal(
    scope: &str,
    reason: RefusalReason,
    policies: impl IntoIterator<Item = PolicyId>,
    detail: String,
) -> RefusedScope {
    RefusedScope {
        scope: scope.to_owned(),
        reason,
        policy_ids: policies
            .into_iter()
            .map(|p| id_text::policy_id(&p))
            .collect(),
        detail,
    }
}

fn unknown_detail(scope: &str) -> String {
    if scope == INVOKE_ACTION {
        format!("`{INVOKE_ACTION}` is the connection action, not a scope")
    } else {
        "not an action of the active bundle".to_owned()
    }
}

fn within_ceiling(request: &DecisionRequest, scope: &str) -> bool {
    request.ceiling.as_ref().is_none_or(|c| c.contains(scope))
}

/// A deny of the whole hop: every requested scope is refused for the same reason.
fn hop_denied(
    bundle: &PolicyBundle,
    scopes: &[&str],
    chain: DelegationChain,
    denial: Denial,
    forbids: impl IntoIterator<Item = PolicyId>,
) -> Outcome {
    let determining: BTreeSet<String> = forbids
        .into_iter()
        .map(|p| id_text::policy_id(&p))
        .collect();
    Outcome {
        effect: Effect::Deny,
        granted: Vec::new(),
        refused: scopes
            .iter()
            .map(|s| refusal(s, RefusalReason::HopDenied, [], denial.detail.clone()))
            .collect(),
        ttl_secs: 0,
        chain: chain.into_members(),
        obligations: Vec::new(),
        determining_policies: determining.into_iter().collect(),
        bundle_version: bundle.version().to_owned(),
        denial: Some(denial),
    }
}
