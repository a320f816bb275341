//! Runs a bundle's own test cases through the decision core, as a push or `baton policy test`
//! does before anything is activated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::decide::{DecisionSettings, decide};
use super::outcome::{DecisionKind, Effect, Outcome, RefusalReason};
use super::request::{DecisionRequest, InvalidRequest};
use crate::bundle::{Expectation, ExpectedDecision, PolicyBundle, TestCase};

/// A case whose decision differs from the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// The test file that holds the case.
    pub file: String,
    /// The line of the case's name in that file, counted from 1.
    pub line: usize,
    /// The case's name, unique within its file.
    pub name: String,
    /// Every difference, in a sentence each.
    pub problems: Vec<String>,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: case `{}` failed: {}",
            self.file,
            self.line,
            self.name,
            self.problems.join("; ")
        )
    }
}

/// How a bundle fared against its own cases.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SuiteReport {
    /// How many cases ran: every case of the bundle.
    pub run: usize,
    /// The cases that failed, in the bundle's order.
    pub failures: Vec<CaseFailure>,
}

impl SuiteReport {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Decides every case of `bundle` under `settings` and compares with what the case expects.
pub fn run_cases(bundle: &PolicyBundle, settings: &DecisionSettings) -> SuiteReport {
    let failures = bundle
        .cases()
        .iter()
        .filter_map(|case| {
            let run = run_case(bundle, case, settings);
            (!run.problems.is_empty()).then(|| CaseFailure {
                file: case.file.clone(),
                line: case.line,
                name: case.name.clone(),
                problems: run.problems,
            })
        })
        .collect();
    SuiteReport {
        run: bundle.cases().len(),
        failures,
    }
}

/// What one case got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRun {
    /// The decision, or why the case's request is invalid (the case is then wrong, whatever
    /// it expects).
    pub result: Result<Decided, InvalidRequest>,
    /// Every difference from the expectation, in a sentence each; empty when the case passed.
    pub problems: Vec<String>,
}

/// A case's decision, as `Authorize` would answer a first ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// What the caller would be told.
    pub kind: DecisionKind,
    /// What the core decided.
    pub outcome: Outcome,
}

impl CaseRun {
    /// Whether the case got what it expects.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Decides one case under `settings` and compares with what it expects.
pub fn run_case(bundle: &PolicyBundle, case: &TestCase, settings: &DecisionSettings) -> CaseRun {
    match decide(bundle, &request(case), settings) {
        Ok(outcome) => CaseRun {
            problems: compare(&case.expect, &outcome, settings),
            result: Ok(Decided {
                kind: kind(&outcome, settings),
                outcome,
            }),
        },
        Err(e) => CaseRun {
            problems: vec![format!("the request is invalid: {e}")],
            result: Err(e),
        },
    }
}

/// Which policies a set of cases left untried.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    /// How many policies the bundle holds.
    pub policies: usize,
    /// The policies no case exercised, in source order: none decided any case, either as a
    /// determining policy or as a forbid that refused one of its scopes.
    pub unexercised: Vec<String>,
    /// The forbids that never matched in any case, in source order; all of them are also
    /// [`Self::unexercised`], since a forbid that matches decides.
    pub forbids_never_matched: Vec<String>,
}

impl Coverage {
    /// The coverage of `bundle` by the cases whose outcomes are `outcomes`. A policy counts as
    /// exercised when it is among an outcome's determining policies, or when it refused one of
    /// its scopes: a forbid that takes one scope out of an allowed hop decided that scope,
    /// though the hop's determining policies are its permits. A policy that only failed to
    /// evaluate decided nothing.
    pub fn of<'o>(bundle: &PolicyBundle, outcomes: impl IntoIterator<Item = &'o Outcome>) -> Self {
        let mut exercised: BTreeSet<&str> = BTreeSet::new();
        for outcome in outcomes {
            exercised.extend(outcome.determining_policies.iter().map(String::as_str));
            exercised.extend(
                outcome
                    .refused
                    .iter()
                    .filter(|r| r.reason == RefusalReason::ForbiddenByPolicy)
                    .flat_map(|r| r.policy_ids.iter().map(String::as_str)),
            );
        }
        let mut coverage = Self {
            policies: bundle.policy_count(),
            ..Self::default()
        };
        for policy in bundle.policies() {
            let id = policy.id().to_string();
            if exercised.contains(id.as_str()) {
                continue;
            }
            if policy.effect() == cedar_policy::Effect::Forbid {
                coverage.forbids_never_matched.push(id.clone());
            }
            coverage.unexercised.push(id);
        }
        coverage
    }
}

