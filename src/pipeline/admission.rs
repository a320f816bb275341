//! Step 1: who may say what the chain is. A question without a subject token is an asserted
//! chain, accepted only from a trusted gateway; one with a token gets its principal, chain,
//! ceiling, transaction, latest expiry, lineage and unmet obligations from the verified token
//! alone, and only its holder may present it. A caller whose client certificate proves a
//! workload must be that workload, unless a gateway vouches for the call.

use std::time::SystemTime;

use super::{Asker, Pipeline, PipelineError, Question};
use crate::clock::{from_unix, unix};
use crate::decision::{DecisionRequest, FieldViolation, InvalidRequest};
use crate::delegation::{DelegationError, trust, upstream};
use crate::identity::Identity;
use crate::metrics::TokenOperation;
use crate::token::{ClaimsError, TokenError, Upstream};
use crate::workload::PeerCertificate;

/// A question whose chain is established: the hop to decide, and what its credential says
/// beyond the hop itself.
pub(super) struct Admitted {
    pub request: DecisionRequest,
    /// No grant of this hop may outlive this instant: the upstream credential's `exp_max`.
    pub latest_expiry: Option<SystemTime>,
    /// The `jti` of the subject token.
    pub token_id: Option<String>,
    /// Every verdict the subject token derives from, earliest first.
    pub lineage: Vec<String>,
    pub approval_id: Option<String>,
    /// The callee's certificate thumbprint, which the verdict binds to.
    pub callee_x5t_s256: Option<String>,
}

fn required(field: &str) -> PipelineError {
    InvalidRequest::from(FieldViolation::new(field, "is required")).into()
}

impl Pipeline {
    pub(super) fn admit(
        &self,
        question: Question,
        gateway: Option<&str>,
        certificate: Option<&PeerCertificate>,
        now: SystemTime,
    ) -> Result<Admitted, PipelineError> {
        let Question {
            caller,
            callee,
            principal,
            scopes,
            context,
            delegation_chain,
            ceiling,
            transaction_id,
            subject_token,
            approval_id,
            callee_attributes,
            callee_x5t_s256,
            // Read by the pipeline before admission: it decides signing, not admission.
            omit_verdict: _,
        } = question;
        let Some(token) = subject_token else {
            let caller = caller.ok_or_else(|| required("caller"))?;
            let principal = principal.ok_or_else(|| required("principal"))?;
            let request = DecisionRequest {
                scopes,
                context,
                delegation_chain,
                ceiling,
                transaction_id,
                callee_attributes,
                ..DecisionRequest::new(caller, callee, principal)
            };
            trust::admit_asserted(&request, self.delegation.asserted_chains, gateway)?;
            return Ok(Admitted {
                request,
                latest_expiry: None,
                token_id: None,
                lineage: Vec::new(),
                approval_id,
                callee_x5t_s256,
            });
        };
        let upstream = self.verify(&token, now)?;
        self.check_binding(&upstream, certificate)?;
        let principal_given = principal.is_some();
        // Token exchange: the holder asks for itself.
        let caller = caller.unwrap_or_else(|| upstream.holder().clone());
        // A stand-in until the token's principal replaces it.
        let principal = principal.unwrap_or_else(|| caller.clone());
        let mut request = DecisionRequest {
            scopes,
            context,
            delegation_chain,
            ceiling,
            transaction_id,
            callee_attributes,
            ..DecisionRequest::new(caller, callee, principal)
        };
        upstream::apply(&mut request, &upstream, principal_given, unix(now))?;
        // `exp_max` is bounded when the token is read, so the clock can always hold it.
        let latest_expiry = from_unix(upstream.exp_max).ok_or_else(|| {
            DelegationError::from(TokenError::from(ClaimsError::Invalid {
                claim: "exp_max",
                reason: "cannot be represented as a time".to_owned(),
            }))
        })?;
        Ok(Admitted {
            request,
            latest_expiry: Some(latest_expiry),
            token_id: Some(upstream.jti),
            lineage: upstream.verdicts,
            approval_id,
            callee_x5t_s256,
        })
    }

    /// Holds the caller to its client certificate: when the certificate proves a workload
    /// (see [`crate::workload::WorkloadIdentities`]), the caller, named or the token's holder,
    /// must be it. A gateway known by its certificate or token asserts callers as before; the
    /// loopback default vouches for nobody. A certificate no rule maps proves nothing, and
    /// the call is judged as it would be without one.
    pub(super) fn authenticate_caller(
        &self,
        caller: &Identity,
        asker: &Asker,
    ) -> Result<(), PipelineError> {
        let Some(certificate) = asker.certificate.as_deref() else {
            return Ok(());
        };
        let delegation = &self.delegation;
        if delegation
            .gateways
            .authenticated(asker.bearer.as_deref(), Some(certificate))
            .is_some()
        {
            return Ok(());
        }
        let refused = |certified: String| {
            PipelineError::from(DelegationError::CallerNotAuthenticated {
                caller: caller.to_string(),
                certified,
            })
        };
        match delegation.workloads.identity_of(certificate) {
            Ok(Some(workload)) if workload != *caller => {
                Err(refused(format!("it names `{workload}`")))
            }
            Ok(_) => Ok(()),
            Err(ambiguous) => Err(refused(ambiguous.to_string())),
        }
    }

    /// RFC 8705 §3: a token bound to a certificate (`cnf.x5t#S256`) is only its holder's when
    /// presented over a connection with that certificate; anyone else holding a copy gets
    /// nothing from it. Unbound tokens pass unless bound ones are required.
    fn check_binding(
        &self,
        upstream: &Upstream,
        certificate: Option<&PeerCertificate>,
    ) -> Result<(), PipelineError> {
        use subtle::ConstantTimeEq as _;
        match (&upstream.bound_to, certificate) {
            (Some(bound), Some(cert))
                if bool::from(bound.as_bytes().ct_eq(cert.x5t_s256().as_bytes())) =>
            {
                Ok(())
            }
            (Some(_), _) => Err(DelegationError::TokenBindingMismatch.into()),
            (None, _) if self.delegation.require_bound_tokens => {
                Err(DelegationError::BoundTokenRequired.into())
            }
            (None, _) => Ok(()),
        }
    }

    fn verify(&self, token: &str, now: SystemTime) -> Result<Upstream, PipelineError> {
        let verified = self.spans.in_child("baton.token.verify", || {
            self.delegation.verifier.verify(token, unix(now))
        });
        verified.map_err(|e| {
            self.metrics.token_failed(TokenOperation::Verify);
            DelegationError::from(e).into()
        })
    }
}
