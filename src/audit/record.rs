//! What the audit trail holds: one record per decision, revocation, lifted revocation, human
//! approval and shadow disagreement, each serialised as one JSON object.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decision::{
    Decision, DecisionKind, DecisionRequest, Denial, LifecycleWarning, RefusedScope, Signoff,
};
use crate::identity::{Identity, IdentityKind};

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// The decision id for a decision; a fresh UUIDv7 for other events.
    pub id: String,
    /// When it happened: a decision's issue time, or when the change was made.
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// What happened; the `kind` field of the JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A question answered: ALLOW, DENY or APPROVAL_REQUIRED.
    Decision(Box<DecisionRecord>),
    /// An admin revoked an agent, principal, transaction or verdict.
    Revoked(RevocationRecord),
    /// An admin lifted a revocation.
    RevocationLifted(RevocationRecord),
    /// An approver approved a pending approval.
    ApprovalGranted(ApprovalRecord),
    /// An approver rejected a pending approval.
    ApprovalRejected(ApprovalRecord),
    /// The shadow bundle would have decided a live question differently.
    ShadowDisagreement(Box<ShadowRecord>),
}

impl AuditEvent {
    /// The `kind` field's value: `decision`, `revoked`, `revocation_lifted`,
    /// `approval_granted`, `approval_rejected` or `shadow_disagreement`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Decision(_) => "decision",
            Self::Revoked(_) => "revoked",
            Self::RevocationLifted(_) => "revocation_lifted",
            Self::ApprovalGranted(_) => "approval_granted",
            Self::ApprovalRejected(_) => "approval_rejected",
            Self::ShadowDisagreement(_) => "shadow_disagreement",
        }
    }
}

/// Who acted, on whose behalf, under which policy: one ALLOW, DENY or APPROVAL_REQUIRED as
/// answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// The task the hop belongs to.
    pub transaction_id: String,
    /// On whose behalf the call was asked.
    pub principal: Identity,
    /// The identity making the call.
    pub caller: Identity,
    /// The agent being called.
    pub callee: Identity,
    /// Principal → … → caller → callee.
    pub chain: Vec<Identity>,
    /// The chain as people read it: `User alice → Agent user-assistant → Agent data-analyst`.
    pub chain_line: String,
    /// What the caller was told: `ALLOW`, `DENY`, or `APPROVAL_REQUIRED` while a human's
    /// approval is pending.
    pub effect: DecisionKind,
    /// The scopes asked for, deduplicated, in request order.
    pub requested: Vec<String>,
    /// The scopes granted, in request order.
    pub granted: Vec<String>,
    /// Every scope not granted, with why.
    pub refused: Vec<RefusedScope>,
    /// Why the hop was denied; `None` unless the effect is a deny.
    pub denial: Option<Denial>,
    /// The permits behind an allow, the forbids behind a deny; sorted.
    pub determining_policies: Vec<String>,
    /// The content hash of the bundle that decided.
    pub bundle_version: String,
    /// What the enforcement point must do; sorted.
    pub obligations: Vec<String>,
    /// Whole seconds the grant lasts; zero on deny.
    pub ttl_secs: u64,
    /// The authenticated caller of Baton (the gateway), if it authenticated.
    pub pdp_caller: Option<String>,
    /// The trace of the call, 32 lowercase hex digits: the caller's when it sent
    /// `traceparent`, else Baton's own when spans are exported.
    pub trace_id: Option<String>,
    /// From receiving the question to the stamped, signed answer.
    pub latency_us: u64,
    /// Which tier answered: `local`, `redis`, `evaluated`, or `revocation` or `lifecycle` for
    /// a hop denied before any cache.
    pub source: String,
    /// The human approval this answer asked for (`pending`) or consumed (`used`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalMention>,
    /// What the record keeps of the request's context, as `--audit-context` says: all a
    /// re-decision needs (`full`), a digest of the context (`hash`), or nothing (absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<KeptContext>,
    /// Under `--agent-lifecycle warn`, the orphaned agents of the chain; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_warnings: Vec<LifecycleWarning>,
}

