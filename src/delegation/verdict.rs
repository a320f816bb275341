//! The signed verdict of an ALLOW. Its claims map mechanically onto an RFC 9068 access token:
//! `sub` and `act` (RFC 8693 §4.1, the callee outermost), `scope`, `txn`, and the latest expiry
//! `exp_max` a minted token may carry.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::clock::unix;
use crate::decision::{Decision, DecisionRequest, Effect};
use crate::token::claims::{ApproverClaim, Confirmation};
use crate::token::claims::{act_from_actors, kind_name};
use crate::token::jws::{self, JwsError, VERDICT_TYP};
use crate::token::{SigningKey, VerdictClaims};

/// The longest a verdict itself is valid: a minter redeems it at once.
pub const MAX_VERDICT_LIFETIME_SECS: u64 = 120;

/// Who signs verdicts, and for whom.
#[derive(Debug)]
pub struct VerdictIssuer {
    /// The `iss` of every verdict, and the issuer subject tokens signed by Baton must name.
    pub issuer: String,
    /// The token minter, the verdict's single audience.
    pub audience: String,
    /// Capped at [`MAX_VERDICT_LIFETIME_SECS`].
    pub lifetime_secs: u64,
}

impl VerdictIssuer {
    /// The claims of `decision` for `request` (as evaluated, with its
    /// [`DecisionRequest::digest`]), derived from the verdicts of `lineage`; `None` on deny.
    pub fn claims(
        &self,
        decision: &Decision,
        request: &DecisionRequest,
        request_digest: &[u8; 32],
        lineage: &[String],
        callee_x5t_s256: Option<&str>,
    ) -> Option<VerdictClaims> {
        let outcome = &decision.outcome;
        if outcome.effect != Effect::Allow || decision.awaits_approval() {
            return None;
        }
        let now = unix(decision.issued_at);
        let exp_max = decision.expires_at.map_or(now, unix);
        let lifetime = self.lifetime_secs.min(MAX_VERDICT_LIFETIME_SECS);
        let act = act_from_actors(outcome.chain.get(1..).unwrap_or_default())?;
        Some(VerdictClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime).min(exp_max),
            jti: decision.decision_id.clone(),
            txn: decision.transaction_id.clone(),
            sub: request.principal.id.clone(),
            sub_kind: kind_name(&request.principal.kind).into_owned(),
            act,
            scope: outcome.granted.join(" "),
            ttl: decision.ttl_secs,
            exp_max,
            obligations: outcome.obligations.clone(),
            policies: outcome.determining_policies.clone(),
            bundle_version: outcome.bundle_version.clone(),
            req_hash: request_hash(request_digest, &decision.transaction_id),
            approval: decision.approval.as_ref().map(|a| a.id.clone()),
            approvers: decision
                .approval
                .iter()
                .flat_map(|a| &a.signoffs)
                .filter(|s| s.approved)
                .map(|s| ApproverClaim {
                    sub: s.approver.name(),
                    at: s.at,
                    rationale: s.rationale.clone(),
                })
                .collect(),
            lineage: lineage.to_vec(),
            cnf: callee_x5t_s256.map(|x5t| Confirmation {
                x5t_s256: x5t.to_owned(),
            }),
            lifecycle_warnings: decision.lifecycle_warnings.clone(),
        })
    }

    /// Signs the verdict of `decision`; `None` on deny: a deny is never mintable.
    pub fn issue(
        &self,
        key: &SigningKey,
        decision: &Decision,
        request: &DecisionRequest,
        request_digest: &[u8; 32],
        lineage: &[String],
        callee_x5t_s256: Option<&str>,
    ) -> Result<Option<String>, JwsError> {
        self.claims(decision, request, request_digest, lineage, callee_x5t_s256)
            .map(|claims| jws::sign(key, VERDICT_TYP, &claims))
            .transpose()
    }
}

/// A digest of the request as evaluated, within its transaction.
pub fn request_hash(request_digest: &[u8; 32], transaction_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(request_digest);
    h.update(transaction_id.as_bytes());
    format!("sha256:{}", URL_SAFE_NO_PAD.encode(h.finalize()))
}
