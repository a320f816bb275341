//! Runs a bundle's own test cases through the decision core, as a push or `baton policy test`
//! does before anything is activated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::decide::{DecisionSettings, decide};
use super::outcome::{DecisionKind, Effect, Outcome};
use super::request::DecisionRequest;
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
            let problems = match decide(bundle, &request(case), settings) {
                Ok(outcome) => compare(&case.expect, &outcome, settings),
                Err(e) => vec![format!("the request is invalid: {e}")],
            };
            (!problems.is_empty()).then(|| CaseFailure {
                file: case.file.clone(),
                line: case.line,
                name: case.name.clone(),
                problems,
            })
        })
        .collect();
    SuiteReport {
        run: bundle.cases().len(),
        failures,
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
fn kind(outcome: &Outcome, settings: &DecisionSettings) -> DecisionKind {
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