/// How much of a request's context the audit trail keeps (`--audit-context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuditContext {
    /// Everything a re-decision needs, verbatim: what `baton policy replay` requires.
    Full,
    /// A SHA-256 of the context's canonical JSON: proves what was asked without keeping it.
    #[default]
    Hash,
    /// Nothing of the context.
    None,
}

/// The request's context as a decision record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kept", rename_all = "snake_case")]
pub enum KeptContext {
    /// Verbatim, with the rest of the decision's input the record does not otherwise hold.
    Full(Box<DecisionInput>),
    /// The SHA-256, in lowercase hex, of [`context_canonical_json`] of the task context and
    /// the callee's described attributes.
    Hash {
        /// The digest.
        sha256: String,
    },
}

/// What, beside the identities and requested scopes every record holds, the decision core was
/// given, and the TTL the policies granted before the upstream bound cut it: enough to decide
/// the same question again and compare like with like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// Task attributes, seen by policies as `context.task`.
    pub task: Map<String, Value>,
    /// What the request said the callee is like, in place of the directory's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_attributes: Option<Map<String, Value>>,
    /// Actors between the principal and the caller, earliest first.
    #[serde(default)]
    pub delegation_chain: Vec<Identity>,
    /// The previous hop's grant, sorted; `None` at a first hop.
    #[serde(default)]
    pub ceiling: Option<Vec<String>>,
    /// Whether the caller holds its place in the chain as a token's actor.
    #[serde(default)]
    pub caller_is_actor: bool,
    /// Obligations of the upstream credential carried into this hop.
    #[serde(default)]
    pub upstream_obligations: Vec<String>,
    /// The TTL the policies granted, before the upstream credential's expiry capped it.
    pub policy_ttl_secs: u64,
}

impl DecisionInput {
    /// The request the decision core was asked, rebuilt from `record` and this input.
    pub fn request(&self, record: &DecisionRecord) -> DecisionRequest {
        DecisionRequest {
            caller: record.caller.clone(),
            callee: record.callee.clone(),
            principal: record.principal.clone(),
            scopes: record.requested.clone(),
            context: self.task.clone(),
            delegation_chain: self.delegation_chain.clone(),
            ceiling: self.ceiling.as_ref().map(|c| c.iter().cloned().collect()),
            transaction_id: Some(record.transaction_id.clone()),
            caller_is_actor: self.caller_is_actor,
            upstream_obligations: self.upstream_obligations.clone(),
            callee_attributes: self.callee_attributes.clone(),
        }
    }
}

/// The canonical form the `hash` setting digests: compact JSON of `{"callee_attributes": …,
/// "task": …}` with every object's keys sorted (serde_json's map is ordered by key).
pub fn context_canonical_json(request: &DecisionRequest) -> String {
    // Borrowed and serialized directly, fields in sorted order: the same bytes as the JSON
    // object of both, without copying the context into a `Value` on every audited answer.
    #[derive(Serialize)]
    struct Canonical<'a> {
        callee_attributes: &'a Option<Map<String, Value>>,
        task: &'a Map<String, Value>,
    }
    serde_json::to_string(&Canonical {
        callee_attributes: &request.callee_attributes,
        task: &request.context,
    })
    .unwrap_or_default()
}

