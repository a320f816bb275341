//! Table-driven decisions over the shipped `policies/` bundle: every scenario it models, hop by
//! hop, and each rule that narrows, denies or shapes a grant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::Path;

use baton::bundle::{PolicyBundle, SourceFile};
use baton::decision::{
    DecisionRequest, DecisionSettings, DenialCode, Effect, Outcome, RefusalReason, decide,
};
use baton::identity::{Identity, IdentityKind};
use serde_json::{Value, json};

use RefusalReason::{
    AboveCeiling, ForbiddenByPolicy, HopDenied, NotPermittedForCaller, NotPermittedForPrincipal,
    UnknownScope,
};

fn shipped() -> PolicyBundle {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    PolicyBundle::load(Path::new(dir)).unwrap_or_else(|e| panic!("shipped bundle rejected: {e}"))
}

/// `"Agent:data-analyst"` → the identity it names.
fn identity(s: &str) -> Identity {
    let (kind, id) = s.split_once(':').expect("identities are written `Kind:id`");
    let kind = IdentityKind::parse_any(kind).unwrap_or_else(|| panic!("unknown kind in `{s}`"));
    Identity::new(kind, id)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---- requests ----

/// A hop as the tables write it: `hop("User:alice", "Agent:user-assistant", "Agent:data-analyst")`.
fn hop(principal: &str, caller: &str, callee: &str) -> DecisionRequest {
    DecisionRequest::new(identity(caller), identity(callee), identity(principal))
}

/// The principal acting for itself.
fn direct(principal: &str, callee: &str) -> DecisionRequest {
    hop(principal, principal, callee)
}

trait RequestExt {
    fn scopes(self, scopes: &[&str]) -> Self;
    fn via(self, actors: &[&str]) -> Self;
    fn ceiling(self, scopes: &[&str]) -> Self;
    fn task(self, task: Value) -> Self;
}

impl RequestExt for DecisionRequest {
    fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = strings(scopes);
        self
    }

    fn via(mut self, actors: &[&str]) -> Self {
        self.delegation_chain = actors.iter().map(|a| identity(a)).collect();
        self
    }

    fn ceiling(mut self, scopes: &[&str]) -> Self {
        self.ceiling = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    fn task(mut self, task: Value) -> Self {
        let Value::Object(map) = task else {
            panic!("a task is a JSON object, not {task}")
        };
        self.context = map;
        self
    }
}

// ---- expectations ----

/// The parts of an [`Outcome`] a case pins down, comparable as a whole so a failure shows every
/// difference at once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    effect: Effect,
    denial: Option<DenialCode>,
    granted: Vec<String>,
    /// Scope, reason and the forbids named.
    refused: Vec<(String, RefusalReason, Vec<String>)>,
    /// `Kind:id`, principal first.
    chain: Vec<String>,
    ttl_secs: u64,
    obligations: Vec<String>,
    policies: Vec<String>,
}

impl Verdict {
    fn of(outcome: &Outcome) -> Self {
        Self {
            effect: outcome.effect,
            denial: outcome.denial.as_ref().map(|d| d.code),
            granted: outcome.granted.clone(),
            refused: outcome
                .refused
                .iter()
                .map(|r| (r.scope.clone(), r.reason, r.policy_ids.clone()))
                .collect(),
            chain: outcome
                .chain
                .iter()
                .map(|m| format!("{}:{}", m.kind, m.id))
                .collect(),
            ttl_secs: outcome.ttl_secs,
            obligations: outcome.obligations.clone(),
            policies: outcome.determining_policies.clone(),
        }
    }
}

/// What a case expects; the chain is checked only when the case names it.
#[derive(Debug, Clone)]
struct Expect {
    verdict: Verdict,
    chain: Option<Vec<String>>,
}

fn allow(granted: &[&str]) -> Expect {
    Expect {
        verdict: Verdict {
            effect: Effect::Allow,
            denial: None,
            granted: strings(granted),
            refused: Vec::new(),
            chain: Vec::new(),
            ttl_secs: 0,
            obligations: Vec::new(),
            policies: Vec::new(),
        },
        chain: None,
    }
}

fn deny(code: DenialCode) -> Expect {
    Expect {
        verdict: Verdict {
            effect: Effect::Deny,
            denial: Some(code),
            ..allow(&[]).verdict
        },
        chain: None,
    }
}

impl Expect {
    fn ttl(mut self, secs: u64) -> Self {
        self.verdict.ttl_secs = secs;
        self
    }

    /// The determining policies, in any order (the outcome sorts them).
    fn by(mut self, ids: &[&str]) -> Self {
        let mut ids = strings(ids);
        ids.sort();
        self.verdict.policies = ids;
        self
    }

    fn obliges(mut self, obligations: &[&str]) -> Self {
        self.verdict.obligations = strings(obligations);
        self
    }

    fn chain(mut self, members: &str) -> Self {
        self.chain = Some(members.split_whitespace().map(str::to_owned).collect());
        self
    }

    fn refuses(mut self, scope: &str, reason: RefusalReason) -> Self {
        self.verdict
            .refused
            .push((scope.to_owned(), reason, Vec::new()));
        self
    }

    fn forbids(mut self, scope: &str, policy_ids: &[&str]) -> Self {
        self.verdict
            .refused
            .push((scope.to_owned(), ForbiddenByPolicy, strings(policy_ids)));
        self
    }

    /// Every listed scope refused because the whole hop was denied.
    fn hop_denies(mut self, scopes: &[&str]) -> Self {
        for scope in scopes {
            self = self.refuses(scope, HopDenied);
        }
        self
    }
}

struct Case {
    name: &'static str,
    request: DecisionRequest,
    settings: DecisionSettings,
    expect: Expect,
}

fn case(name: &'static str, request: DecisionRequest, expect: Expect) -> Case {
    Case {
        name,
        request,
        settings: DecisionSettings::default(),
        expect,
    }
}