fn request(case: &TestCase) -> DecisionRequest {
    DecisionRequest {
        scopes: case.scopes.clone(),
        context: case.context.clone(),
        delegation_chain: case.delegation_chain.clone(),
        ceiling: case.ceiling.as_ref().map(|c| c.iter().cloned().collect()),
        ..DecisionRequest::new(
            case.caller.clone(),
            case.callee.clone(),
            case.principal.clone(),
        )
    }
}

/// What `Authorize` would answer a first ask of the case: no approval has been given yet.
pub(crate) fn kind(outcome: &Outcome, settings: &DecisionSettings) -> DecisionKind {
    match outcome.effect {
        Effect::Allow if outcome.needs_approval(&settings.approval_obligation) => {
            DecisionKind::ApprovalRequired
        }
        Effect::Allow => DecisionKind::Allow,
        Effect::Deny => DecisionKind::Deny,
    }
}

fn compare(expect: &Expectation, outcome: &Outcome, settings: &DecisionSettings) -> Vec<String> {
    let mut problems = Vec::new();
    let expected = match expect.decision {
        ExpectedDecision::Allow => DecisionKind::Allow,
        ExpectedDecision::Deny => DecisionKind::Deny,
        ExpectedDecision::ApprovalRequired => DecisionKind::ApprovalRequired,
    };
    let got = kind(outcome, settings);
    if got != expected {
        let why = match (&outcome.denial, got) {
            (Some(d), _) => format!(" ({}: {})", name_of(&d.code), d.detail),
            (None, DecisionKind::ApprovalRequired) => format!(
                " (a determining permit carries `{}`, which only a human's approval meets)",
                settings.approval_obligation
            ),
            (None, _) => String::new(),
        };
        problems.push(format!(
            "expected {}, got {}{why}",
            expected.as_str(),
            got.as_str()
        ));
    }
    if let Some(granted) = &expect.granted {
        let want: BTreeSet<&str> = granted.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = outcome.granted.iter().map(String::as_str).collect();
        if want != got {
            problems.push(format!(
                "expected granted {}, got {}",
                list(&want),
                list(&got)
            ));
        }
    }
    if let Some(refused) = &expect.refused {
        let got: BTreeMap<&str, String> = outcome
            .refused
            .iter()
            .map(|r| (r.scope.as_str(), name_of(&r.reason)))
            .collect();
        let want: BTreeMap<&str, String> = refused
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if want != got {
            problems.push(format!("expected refused {want:?}, got {got:?}"));
        }
    }
    if let Some(obligations) = &expect.obligations {
        let want: BTreeSet<&str> = obligations.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = outcome.obligations.iter().map(String::as_str).collect();
        if want != got {
            problems.push(format!(
                "expected obligations {}, got {}",
                list(&want),
                list(&got)
            ));
        }
    }
    if let Some(ttl) = expect.ttl_secs
        && ttl != outcome.ttl_secs
    {
        problems.push(format!("expected ttl_secs {ttl}, got {}", outcome.ttl_secs));
    }
    if let Some(policies) = &expect.determining_policies {
        let want: BTreeSet<&str> = policies.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = outcome
            .determining_policies
            .iter()
            .map(String::as_str)
            .collect();
        if want != got {
            problems.push(format!(
                "expected determining policies {}, got {}",
                list(&want),
                list(&got)
            ));
        }
    }
    if let Some(denial) = &expect.denial {
        let got = outcome.denial.as_ref().map(|d| name_of(&d.code));
        if got.as_deref() != Some(denial.as_str()) {
            problems.push(format!(
                "expected denial {denial}, got {}",
                got.as_deref().unwrap_or("none")
            ));
        }
    }
    problems
}