impl KeptContext {
    /// What `setting` keeps of `request`, decided as `decision`.
    pub fn of(
        setting: AuditContext,
        request: &DecisionRequest,
        decision: &Decision,
    ) -> Option<Self> {
        match setting {
            AuditContext::None => None,
            AuditContext::Hash => {
                use sha2::{Digest as _, Sha256};
                let digest = Sha256::digest(context_canonical_json(request).as_bytes());
                Some(Self::Hash {
                    sha256: const_hex::encode(digest),
                })
            }
            AuditContext::Full => {
                let mut ceiling: Option<Vec<String>> = request
                    .ceiling
                    .as_ref()
                    .map(|c| c.iter().cloned().collect());
                if let Some(c) = &mut ceiling {
                    c.sort_unstable();
                }
                Some(Self::Full(Box::new(DecisionInput {
                    task: request.context.clone(),
                    callee_attributes: request.callee_attributes.clone(),
                    delegation_chain: request.delegation_chain.clone(),
                    ceiling,
                    caller_is_actor: request.caller_is_actor,
                    upstream_obligations: request.upstream_obligations.clone(),
                    policy_ttl_secs: decision.outcome.ttl_secs,
                })))
            }
        }
    }
}

/// The agents among `members`, sorted, each once.
fn agent_ids<'a>(members: impl Iterator<Item = &'a Identity>) -> Vec<&'a str> {
    let mut agents: Vec<&str> = members
        .filter(|m| m.kind == IdentityKind::Agent)
        .map(|m| m.id.as_str())
        .collect();
    agents.sort_unstable();
    agents.dedup();
    agents
}

/// An approval as a decision record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalMention {
    /// The approval's id.
    pub approval_id: String,
    /// Where it stood when the answer was given.
    pub status: crate::decision::ApprovalStatus,
    /// The approver whose answer decided it, once decided.
    pub decided_by: Option<String>,
    /// Every approver's answer, in order: on an allow that used the approval, each who
    /// approved it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<SignoffMention>,
}

/// One approver's answer, as the audit trail names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignoffMention {
    /// The approver's directory identity as `User:id`, else the admin's name.
    pub approver: String,
    /// The admin token's or certificate's name the approver authenticated with.
    pub admin: String,
    /// Approved, or rejected.
    pub approved: bool,
    /// When.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// Why, as the approver wrote it.
    pub rationale: String,
}

impl From<&Signoff> for SignoffMention {
    fn from(s: &Signoff) -> Self {
        Self {
            approver: s.approver.name(),
            admin: s.approver.admin.clone(),
            approved: s.approved,
            at: UNIX_EPOCH + Duration::from_secs(s.at),
            rationale: s.rationale.clone(),
        }
    }
}

fn one() -> u8 {
    1
}

/// Whether `n` is the default approver count; serde hands skipped fields by reference.
fn is_one(n: &u8) -> bool {
    *n == 1
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// A revocation, or its lifting. The target kind is one of `agent`, `principal`,
/// `transaction` or `verdict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// `agent`, `principal`, `transaction` or `verdict`.
    pub target_kind: String,
    /// The agent id, the principal as `Type:id`, the transaction id or the verdict's `jti`.
    pub target: String,
    /// The admin who revoked (or lifted).
    pub by: String,
    /// Why, as the admin wrote it.
    pub reason: String,
    /// When the revocation lapses by itself; `None` for never.
    #[serde(default, with = "rfc3339::option")]
    pub expires_at: Option<SystemTime>,
}

/// A human's answer to an approval request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// The approval decided on.
    pub approval_id: String,
    /// The transaction the approval was asked in, and the only one it can be used in.
    pub transaction_id: Option<String>,
    /// The hash of the exact request the approval is bound to.
    pub request_hash: String,
    /// Who decided: the directory identity as `User:id`, else the admin's name.
    pub approver: String,
    /// The admin token's or certificate's name the approver authenticated with, when the
    /// approver has a directory identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// Why, as the approver wrote it.
    pub rationale: String,
    /// How many distinct approvers the approval needs; absent for one.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub approvals_required: u8,
    /// How many more must approve after this answer: zero (absent) once approved or
    /// rejected.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub approvals_needed: u8,
}