impl Case {
    fn with(mut self, settings: DecisionSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// Decides every case and checks it against its expectation and the invariants every outcome
/// keeps.
fn run(bundle: &PolicyBundle, cases: Vec<Case>) {
    for c in cases {
        let outcome = decide(bundle, &c.request, &c.settings)
            .unwrap_or_else(|e| panic!("case `{}`: request refused as invalid: {e}", c.name));
        check(bundle, c.name, &c.request, &outcome, &c.expect);
    }
}

fn check(
    bundle: &PolicyBundle,
    name: &str,
    request: &DecisionRequest,
    outcome: &Outcome,
    expect: &Expect,
) {
    let actual = Verdict::of(outcome);
    let mut expected = expect.verdict.clone();
    expected.chain = expect.chain.clone().unwrap_or_else(|| actual.chain.clone());
    assert_eq!(actual, expected, "case `{name}`: unexpected outcome");
    assert_invariants(bundle, name, request, outcome);
}

/// What holds of every outcome, whatever the case expects.
fn assert_invariants(
    bundle: &PolicyBundle,
    name: &str,
    request: &DecisionRequest,
    outcome: &Outcome,
) {
    let position = |scope: &str| request.scopes.iter().position(|s| s == scope);
    // Granted ⊆ requested and within the ceiling, in request order, no duplicates.
    for scope in &outcome.granted {
        assert!(
            position(scope).is_some(),
            "case `{name}`: granted `{scope}` that was not requested"
        );
        if let Some(ceiling) = &request.ceiling {
            assert!(
                ceiling.contains(scope),
                "case `{name}`: granted `{scope}` above the ceiling"
            );
        }
    }
    let granted_positions: Vec<_> = outcome.granted.iter().map(|s| position(s)).collect();
    assert!(
        granted_positions.is_sorted() && no_repeats(&outcome.granted),
        "case `{name}`: granted scopes out of request order or repeated: {:?}",
        outcome.granted
    );
    let refused: Vec<String> = outcome.refused.iter().map(|r| r.scope.clone()).collect();
    let refused_positions: Vec<_> = refused.iter().map(|s| position(s)).collect();
    assert!(
        refused_positions.iter().all(Option::is_some)
            && refused_positions.is_sorted()
            && no_repeats(&refused),
        "case `{name}`: refused scopes not a repeat-free subsequence of the request: {refused:?}"
    );
    // Every requested scope is accounted for exactly once.
    let mut accounted: Vec<&String> = outcome.granted.iter().chain(&refused).collect();
    accounted.sort();
    let mut asked: Vec<&String> = request.scopes.iter().collect();
    asked.sort();
    asked.dedup();
    assert_eq!(
        accounted, asked,
        "case `{name}`: each requested scope must be granted or refused once"
    );
    for r in &outcome.refused {
        assert!(
            !r.detail.is_empty(),
            "case `{name}`: refusal of `{}` has no detail",
            r.scope
        );
        assert_eq!(
            r.reason == ForbiddenByPolicy,
            !r.policy_ids.is_empty(),
            "case `{name}`: `{}` names forbids exactly when forbidden by policy",
            r.scope
        );
    }
    match outcome.effect {
        Effect::Allow => assert!(
            outcome.denial.is_none() && !outcome.granted.is_empty() && outcome.ttl_secs > 0,
            "case `{name}`: an allow grants something, for some time, with no denial"
        ),
        Effect::Deny => assert!(
            outcome.denial.is_some()
                && outcome.granted.is_empty()
                && outcome.ttl_secs == 0
                && outcome.obligations.is_empty(),
            "case `{name}`: a deny grants nothing, lasts no time and obliges nothing"
        ),
    }
    assert_eq!(
        outcome.bundle_version,
        bundle.version(),
        "case `{name}`: the outcome names the bundle that decided it"
    );
}

fn no_repeats(items: &[String]) -> bool {
    items.iter().collect::<HashSet<_>>().len() == items.len()
}

// ---- the scenarios, hop by hop ----

/// One hop of a multi-hop flow. Its ceiling is what the step `after` was granted, and the
/// actors of that step (other than the principal) become its delegation chain.
struct Step {
    name: &'static str,
    after: Option<usize>,
    principal: &'static str,
    caller: &'static str,
    callee: &'static str,
    scopes: &'static [&'static str],
    task: Value,
    expect: Expect,
}

fn run_flow(bundle: &PolicyBundle, steps: Vec<Step>) {
    let settings = DecisionSettings::default();
    let mut done: Vec<(DecisionRequest, Outcome)> = Vec::new();
    for step in steps {
        let mut request = hop(step.principal, step.caller, step.callee)
            .scopes(step.scopes)
            .task(step.task.clone());
        if let Some(i) = step.after {
            let (previous, granted) = &done[i];
            assert_eq!(
                identity(step.caller),
                previous.callee,
                "step `{}`: a hop continues from the previous callee",
                step.name
            );
            request.ceiling = Some(granted.granted.iter().cloned().collect());
            request.delegation_chain = previous.delegation_chain.clone();
            if previous.caller != previous.principal {
                request.delegation_chain.push(previous.caller.clone());
            }
        }
        let outcome = decide(bundle, &request, &settings)
            .unwrap_or_else(|e| panic!("step `{}`: request refused as invalid: {e}", step.name));
        check(bundle, step.name, &request, &outcome, &step.expect);
        done.push((request, outcome));
    }
}

#[test]
fn human_led_reporting_narrows_to_the_employee_at_every_hop() {
    run_flow(
        &shipped(),
        vec![
            Step {
                name: "alice's assistant asks the analyst for a finance report",
                after: None,
                principal: "User:alice",
                caller: "Agent:user-assistant",
                callee: "Agent:data-analyst",
                scopes: &["reports.generate", "finance.read"],
                task: json!({ "quarter": "Q4" }),
                expect: allow(&["reports.generate", "finance.read"])
                    .chain("User:alice Agent:user-assistant Agent:data-analyst")
                    .ttl(900)
                    .by(&[
                        "assistant-invokes-analyst",
                        "assistant-scopes-at-analyst",
                        "employees-generate-reports",
                        "finance-reads-finance-data",
                    ]),
            },
            Step {
                name: "the analyst reads finance data at the database for alice",
                after: Some(0),
                principal: "User:alice",
                caller: "Agent:data-analyst",
                callee: "Agent:database-agent",
                scopes: &["finance.read", "reports.generate", "finance.write"],
                task: json!({ "quarter": "Q4" }),
                expect: allow(&["finance.read"])
                    .refuses("reports.generate", NotPermittedForCaller)
                    .refuses("finance.write", AboveCeiling)
                    .chain(
                        "User:alice Agent:user-assistant Agent:data-analyst Agent:database-agent",
                    )
                    .ttl(300)
                    .by(&[
                        "analyst-invokes-database",
                        "analyst-scopes-at-database",
                        "finance-reads-finance-data",
                    ]),
            },
        ],
    );
}

#[test]
fn human_led_reporting_starts_with_the_employee_and_narrows_over_three_hops() {
    run_flow(
        &shipped(),
        vec![
            Step {
                name: "alice asks her assistant for a Q4 report",
                after: None,
                principal: "User:alice",
                caller: "User:alice",
                callee: "Agent:user-assistant",
                scopes: &["reports.generate", "finance.read", "finance.write"],
                task: json!({ "quarter": "Q4" }),
                expect: allow(&["reports.generate", "finance.read"])
                    .refuses("finance.write", NotPermittedForCaller)
                    .chain("User:alice Agent:user-assistant")
                    .ttl(3600)
                    .by(&[
                        "employees-delegate-reports",
                        "employees-invoke-assistant",
                        "finance-delegates-finance-reads",
                    ]),
            },
            Step {
                name: "the assistant asks the analyst on alice's behalf",
                after: Some(0),
                principal: "User:alice",
                caller: "Agent:user-assistant",
                callee: "Agent:data-analyst",
                scopes: &["reports.generate", "finance.read"],
                task: json!({ "quarter": "Q4" }),
                expect: allow(&["reports.generate", "finance.read"])
                    .chain("User:alice Agent:user-assistant Agent:data-analyst")
                    .ttl(900)
                    .by(&[
                        "assistant-invokes-analyst",
                        "assistant-scopes-at-analyst",
                        "employees-generate-reports",
                        "finance-reads-finance-data",
                    ]),
            },
            Step {
                name: "the analyst reads the figures at the database agent",
                after: Some(1),
                principal: "User:alice",
                caller: "Agent:data-analyst",
                callee: "Agent:database-agent",
                scopes: &["finance.read"],
                task: json!({ "quarter": "Q4" }),
                expect: allow(&["finance.read"])
                    .chain(
                        "User:alice Agent:user-assistant Agent:data-analyst Agent:database-agent",
                    )
                    .ttl(300)
                    .by(&[
                        "analyst-invokes-database",
                        "analyst-scopes-at-database",
                        "finance-reads-finance-data",
                    ]),
            },
        ],
    );
}

#[test]
fn machine_led_diagnostics_run_on_the_service_authority() {
    run_flow(
        &shipped(),
        vec![
            Step {
                name: "monitoring wakes diagnostics on its own authority",
                after: None,
                principal: "Service:monitoring",
                caller: "Service:monitoring",
                callee: "Agent:diagnostics",
                scopes: &["diagnostics.run", "logs.read", "metrics.read"],
                task: json!({ "reason": "cpu spike" }),
                expect: allow(&["diagnostics.run", "logs.read", "metrics.read"])
                    .chain("Service:monitoring Agent:diagnostics")
                    .ttl(600)
                    .by(&[
                        "monitoring-invokes-diagnostics",
                        "monitoring-scopes-at-diagnostics",
                        "sre-services-use-ops-agents",
                    ]),
            },
            Step {
                name: "diagnostics asks log-analysis to read production logs",
                after: Some(0),
                principal: "Service:monitoring",
                caller: "Agent:diagnostics",
                callee: "Agent:log-analysis",
                scopes: &["logs.read", "metrics.read"],
                task: json!({ "reason": "cpu spike" }),
                expect: allow(&["logs.read"])
                    .refuses("metrics.read", NotPermittedForCaller)
                    .chain("Service:monitoring Agent:diagnostics Agent:log-analysis")
                    .ttl(300)
                    .by(&[
                        "diagnostics-invokes-log-analysis",
                        "diagnostics-scopes-at-log-analysis",
                        "sre-services-use-ops-agents",
                    ]),
            },
        ],
    );
}

#[test]
fn healthcare_intake_gives_each_agent_the_least_it_needs() {
    let every_step = &[
        "intake.submit",
        "insurance.verify",
        "symptoms.read",
        "appointments.book",
    ];
    run_flow(
        &shipped(),
        vec![
            Step {
                name: "jane starts intake",
                after: None,
                principal: "User:jane",
                caller: "User:jane",
                callee: "Agent:intake",
                scopes: every_step,
                task: json!({}),
                expect: allow(every_step)
                    .chain("User:jane Agent:intake")
                    .ttl(1800)
                    .by(&["patients-invoke-intake", "patients-own-intake-workflow"]),
            },
            Step {
                name: "intake hands insurance to verification, and nothing clinical",
                after: Some(0),
                principal: "User:jane",
                caller: "Agent:intake",
                callee: "Agent:verification",
                scopes: &["insurance.verify", "symptoms.read", "appointments.book"],
                task: json!({}),
                expect: allow(&["insurance.verify"])
                    .forbids("symptoms.read", &["symptoms-only-at-triage"])
                    .refuses("appointments.book", NotPermittedForCaller)
                    .chain("User:jane Agent:intake Agent:verification")
                    .ttl(300)
                    .by(&[
                        "intake-invokes-verification",
                        "intake-verifies-insurance",
                        "patients-own-intake-workflow",
                    ]),
            },
            Step {
                name: "intake hands symptoms and booking to triage",
                after: Some(0),
                principal: "User:jane",
                caller: "Agent:intake",
                callee: "Agent:triage",
                scopes: &["symptoms.read", "appointments.book", "insurance.verify"],
                task: json!({}),
                expect: allow(&["symptoms.read", "appointments.book"])
                    .refuses("insurance.verify", NotPermittedForCaller)
                    .chain("User:jane Agent:intake Agent:triage")
                    .ttl(600)
                    .by(&[
                        "intake-invokes-triage",
                        "intake-hands-over-to-triage",
                        "patients-own-intake-workflow",
                    ]),
            },
            Step {
                name: "triage books through scheduling, symptoms stay behind",
                after: Some(2),
                principal: "User:jane",
                caller: "Agent:triage",
                callee: "Agent:scheduling",
                scopes: &["appointments.book", "symptoms.read", "insurance.verify"],
                task: json!({}),
                expect: allow(&["appointments.book"])
                    .forbids("symptoms.read", &["symptoms-only-at-triage"])
                    .refuses("insurance.verify", AboveCeiling)
                    .chain("User:jane Agent:intake Agent:triage Agent:scheduling")
                    .ttl(300)
                    .by(&[
                        "triage-invokes-scheduling",
                        "triage-books-appointments",
                        "patients-own-intake-workflow",
                    ]),
            },
        ],
    );
}

#[test]
fn autonomous_reconciler_acts_only_on_its_own_authority() {
    run(
        &shipped(),
        vec![
            case(
                "the reconciler reconciles the ledger for itself",
                direct("Agent:reconciler", "Agent:ledger").scopes(&["ledger.reconcile"]),
                allow(&["ledger.reconcile"])
                    .chain("Agent:reconciler Agent:ledger")
                    .ttl(1800)
                    .by(&["reconciler-invokes-ledger", "reconciler-reconciles-ledger"]),
            ),
            case(
                "the reconciler acting for alice is not let through",
                hop("User:alice", "Agent:reconciler", "Agent:ledger").scopes(&["ledger.reconcile"]),
                deny(DenialCode::ConnectionNotAllowed)
                    .hop_denies(&["ledger.reconcile"])
                    .chain("User:alice Agent:reconciler Agent:ledger"),
            ),
            case(
                "the reconciler acting for a service is not let through",
                hop("Service:monitoring", "Agent:reconciler", "Agent:ledger")
                    .scopes(&["ledger.reconcile"]),
                deny(DenialCode::ConnectionNotAllowed)
                    .hop_denies(&["ledger.reconcile"])
                    .chain("Service:monitoring Agent:reconciler Agent:ledger"),
            ),
            case(
                "the reconciler deeper in someone's chain is not let through",
                hop("User:alice", "Agent:reconciler", "Agent:ledger")
                    .via(&["Agent:user-assistant"])
                    .scopes(&["ledger.reconcile"]),
                deny(DenialCode::ConnectionNotAllowed).hop_denies(&["ledger.reconcile"]),
            ),
        ],
    );
}

#[test]
fn refunds_scale_their_conditions_with_the_amount() {
    let refund = |amount: i64| {
        hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
            .scopes(&["refunds.issue"])
            .task(json!({ "amount": amount, "currency": "EUR" }))
    };
    let small = |ttl| {
        allow(&["refunds.issue"]).ttl(ttl).by(&[
            "support-assistant-invokes-refunds",
            "refunds-up-to-500",
            "support-staff-handle-refunds",
        ])
    };
    let approved = || {
        allow(&["refunds.issue"])
            .ttl(120)
            .obliges(&["human_approval"])
            .by(&[
                "support-assistant-invokes-refunds",
                "refunds-over-500-need-approval",
                "support-staff-handle-refunds",
            ])
    };
    let two_approvers = || {
        allow(&["refunds.issue"])
            .ttl(120)
            .obliges(&["human_approval"])
            .by(&[
                "support-assistant-invokes-refunds",
                "refunds-over-500-need-approval",
                "refunds-over-5000-need-two-approvers",
                "support-staff-handle-refunds",
            ])
    };
    let over_limit = || {
        deny(DenialCode::NoScopeGranted)
            .forbids("refunds.issue", &["refunds-hard-limit"])
            .by(&["refunds-hard-limit"])
    };
    run(
        &shipped(),
        vec![
            case(
                "a 200 refund needs nothing more",
                refund(200),
                small(300).chain("User:bob Agent:support-assistant Agent:refund-agent"),
            ),
            case("a 500 refund is still small", refund(500), small(300)),
            case(
                "a 750 refund needs a human's approval",
                refund(750),
                approved(),
            ),
            case("a 501 refund needs approval", refund(501), approved()),
            case("a 5000 refund needs one approver", refund(5000), approved()),
            case(
                "a 5001 refund needs two: both approval permits decide",
                refund(5001),
                two_approvers(),
            ),
            case(
                "a 10000 refund is the largest allowed",
                refund(10_000),
                two_approvers(),
            ),
            case(
                "a 10001 refund is forbidden over the permits",
                refund(10_001),
                over_limit(),
            ),
            case(
                "a 20000 refund is forbidden over the permits",
                refund(20_000),
                over_limit(),
            ),
            case(
                "a refund without an amount matches no permit",
                hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
                    .scopes(&["refunds.issue"]),
                deny(DenialCode::NoScopeGranted).refuses("refunds.issue", NotPermittedForCaller),
            ),
            case(
                "the forbidden refund does not take the transaction read down with it",
                hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
                    .scopes(&["transactions.read", "refunds.issue"])
                    .task(json!({ "amount": 20_000 })),
                allow(&["transactions.read"])
                    .forbids("refunds.issue", &["refunds-hard-limit"])
                    .ttl(600)
                    .by(&[
                        "support-assistant-invokes-refunds",
                        "support-assistant-reads-transactions",
                        "support-staff-handle-refunds",
                    ]),
            ),
            case(
                "the support assistant cannot refund on its own authority",
                direct("Agent:support-assistant", "Agent:refund-agent")
                    .scopes(&["refunds.issue"])
                    .task(json!({ "amount": 20 })),
                deny(DenialCode::ConnectionNotAllowed).hop_denies(&["refunds.issue"]),
            ),
        ],
    );
}

#[test]
fn forbid_overrides_every_permit() {
    run(
        &shipped(),
        vec![
            case(
                "carol is in finance but a contractor: no finance data",
                hop("User:carol", "Agent:user-assistant", "Agent:data-analyst")
                    .scopes(&["finance.read"]),
                deny(DenialCode::NoScopeGranted)
                    .forbids("finance.read", &["contractors-never-read-finance"])
                    .by(&["contractors-never-read-finance"]),
            ),
            case(
                "carol still gets the report an employee may have",
                hop("User:carol", "Agent:user-assistant", "Agent:data-analyst")
                    .scopes(&["reports.generate", "finance.read"]),
                allow(&["reports.generate"])
                    .forbids("finance.read", &["contractors-never-read-finance"])
                    .ttl(900)
                    .by(&[
                        "assistant-invokes-analyst",
                        "assistant-scopes-at-analyst",
                        "employees-generate-reports",
                    ]),
            ),
            case(
                "carol's chain is cut at the database too",
                hop("User:carol", "Agent:data-analyst", "Agent:database-agent")
                    .via(&["Agent:user-assistant"])
                    .ceiling(&["reports.generate", "finance.read"])
                    .scopes(&["finance.read"]),
                deny(DenialCode::NoScopeGranted)
                    .forbids("finance.read", &["contractors-never-read-finance"])
                    .by(&["contractors-never-read-finance"]),
            ),
            case(
                "a refund over 10000 is forbidden though two permits match it",
                hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
                    .scopes(&["refunds.issue"])
                    .task(json!({ "amount": 50_000 })),
                deny(DenialCode::NoScopeGranted)
                    .forbids("refunds.issue", &["refunds-hard-limit"])
                    .by(&["refunds-hard-limit"]),
            ),
        ],
    );
}

// ---- each narrowing rule on its own ----

#[test]
fn each_narrowing_rule_refuses_with_its_own_reason() {
    let analyst = || hop("User:alice", "Agent:user-assistant", "Agent:data-analyst");
    let database = || {
        hop("User:alice", "Agent:data-analyst", "Agent:database-agent")
            .via(&["Agent:user-assistant"])
    };
    let invoke_and_scope = |scope| {
        vec![
            "assistant-invokes-analyst",
            "assistant-scopes-at-analyst",
            scope,
        ]
    };
    run(
        &shipped(),
        vec![
            case(
                "not permitted for the caller: the assistant may not write finance data",
                analyst().scopes(&["reports.generate", "finance.write"]),
                allow(&["reports.generate"])
                    .refuses("finance.write", NotPermittedForCaller)
                    .ttl(900)
                    .by(&invoke_and_scope("employees-generate-reports")),
            ),
            case(
                "not permitted for the principal: dave is an employee outside finance",
                hop("User:dave", "Agent:user-assistant", "Agent:data-analyst")
                    .scopes(&["reports.generate", "finance.read"]),
                allow(&["reports.generate"])
                    .refuses("finance.read", NotPermittedForPrincipal)
                    .ttl(900)
                    .by(&invoke_and_scope("employees-generate-reports")),
            ),
            case(
                "the confused deputy alone gets nothing",
                hop("User:dave", "Agent:data-analyst", "Agent:database-agent")
                    .via(&["Agent:user-assistant"])
                    .scopes(&["finance.read"]),
                deny(DenialCode::NoScopeGranted).refuses("finance.read", NotPermittedForPrincipal),
            ),
            case(
                "a principal outside the directory holds nothing",
                hop("User:mallory", "Agent:user-assistant", "Agent:data-analyst")
                    .scopes(&["reports.generate"]),
                deny(DenialCode::NoScopeGranted)
                    .refuses("reports.generate", NotPermittedForPrincipal),
            ),
            case(
                "above the ceiling: the previous hop granted only the report",
                database()
                    .ceiling(&["reports.generate"])
                    .scopes(&["finance.read"]),
                deny(DenialCode::NoScopeGranted).refuses("finance.read", AboveCeiling),
            ),
            case(
                "an empty ceiling admits nothing",
                database().ceiling(&[]).scopes(&["finance.read"]),
                deny(DenialCode::NoScopeGranted).refuses("finance.read", AboveCeiling),
            ),
            case(
                "no ceiling at a later hop leaves the policies to decide",
                database().scopes(&["finance.read"]),
                allow(&["finance.read"]).ttl(300).by(&[
                    "analyst-invokes-database",
                    "analyst-scopes-at-database",
                    "finance-reads-finance-data",
                ]),
            ),
            case(
                "unknown scope: not an action of the bundle",
                analyst().scopes(&["payroll.run", "finance.read"]),
                allow(&["finance.read"])
                    .refuses("payroll.run", UnknownScope)
                    .ttl(900)
                    .by(&invoke_and_scope("finance-reads-finance-data")),
            ),
            case(
                "unknown scope: `invoke` is the connection, not a scope",
                analyst().scopes(&["invoke"]),
                deny(DenialCode::NoScopeGranted).refuses("invoke", UnknownScope),
            ),
            case(
                "unknown scope: scopes are case-sensitive",
                analyst().scopes(&["Finance.Read"]),
                deny(DenialCode::NoScopeGranted).refuses("Finance.Read", UnknownScope),
            ),
            case(
                "unknown is reported before above-ceiling",
                database()
                    .ceiling(&["finance.read"])
                    .scopes(&["payroll.run"]),
                deny(DenialCode::NoScopeGranted).refuses("payroll.run", UnknownScope),
            ),
            case(
                "forbidden by policy, naming the forbid",
                hop("User:jane", "Agent:intake", "Agent:verification").scopes(&["symptoms.read"]),
                deny(DenialCode::NoScopeGranted)
                    .forbids("symptoms.read", &["symptoms-only-at-triage"])
                    .by(&["symptoms-only-at-triage"]),
            ),
            case(
                "connection not allowed: the analyst may not call the ledger",
                hop("User:alice", "Agent:data-analyst", "Agent:ledger")
                    .via(&["Agent:user-assistant"])
                    .scopes(&["ledger.reconcile", "payroll.run"]),
                deny(DenialCode::ConnectionNotAllowed)
                    .hop_denies(&["ledger.reconcile", "payroll.run"]),
            ),
            case(
                "connection not allowed: the assistant needs a user behind it",
                hop(
                    "Service:monitoring",
                    "Agent:user-assistant",
                    "Agent:data-analyst",
                )
                .scopes(&["reports.generate"]),
                deny(DenialCode::ConnectionNotAllowed).hop_denies(&["reports.generate"]),
            ),
            case(
                "connection not allowed: an agent outside the directory",
                hop("User:alice", "Agent:ghost", "Agent:data-analyst")
                    .scopes(&["reports.generate"]),
                deny(DenialCode::ConnectionNotAllowed).hop_denies(&["reports.generate"]),
            ),
            case(
                "no scope asked: nothing to grant",
                analyst(),
                deny(DenialCode::NoScopeGranted),
            ),
        ],
    );
}

#[test]
fn refusals_follow_request_order_whichever_check_refused() {
    run(
        &shipped(),
        vec![
            case(
                "principal refusal first, static refusal second",
                hop("User:dave", "Agent:user-assistant", "Agent:data-analyst").scopes(&[
                    "finance.read",
                    "invoke",
                    "reports.generate",
                    "finance.write",
                ]),
                allow(&["reports.generate"])
                    .refuses("finance.read", NotPermittedForPrincipal)
                    .refuses("invoke", UnknownScope)
                    .refuses("finance.write", NotPermittedForCaller)
                    .ttl(900)
                    .by(&[
                        "assistant-invokes-analyst",
                        "assistant-scopes-at-analyst",
                        "employees-generate-reports",
                    ]),
            ),
            case(
                "every reason in one request",
                hop("User:jane", "Agent:triage", "Agent:scheduling")
                    .via(&["Agent:intake"])
                    .ceiling(&["symptoms.read", "appointments.book", "intake.submit"])
                    .scopes(&[
                        "symptoms.read",
                        "payroll.run",
                        "intake.submit",
                        "appointments.book",
                        "insurance.verify",
                    ]),
                allow(&["appointments.book"])
                    .forbids("symptoms.read", &["symptoms-only-at-triage"])
                    .refuses("payroll.run", UnknownScope)
                    .refuses("intake.submit", NotPermittedForCaller)
                    .refuses("insurance.verify", AboveCeiling)
                    .ttl(300)
                    .by(&[
                        "triage-invokes-scheduling",
                        "triage-books-appointments",
                        "patients-own-intake-workflow",
                    ]),
            ),
            case(
                "granted scopes keep request order too",
                hop("User:alice", "Agent:user-assistant", "Agent:data-analyst")
                    .scopes(&["finance.read", "reports.generate"]),
                allow(&["finance.read", "reports.generate"]).ttl(900).by(&[
                    "assistant-invokes-analyst",
                    "assistant-scopes-at-analyst",
                    "employees-generate-reports",
                    "finance-reads-finance-data",
                ]),
            ),
        ],
    );
}

#[test]
fn a_scope_asked_twice_is_answered_once() {
    // The transport deduplicates, but `decide` is public and its request fields are too.
    let bundle = shipped();
    let request = hop("User:dave", "Agent:user-assistant", "Agent:data-analyst").scopes(&[
        "reports.generate",
        "finance.read",
        "reports.generate",
        "finance.read",
    ]);
    let outcome = decide(&bundle, &request, &DecisionSettings::default()).unwrap();
    assert_eq!(outcome.granted, ["reports.generate"]);
    let refused: Vec<&str> = outcome.refused.iter().map(|r| r.scope.as_str()).collect();
    assert_eq!(refused, ["finance.read"]);
}

// ---- session length and obligations ----

/// A bundle of the shipped schema and directory with policies that carry no `@ttl`; the
/// shipped cases stay out, since they name the shipped policies.
fn bundle_without_ttl() -> PolicyBundle {
    let shipped = shipped();
    let mut files: Vec<SourceFile> = shipped
        .sources()
        .iter()
        .filter(|f| !f.name.ends_with(".cedar") && !f.name.ends_with("tests.json"))
        .cloned()
        .collect();
    files.push(SourceFile {
        name: "plain.cedar".to_owned(),
        text: r#"
            @id("plain-invoke")
            permit (principal == Agent::"reconciler", action == Action::"invoke", resource == Agent::"ledger");

            @id("plain-reconcile")
            permit (principal == Agent::"reconciler", action == Action::"ledger.reconcile", resource == Agent::"ledger");
        "#
        .to_owned(),
    });
    PolicyBundle::compile(files).unwrap_or_else(|e| panic!("test bundle rejected: {e}"))
}

#[test]
fn ttl_is_the_shortest_determining_permit_capped_by_the_server() {
    let refund = |scopes: &[&str], amount: i64| {
        hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
            .scopes(scopes)
            .task(json!({ "amount": amount }))
    };
    let capped = |max_ttl_secs| DecisionSettings {
        max_ttl_secs,
        ..DecisionSettings::default()
    };
    let reconcile = || direct("Agent:reconciler", "Agent:ledger").scopes(&["ledger.reconcile"]);
    let reconciled = |ttl| {
        allow(&["ledger.reconcile"])
            .ttl(ttl)
            .by(&["reconciler-invokes-ledger", "reconciler-reconciles-ledger"])
    };
    let both_permits = [
        "support-assistant-invokes-refunds",
        "support-assistant-reads-transactions",
        "support-staff-handle-refunds",
    ];
    run(
        &shipped(),
        vec![
            case(
                "one scope: its permit's ttl (600), the others carry none",
                refund(&["transactions.read"], 10),
                allow(&["transactions.read"]).ttl(600).by(&both_permits),
            ),
            case(
                "two scopes: the shorter permit (300 < 600) wins",
                refund(&["transactions.read", "refunds.issue"], 10),
                allow(&["transactions.read", "refunds.issue"])
                    .ttl(300)
                    .by(&[&both_permits[..], &["refunds-up-to-500"]].concat()),
            ),
            case(
                "the approval permit's 120 undercuts the read's 600",
                refund(&["transactions.read", "refunds.issue"], 900),
                allow(&["transactions.read", "refunds.issue"])
                    .ttl(120)
                    .obliges(&["human_approval"])
                    .by(&[&both_permits[..], &["refunds-over-500-need-approval"]].concat()),
            ),
            case(
                "the caller's permit (300) undercuts the principal's (1800)",
                hop("User:jane", "Agent:intake", "Agent:verification")
                    .scopes(&["insurance.verify"]),
                allow(&["insurance.verify"]).ttl(300).by(&[
                    "intake-invokes-verification",
                    "intake-verifies-insurance",
                    "patients-own-intake-workflow",
                ]),
            ),
            case(
                "a refused scope's permits do not shorten the session",
                hop("User:dave", "Agent:user-assistant", "Agent:data-analyst")
                    .scopes(&["reports.generate", "finance.read"]),
                allow(&["reports.generate"])
                    .refuses("finance.read", NotPermittedForPrincipal)
                    .ttl(900)
                    .by(&[
                        "assistant-invokes-analyst",
                        "assistant-scopes-at-analyst",
                        "employees-generate-reports",
                    ]),
            ),
            case(
                "under the default cap the permit's 1800 stands",
                reconcile(),
                reconciled(1800),
            ),
            case(
                "the server's cap shortens a longer permit",
                reconcile(),
                reconciled(1000),
            )
            .with(capped(1000)),
            case(
                "a cap equal to the permit changes nothing",
                reconcile(),
                reconciled(1800),
            )
            .with(capped(1800)),
        ],
    );
}

#[test]
fn ttl_falls_back_to_the_default_when_no_permit_carries_one() {
    let reconcile = || direct("Agent:reconciler", "Agent:ledger").scopes(&["ledger.reconcile"]);
    let reconciled = |ttl| {
        allow(&["ledger.reconcile"])
            .ttl(ttl)
            .by(&["plain-invoke", "plain-reconcile"])
    };
    let settings = |default_ttl_secs, max_ttl_secs| DecisionSettings {
        default_ttl_secs,
        max_ttl_secs,
        ..DecisionSettings::default()
    };
    run(
        &bundle_without_ttl(),
        vec![
            case("the default default: 300", reconcile(), reconciled(300)),
            case("a configured default", reconcile(), reconciled(42)).with(settings(42, 3600)),
            case(
                "the default is capped as well",
                reconcile(),
                reconciled(100),
            )
            .with(settings(500, 100)),
        ],
    );
}

#[test]
fn obligations_come_from_the_determining_permits_only() {
    let refund = |amount: i64| {
        hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
            .scopes(&["refunds.issue"])
            .task(json!({ "amount": amount }))
    };
    let bundle = shipped();
    for (amount, obligations) in [
        (200, &[][..]),
        (500, &[]),
        (501, &["human_approval"]),
        (750, &["human_approval"]),
        (10_000, &["human_approval"]),
        (20_000, &[]),
    ] {
        let request = refund(amount);
        let outcome = decide(&bundle, &request, &DecisionSettings::default()).unwrap();
        assert_eq!(
            outcome.obligations, obligations,
            "refund of {amount}: obligations"
        );
        assert_invariants(&bundle, &format!("refund of {amount}"), &request, &outcome);
    }
}

// ---- chain rules ----

#[test]
fn chains_are_limited_in_depth_and_free_of_cycles() {
    let scheduling = |via: &[&str]| {
        hop("User:jane", "Agent:triage", "Agent:scheduling")
            .via(via)
            .scopes(&["appointments.book"])
    };
    let booked = || {
        allow(&["appointments.book"]).ttl(300).by(&[
            "triage-invokes-scheduling",
            "triage-books-appointments",
            "patients-own-intake-workflow",
        ])
    };
    let too_deep = || deny(DenialCode::ChainTooDeep).hop_denies(&["appointments.book"]);
    let depth = |max_depth| DecisionSettings {
        max_depth,
        ..DecisionSettings::default()
    };
    let cycles_allowed = DecisionSettings {
        allow_cycles: true,
        ..DecisionSettings::default()
    };
    let four_before = [
        "Agent:intake",
        "Agent:verification",
        "Agent:user-assistant",
        "Agent:data-analyst",
    ];
    run(
        &shipped(),
        vec![
            case(
                "depth 5, the default maximum, is allowed",
                scheduling(&four_before[..3]),
                booked().chain(
                    "User:jane Agent:intake Agent:verification Agent:user-assistant \
                     Agent:triage Agent:scheduling",
                ),
            ),
            case(
                "depth 6 is one over the default maximum",
                scheduling(&four_before),
                too_deep().chain(
                    "User:jane Agent:intake Agent:verification Agent:user-assistant \
                     Agent:data-analyst Agent:triage Agent:scheduling",
                ),
            ),
            case(
                "depth 3 under a maximum of 3 is allowed",
                scheduling(&["Agent:intake"]),
                booked(),
            )
            .with(depth(3)),
            case(
                "depth 4 under a maximum of 3 is denied",
                scheduling(&four_before[..2]),
                too_deep(),
            )
            .with(depth(3)),
            case(
                "a maximum of 1 admits only direct calls",
                direct("User:jane", "Agent:intake").scopes(&["intake.submit"]),
                allow(&["intake.submit"])
                    .ttl(1800)
                    .by(&["patients-invoke-intake", "patients-own-intake-workflow"]),
            )
            .with(depth(1)),
            case(
                "a maximum of 1 denies the first delegated hop",
                hop("User:jane", "Agent:intake", "Agent:triage").scopes(&["symptoms.read"]),
                deny(DenialCode::ChainTooDeep).hop_denies(&["symptoms.read"]),
            )
            .with(depth(1)),
            case(
                "an agent twice in the chain is a cycle",
                hop("User:jane", "Agent:intake", "Agent:triage")
                    .via(&["Agent:intake", "Agent:triage"])
                    .scopes(&["symptoms.read"]),
                deny(DenialCode::ChainCycle)
                    .hop_denies(&["symptoms.read"])
                    .chain("User:jane Agent:intake Agent:triage Agent:intake Agent:triage"),
            ),
            case(
                "the same cycle, allowed by the server",
                hop("User:jane", "Agent:intake", "Agent:triage")
                    .via(&["Agent:intake", "Agent:triage"])
                    .scopes(&["symptoms.read"]),
                allow(&["symptoms.read"]).ttl(600).by(&[
                    "intake-invokes-triage",
                    "intake-hands-over-to-triage",
                    "patients-own-intake-workflow",
                ]),
            )
            .with(cycles_allowed.clone()),
            case(
                "a callee calling back into its own chain is a cycle",
                hop("Service:monitoring", "Agent:log-analysis", "Agent:diagnostics")
                    .via(&["Agent:diagnostics"])
                    .scopes(&["logs.read"]),
                deny(DenialCode::ChainCycle).hop_denies(&["logs.read"]),
            ),
            case(
                "the principal reappearing as caller is a cycle",
                hop("Service:monitoring", "Service:monitoring", "Agent:diagnostics")
                    .via(&["Agent:log-analysis"])
                    .scopes(&["logs.read"]),
                deny(DenialCode::ChainCycle)
                    .hop_denies(&["logs.read"])
                    .chain("Service:monitoring Agent:log-analysis Service:monitoring Agent:diagnostics"),
            ),
            case(
                "depth is judged before cycles",
                scheduling(&[
                    "Agent:intake",
                    "Agent:intake",
                    "Agent:intake",
                    "Agent:intake",
                ]),
                too_deep(),
            ),
            case(
                "allowing cycles does not lift the depth limit",
                scheduling(&[
                    "Agent:intake",
                    "Agent:intake",
                    "Agent:intake",
                    "Agent:intake",
                ]),
                too_deep(),
            )
            .with(cycles_allowed),
        ],
    );
}

// ---- inputs the core refuses ----

#[test]
fn malformed_requests_are_refused_naming_the_field() {
    let bundle = shipped();
    let analyst = || hop("User:alice", "Agent:user-assistant", "Agent:data-analyst");
    let cases: Vec<(&str, DecisionRequest, &[&str])> = vec![
        (
            "a user as callee",
            hop("User:alice", "Agent:user-assistant", "User:bob").scopes(&["reports.generate"]),
            &["callee.type"],
        ),
        (
            "a service as callee",
            direct("Service:monitoring", "Service:batch-export").scopes(&["logs.read"]),
            &["callee.type"],
        ),
        (
            "a user calling for someone else",
            hop("User:bob", "User:alice", "Agent:data-analyst").scopes(&["reports.generate"]),
            &["caller.type"],
        ),
        (
            "a user calling for itself through a chain",
            hop("User:alice", "User:alice", "Agent:data-analyst")
                .via(&["Agent:user-assistant"])
                .scopes(&["reports.generate"]),
            &["caller.type"],
        ),
        (
            "a user as an intermediate actor",
            hop("User:alice", "Agent:data-analyst", "Agent:database-agent")
                .via(&["Agent:user-assistant", "User:bob"])
                .scopes(&["finance.read"]),
            &["delegation_chain[1].type"],
        ),
        (
            "every role violation at once",
            hop("User:alice", "User:bob", "User:carol")
                .via(&["User:dave"])
                .scopes(&["finance.read"]),
            &["callee.type", "caller.type", "delegation_chain[0].type"],
        ),
        (
            "a tool calling onwards",
            hop("User:alice", "Tool:sql-query", "Agent:data-analyst")
                .via(&["Agent:user-assistant"])
                .scopes(&["reports.generate"]),
            &["caller.type"],
        ),
        (
            "a tool as an intermediate actor",
            hop("User:alice", "Agent:data-analyst", "Agent:database-agent")
                .via(&["Tool:sql-query"])
                .scopes(&["finance.read"]),
            &["delegation_chain[0].type"],
        ),
        (
            "a tool as principal",
            hop(
                "Tool:sql-query",
                "Agent:user-assistant",
                "Agent:data-analyst",
            )
            .scopes(&["reports.generate"]),
            &["principal.type"],
        ),
        (
            "a resource type the bundle does not declare",
            hop("User:alice", "Agent:database-agent", "Dataset:q4")
                .via(&["Agent:user-assistant", "Agent:data-analyst"])
                .scopes(&["db.read"]),
            &["callee.type"],
        ),
        (
            "an attribute the schema does not declare",
            analyst()
                .scopes(&["reports.generate"])
                .task(json!({ "priority": "high" })),
            &["context"],
        ),
        (
            "attributes at the top level instead of the task's",
            analyst()
                .scopes(&["reports.generate"])
                .task(json!({ "delegated": false })),
            &["context"],
        ),
    ];
    assert_refused_naming(&bundle, cases);
}

fn assert_refused_naming(bundle: &PolicyBundle, cases: Vec<(&str, DecisionRequest, &[&str])>) {
    for (name, request, fields) in cases {
        let err = match decide(bundle, &request, &DecisionSettings::default()) {
            Err(err) => err,
            Ok(outcome) => panic!("case `{name}`: must be refused as invalid, got {outcome:#?}"),
        };
        let named: Vec<&str> = err.violations.iter().map(|v| v.field.as_str()).collect();
        // A violation may name a part of the field, such as `context.amount` for `context`.
        let names = |field: &str, expected: &str| {
            field == expected
                || field.starts_with(&format!("{expected}."))
                || field.starts_with(&format!("{expected}["))
        };
        assert!(
            named.len() == fields.len() && named.iter().zip(fields).all(|(n, f)| names(n, f)),
            "case `{name}`: expected violations of {fields:?}, got {named:?}"
        );
        assert!(
            err.violations.iter().all(|v| !v.description.is_empty()),
            "case `{name}`: every violation says what is wrong: {err}"
        );
    }
}

/// Task attributes of the wrong type: `amount` is a `Long`, `quarter` and `currency` strings.
fn mistyped_tasks() -> Vec<(&'static str, DecisionRequest)> {
    let analyst = |task| {
        hop("User:alice", "Agent:user-assistant", "Agent:data-analyst")
            .scopes(&["reports.generate"])
            .task(task)
    };
    vec![
        (
            "an amount that is not a number",
            analyst(json!({ "amount": "lots" })),
        ),
        (
            "a quarter that is not a string",
            analyst(json!({ "quarter": 4 })),
        ),
        (
            "a nested value where a string belongs",
            analyst(json!({ "currency": { "code": "EUR" } })),
        ),
        ("a boolean amount", analyst(json!({ "amount": true }))),
    ]
}

#[test]
fn mistyped_task_attributes_are_refused_naming_the_context() {
    let cases = mistyped_tasks()
        .into_iter()
        .map(|(name, request)| (name, request, &["context"][..]))
        .collect();
    assert_refused_naming(&shipped(), cases);
}

#[test]
fn well_typed_tasks_and_roles_are_accepted() {
    let bundle = shipped();
    let cases = [
        (
            "every declared attribute",
            hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
                .scopes(&["transactions.read"])
                .task(json!({
                    "amount": 12, "currency": "EUR", "quarter": "Q4", "reason": "duplicate charge"
                })),
        ),
        (
            "no attribute at all",
            hop("User:bob", "Agent:support-assistant", "Agent:refund-agent")
                .scopes(&["transactions.read"]),
        ),
        (
            "a service as intermediate actor",
            hop(
                "Service:monitoring",
                "Agent:log-analysis",
                "Agent:diagnostics",
            )
            .via(&["Service:batch-export"])
            .scopes(&["logs.read"]),
        ),
        (
            "a user calling for itself",
            direct("User:jane", "Agent:intake").scopes(&["intake.submit"]),
        ),
    ];
    for (name, request) in cases {
        let outcome = decide(&bundle, &request, &DecisionSettings::default())
            .unwrap_or_else(|e| panic!("case `{name}`: refused as invalid: {e}"));
        assert_invariants(&bundle, name, &request, &outcome);
    }
}

#[test]
fn identical_questions_get_identical_outcomes() {
    let bundle = shipped();
    let request = hop("User:alice", "Agent:data-analyst", "Agent:database-agent")
        .via(&["Agent:user-assistant"])
        .ceiling(&["finance.read", "reports.generate"])
        .scopes(&["finance.read", "reports.generate", "payroll.run"]);
    let settings = DecisionSettings::default();
    let first = decide(&bundle, &request, &settings).unwrap();
    let again = decide(&shipped(), &request, &settings).unwrap();
    assert_eq!(first, again);
    assert_eq!(first.granted, ["finance.read"]);
}

/// The shipped bundle plus a forbid on report generation whose condition overflows (an
/// evaluation error) on any delegated hop, while the shipped permits still match.
fn bundle_with_an_erroring_forbid() -> PolicyBundle {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let mut files = baton::bundle::read_dir(Path::new(dir)).unwrap();
    files.push(SourceFile {
        name: "zz_overflow.cedar".into(),
        text: "@id(\"overflowing-forbid\")\nforbid (principal, action == Action::\"reports.generate\", resource == Agent::\"data-analyst\")\nwhen { context.depth * 9223372036854775807 > 0 };\n".into(),
    });
    PolicyBundle::compile(files).unwrap()
}

#[test]
fn an_erroring_policy_is_never_explained_by_the_permit_that_matched() {
    let bundle = bundle_with_an_erroring_forbid();
    let request = hop("User:alice", "Agent:user-assistant", "Agent:data-analyst")
        .scopes(&["reports.generate", "finance.read"]);
    let outcome = decide(&bundle, &request, &DecisionSettings::default()).unwrap();
    // finance.read is still granted; reports.generate is refused, failing closed.
    assert_eq!(outcome.effect, Effect::Allow);
    let refusal = &outcome.refused[0];
    assert_eq!(refusal.scope, "reports.generate");
    assert_eq!(refusal.reason, RefusalReason::EvaluationError);
    assert_eq!(refusal.policy_ids, ["overflowing-forbid"], "{refusal:?}");
    assert!(refusal.detail.contains("overflowing-forbid"), "{refusal:?}");

    // Alone, the refusal makes a DENY whose determining policies are forbids only: none
    // matched, so none.
    let request = hop("User:alice", "Agent:user-assistant", "Agent:data-analyst")
        .scopes(&["reports.generate"]);
    let outcome = decide(&bundle, &request, &DecisionSettings::default()).unwrap();
    assert_eq!(outcome.effect, Effect::Deny);
    assert_eq!(outcome.refused[0].policy_ids, ["overflowing-forbid"]);
    assert!(
        outcome.determining_policies.is_empty(),
        "{:?}",
        outcome.determining_policies
    );
}

#[test]
fn a_chain_ends_at_a_tool_under_the_same_rules() {
    let bundle = shipped();
    let settings = DecisionSettings::default();
    let to_tool = |principal: &str| {
        hop(principal, "Agent:database-agent", "Tool:sql-query")
            .via(&["Agent:user-assistant", "Agent:data-analyst"])
            .ceiling(&["db.read", "finance.read"])
            .scopes(&["db.read", "finance.read"])
    };
    let outcome = decide(&bundle, &to_tool("User:alice"), &settings).unwrap();
    assert_eq!(outcome.effect, Effect::Allow);
    assert_eq!(outcome.granted, ["db.read"]);
    assert_eq!(outcome.chain.len(), 5, "principal, three agents, the tool");
    assert_eq!(outcome.chain[4], identity("Tool:sql-query"));
    assert!(
        outcome
            .determining_policies
            .contains(&"database-runs-sql-reads".to_owned())
    );
    // Session length: the tool's own permit is the shortest.
    assert_eq!(outcome.ttl_secs, 120);

    // The principal's rights bound the tool hop too: dave is not in finance.
    let dave = decide(&bundle, &to_tool("User:dave"), &settings).unwrap();
    assert_eq!(dave.effect, Effect::Deny);
    assert_eq!(dave.refused[0].reason, NotPermittedForPrincipal);
    // The ceiling bounds it: nothing above the previous grant.
    let narrowed = decide(
        &bundle,
        &to_tool("User:alice").ceiling(&["finance.read"]),
        &settings,
    )
    .unwrap();
    assert_eq!(narrowed.refused[0].reason, AboveCeiling);
    // The connection allowlist holds: only the database agent may run the tool.
    let analyst = decide(
        &bundle,
        &hop("User:alice", "Agent:data-analyst", "Tool:sql-query")
            .via(&["Agent:user-assistant"])
            .scopes(&["db.read"]),
        &settings,
    )
    .unwrap();
    assert_eq!(
        analyst.denial.map(|d| d.code),
        Some(DenialCode::ConnectionNotAllowed)
    );
}