/// The wire spelling of an outcome enum, such as `FORBIDDEN_BY_POLICY`.
fn name_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn list(items: &BTreeSet<&str>) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        format!("[{}]", items.iter().copied().collect::<Vec<_>>().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::SourceFile;

    const SCHEMA: &str = include_str!("../../policies/baton.cedarschema");

    const POLICIES: &str = r#"
@id("a-invokes-b")
permit (principal == Agent::"a", action == Action::"invoke", resource == Agent::"b");
@id("a-reads-at-b")
@ttl("60")
permit (principal == Agent::"a", action == Action::"logs.read", resource == Agent::"b");
@id("a-writes-at-b")
permit (principal == Agent::"a", action == Action::"metrics.read", resource == Agent::"b");
@id("no-big-writes")
forbid (principal, action == Action::"metrics.read", resource)
when { context.task has amount && context.task.amount > 10 };
@id("never-c")
forbid (principal, action, resource == Agent::"c");
permit (principal == Agent::"x", action == Action::"invoke", resource == Agent::"b");
"#;

    fn bundle(cases: &str) -> PolicyBundle {
        let file = |name: &str, text: &str| SourceFile {
            name: name.into(),
            text: text.into(),
        };
        PolicyBundle::compile(vec![
            file("baton.cedarschema", SCHEMA),
            file("p.cedar", POLICIES),
            file("tests.json", cases),
        ])
        .unwrap()
    }

    fn case(name: &str, task: &str, scopes: &str, expect: &str) -> String {
        format!(
            r#"{{"name": "{name}", "caller": "Agent:a", "callee": "Agent:b",
                "context": {task}, "scopes": {scopes}, "expect": {expect}}}"#
        )
    }

    #[test]
    fn ttl_and_determining_policies_are_compared() {
        let cases = [
            case(
                "right",
                "{}",
                r#"["logs.read"]"#,
                r#"{"decision": "ALLOW", "ttl_secs": 60,
                    "determining_policies": ["a-invokes-b", "a-reads-at-b"]}"#,
            ),
            case(
                "wrong",
                "{}",
                r#"["metrics.read"]"#,
                r#"{"decision": "ALLOW", "ttl_secs": 60,
                    "determining_policies": ["a-writes-at-b"]}"#,
            ),
        ];
        let bundle = bundle(&format!(r#"{{"cases": [{}]}}"#, cases.join(",")));
        let settings = DecisionSettings {
            default_ttl_secs: 30,
            ..DecisionSettings::default()
        };
        let right = run_case(&bundle, &bundle.cases()[0], &settings);
        assert!(right.passed(), "{:?}", right.problems);
        let wrong = run_case(&bundle, &bundle.cases()[1], &settings);
        assert_eq!(
            wrong.problems,
            [
                "expected ttl_secs 60, got 30",
                "expected determining policies [a-writes-at-b], got [a-invokes-b, a-writes-at-b]"
            ]
        );
        assert_eq!(wrong.result.unwrap().kind, DecisionKind::Allow);
    }

    #[test]
    fn coverage_names_what_no_case_decided() {
        // A write of 20 is refused by a forbid while the read goes through: the forbid decided
        // that scope, though the hop's determining policies are the permits.
        let cases = [case(
            "mixed",
            r#"{"amount": 20}"#,
            r#"["logs.read", "metrics.read"]"#,
            r#"{"decision": "ALLOW", "granted": ["logs.read"],
                "refused": {"metrics.read": "FORBIDDEN_BY_POLICY"}}"#,
        )];
        let bundle = bundle(&format!(r#"{{"cases": [{}]}}"#, cases.join(",")));
        let settings = DecisionSettings::default();
        let runs: Vec<CaseRun> = bundle
            .cases()
            .iter()
            .map(|c| run_case(&bundle, c, &settings))
            .collect();
        assert!(runs[0].passed(), "{:?}", runs[0].problems);
        let coverage = Coverage::of(
            &bundle,
            runs.iter().map(|r| &r.result.as_ref().unwrap().outcome),
        );
        assert_eq!(coverage.policies, 6);
        // `a-writes-at-b` matched too, but the forbid overrode it: it decided nothing.
        assert_eq!(
            coverage.unexercised,
            ["a-writes-at-b", "never-c", "p.cedar#6"]
        );
        assert_eq!(coverage.forbids_never_matched, ["never-c"]);

        let none = Coverage::of(&bundle, []);
        assert_eq!(none.unexercised.len(), 6);
        assert_eq!(none.forbids_never_matched, ["no-big-writes", "never-c"]);
    }
}