/// A live decision the shadow bundle would have answered differently, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRecord {
    /// The live decision's id: its own `decision` record holds the whole answer.
    pub decision_id: String,
    /// The task the hop belongs to.
    pub transaction_id: String,
    /// On whose behalf the call was asked.
    pub principal: Identity,
    /// The identity making the call.
    pub caller: Identity,
    /// The agent being called.
    pub callee: Identity,
    /// The scopes asked for.
    pub requested: Vec<String>,
    /// The content hash of the live bundle that decided.
    pub live_version: String,
    /// The shadowed store revision.
    pub shadow_revision: u64,
    /// Its content hash.
    pub shadow_version: String,
    /// What would change, and the policies behind it.
    pub disagreement: super::Disagreement,
}

/// What the transport knows about a decision beyond the decision itself.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// The gateway that authenticated to Baton, if any.
    pub pdp_caller: Option<String>,
    /// The trace of the call, as [`DecisionRecord::trace_id`].
    pub trace_id: Option<String>,
    /// From receiving the question to the signed answer.
    pub latency: Duration,
    /// Which tier answered, as [`DecisionRecord::source`].
    pub source: &'static str,
}

impl AuditRecord {
    /// The record of `decision`, answered to `request`, keeping what `context` says of the
    /// request's context.
    pub fn decision(
        request: &DecisionRequest,
        decision: &Decision,
        asked: Asked,
        context: AuditContext,
    ) -> Self {
        let o = &decision.outcome;
        Self {
            id: decision.decision_id.clone(),
            time: decision.issued_at,
            event: AuditEvent::Decision(Box::new(DecisionRecord {
                transaction_id: decision.transaction_id.clone(),
                principal: request.principal.clone(),
                caller: request.caller.clone(),
                callee: request.callee.clone(),
                chain: o.chain.clone(),
                chain_line: chain_line(&o.chain),
                effect: decision.kind(),
                requested: request.scopes.clone(),
                granted: o.granted.clone(),
                refused: o.refused.clone(),
                denial: o.denial.clone(),
                determining_policies: o.determining_policies.clone(),
                bundle_version: o.bundle_version.clone(),
                obligations: o.obligations.clone(),
                ttl_secs: decision.ttl_secs,
                pdp_caller: asked.pdp_caller,
                trace_id: asked.trace_id,
                latency_us: u64::try_from(asked.latency.as_micros()).unwrap_or(u64::MAX),
                source: asked.source.to_owned(),
                approval: decision.approval.as_ref().map(|a| ApprovalMention {
                    approval_id: a.id.clone(),
                    status: a.status,
                    decided_by: a.decided_by.clone(),
                    approvers: a.signoffs.iter().map(SignoffMention::from).collect(),
                }),
                context: KeptContext::of(context, request, decision),
                lifecycle_warnings: decision.lifecycle_warnings.clone(),
            })),
        }
    }

    /// The record of a shadow disagreement about a decision issued at `at`.
    pub fn shadow_disagreement(shadow: ShadowRecord, at: SystemTime) -> Self {
        Self::event(AuditEvent::ShadowDisagreement(Box::new(shadow)), at)
    }

    /// The record of a revocation made at `at`.
    pub fn revoked(revocation: RevocationRecord, at: SystemTime) -> Self {
        Self::event(AuditEvent::Revoked(revocation), at)
    }

    /// The record of a revocation lifted at `at`.
    pub fn revocation_lifted(revocation: RevocationRecord, at: SystemTime) -> Self {
        Self::event(AuditEvent::RevocationLifted(revocation), at)
    }

    /// The record of an approval approved at `at`.
    pub fn approval_granted(approval: ApprovalRecord, at: SystemTime) -> Self {
        Self::event(AuditEvent::ApprovalGranted(approval), at)
    }

    /// The record of an approval rejected at `at`.
    pub fn approval_rejected(approval: ApprovalRecord, at: SystemTime) -> Self {
        Self::event(AuditEvent::ApprovalRejected(approval), at)
    }

    fn event(event: AuditEvent, at: SystemTime) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            time: at,
            event,
        }
    }

    /// Milliseconds since the Unix epoch: the order of the trail and its time index.
    pub fn time_ms(&self) -> u64 {
        unix_ms(self.time)
    }

    /// The transaction the record belongs to, if any.
    pub fn transaction_id(&self) -> Option<&str> {
        match &self.event {
            AuditEvent::Decision(d) => Some(&d.transaction_id),
            AuditEvent::Revoked(r) | AuditEvent::RevocationLifted(r) => {
                (r.target_kind == "transaction").then_some(r.target.as_str())
            }
            AuditEvent::ApprovalGranted(a) | AuditEvent::ApprovalRejected(a) => {
                a.transaction_id.as_deref()
            }
            AuditEvent::ShadowDisagreement(s) => Some(&s.transaction_id),
        }
    }

    /// The principal, as `Type:id`.
    pub fn principal(&self) -> Option<String> {
        match &self.event {
            AuditEvent::Decision(d) => Some(entity_key(&d.principal)),
            AuditEvent::ShadowDisagreement(s) => Some(entity_key(&s.principal)),
            AuditEvent::Revoked(r) | AuditEvent::RevocationLifted(r) => {
                (r.target_kind == "principal").then(|| r.target.clone())
            }
            AuditEvent::ApprovalGranted(_) | AuditEvent::ApprovalRejected(_) => None,
        }
    }

    /// Every agent the record names: anywhere in a decision's chain, or a revoked agent.
    pub fn agents(&self) -> Vec<&str> {
        match &self.event {
            AuditEvent::Decision(d) => agent_ids(d.chain.iter()),
            AuditEvent::ShadowDisagreement(s) => agent_ids([&s.caller, &s.callee].into_iter()),
            AuditEvent::Revoked(r) | AuditEvent::RevocationLifted(r)
                if r.target_kind == "agent" =>
            {
                vec![r.target.as_str()]
            }
            _ => Vec::new(),
        }
    }
}

/// `User alice → Agent user-assistant → Agent data-analyst`.
pub fn chain_line(chain: &[Identity]) -> String {
    // Pushed piece by piece, not through `Display` and `join`: built for every audited answer.
    const ARROW: &str = " → ";
    let len = chain
        .iter()
        .map(|m| m.kind.as_str().len() + 1 + m.id.len() + ARROW.len())
        .sum();
    let mut line = String::with_capacity(len);
    for (i, member) in chain.iter().enumerate() {
        if i > 0 {
            line.push_str(ARROW);
        }
        line.push_str(member.kind.as_str());
        line.push(' ');
        line.push_str(&member.id);
    }
    line
}

/// How principals are named in queries and indexes: `User:alice`.
pub fn entity_key(identity: &Identity) -> String {
    format!("{}:{}", identity.kind, identity.id)
}

/// Milliseconds since the Unix epoch; zero for a time before it.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Times as RFC 3339 with milliseconds, readable in the file and exact enough to order by.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(D::Error::custom)
    }

    pub mod option {
        use std::time::SystemTime;

        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] SystemTime);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(t)| t))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{Effect, Outcome};
    use crate::identity::IdentityKind::{Agent, User};

    fn decided() -> AuditRecord {
        decided_keeping(AuditContext::Full)
    }

    fn decided_keeping(context: AuditContext) -> AuditRecord {
        let chain = vec![
            Identity::new(User, "alice"),
            Identity::new(Agent, "user-assistant"),
            Identity::new(Agent, "data-analyst"),
        ];
        let request = DecisionRequest {
            scopes: vec!["reports.generate".into()],
            context: serde_json::json!({"amount": 42, "currency": "EUR"})
                .as_object()
                .cloned()
                .unwrap(),
            ..DecisionRequest::new(chain[1].clone(), chain[2].clone(), chain[0].clone())
        };
        let outcome = Outcome {
            effect: Effect::Allow,
            granted: vec!["reports.generate".into()],
            refused: Vec::new(),
            ttl_secs: 300,
            chain,
            obligations: vec!["log".into()],
            determining_policies: vec!["p1".into()],
            bundle_version: "v1".into(),
            denial: None,
        };
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let decision = Decision::stamp(outcome, Some("t-1".into()), now, None);
        AuditRecord::decision(
            &request,
            &decision,
            Asked {
                pdp_caller: Some("loopback".into()),
                trace_id: None,
                latency: Duration::from_micros(42),
                source: "evaluated",
            },
            context,
        )
    }

    #[test]
    fn the_context_is_kept_whole_as_a_digest_or_not_at_all() {
        let AuditEvent::Decision(full) = decided_keeping(AuditContext::Full).event else {
            panic!("not a decision");
        };
        let Some(KeptContext::Full(input)) = &full.context else {
            panic!("full keeps the input: {:?}", full.context);
        };
        assert_eq!(input.task["amount"], 42);
        assert_eq!(input.policy_ttl_secs, 300);
        let rebuilt = input.request(&full);
        assert_eq!(rebuilt.scopes, vec!["reports.generate".to_owned()]);
        assert_eq!(rebuilt.context, input.task);

        let AuditEvent::Decision(hashed) = decided_keeping(AuditContext::Hash).event else {
            panic!("not a decision");
        };
        let text = serde_json::to_string(&hashed).unwrap();
        assert!(!text.contains("EUR"), "the digest keeps no value: {text}");
        // SHA-256 of `{"callee_attributes":null,"task":{"amount":42,"currency":"EUR"}}`.
        let Some(KeptContext::Hash { sha256 }) = &hashed.context else {
            panic!("hash keeps a digest: {:?}", hashed.context);
        };
        use sha2::{Digest as _, Sha256};
        let expected: String =
            Sha256::digest(br#"{"callee_attributes":null,"task":{"amount":42,"currency":"EUR"}}"#)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        assert_eq!(sha256, &expected);

        let AuditEvent::Decision(none) = decided_keeping(AuditContext::None).event else {
            panic!("not a decision");
        };
        assert_eq!(none.context, None);
        assert!(
            !serde_json::to_string(&none)
                .unwrap()
                .contains("\"context\"")
        );
    }

    #[test]
    fn a_decision_reads_as_its_chain_and_round_trips_through_json() {
        let record = decided();
        let AuditEvent::Decision(d) = &record.event else {
            panic!("not a decision");
        };
        assert_eq!(
            d.chain_line,
            "User alice → Agent user-assistant → Agent data-analyst"
        );
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["kind"], "decision");
        assert_eq!(json["time"], "2023-11-14T22:13:20.123Z");
        let back: AuditRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        assert_eq!(record.time_ms(), 1_700_000_000_123);
    }

    #[test]
    fn indexes_name_the_transaction_principal_and_every_agent_once() {
        let record = decided();
        assert_eq!(record.transaction_id(), Some("t-1"));
        assert_eq!(record.principal().as_deref(), Some("User:alice"));
        assert_eq!(record.agents(), vec!["data-analyst", "user-assistant"]);
    }

    #[test]
    fn revocations_and_approvals_round_trip_and_index_their_target() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let revoked = AuditRecord::revoked(
            RevocationRecord {
                target_kind: "agent".into(),
                target: "refund-agent".into(),
                by: "admin".into(),
                reason: "compromised".into(),
                expires_at: Some(at + Duration::from_secs(3600)),
            },
            at,
        );
        assert_eq!(revoked.agents(), vec!["refund-agent"]);
        let approval = AuditRecord::approval_granted(
            ApprovalRecord {
                approval_id: "ap-1".into(),
                transaction_id: Some("t-9".into()),
                request_hash: "h".into(),
                approver: "User:carol".into(),
                admin: Some("carol".into()),
                rationale: "known customer".into(),
                approvals_required: 2,
                approvals_needed: 1,
            },
            at,
        );
        assert_eq!(approval.transaction_id(), Some("t-9"));
        for record in [revoked, approval] {
            let text = serde_json::to_string(&record).unwrap();
            let back: AuditRecord = serde_json::from_str(&text).unwrap();
            assert_eq!(back, record);
        }
    }
}
