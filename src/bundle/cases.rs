//! A bundle's own test cases: requests with the decisions their authors expect. A bundle whose
//! cases fail is never activated, as with `opa test` or a Cerbos test suite.
//!
//! The file is JSON, `tests.json` or `*.tests.json`:
//!
//! ```json
//! { "cases": [ {
//!     "name": "alice's assistant gets the finance report",
//!     "caller": "Agent:user-assistant", "callee": "Agent:data-analyst", "principal": "User:alice",
//!     "scopes": ["reports.generate", "finance.read"],
//!     "expect": { "decision": "ALLOW", "granted": ["reports.generate", "finance.read"],
//!                 "ttl_secs": 900,
//!                 "determining_policies": ["assistant-invokes-analyst", "assistant-scopes-at-analyst"] }
//! } ] }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::diagnostic::BundleDiagnostic;
use super::source::{SourceFile, SourceKind};
use crate::identity::{Identity, IdentityKind};

/// One request and what the bundle must answer to it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    /// The file that holds the case, and the line of its name, for reports.
    pub file: String,
    /// The line of the case's name, counted from 1.
    pub line: usize,
    /// Unique within its file; failures name it.
    pub name: String,
    /// The identity making the call.
    pub caller: Identity,
    /// The agent being called.
    pub callee: Identity,
    /// On whose behalf; the caller itself when the case names none.
    pub principal: Identity,
    /// The scopes requested, at least one.
    pub scopes: Vec<String>,
    /// Task attributes, as `context.task`; empty when the case gives none.
    pub context: Map<String, Value>,
    /// Actors between the principal and the caller, earliest first.
    pub delegation_chain: Vec<Identity>,
    /// The previous hop's grant; `None` for a first hop.
    pub ceiling: Option<Vec<String>>,
    /// What the bundle must answer.
    pub expect: Expectation,
}

/// What a case expects. Only `decision` is required; every other field, when present, must
/// match exactly (as a set, for scopes, obligations and policies). Serialized as written, for
/// reports that show what was expected beside what came.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The answer expected.
    pub decision: ExpectedDecision,
    /// The granted scopes, compared as a set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<Vec<String>>,
    /// Refused scope to its reason, such as `FORBIDDEN_BY_POLICY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<BTreeMap<String, String>>,
    /// The obligations, compared as a set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub obligations: Option<Vec<String>>,
    /// The denial code of a denied hop, such as `CONNECTION_NOT_ALLOWED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<String>,
    /// The session length the hop gets, in seconds, after the settings' default and cap; only
    /// an allowed hop (or one awaiting approval) has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// The policies that decided, by `@id` (or `file#n` without one), compared as a set: the
    /// permits behind an allow, the forbids behind a deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub determining_policies: Option<Vec<String>>,
}

/// The answer a case expects, as `Authorize` would give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExpectedDecision {
    /// The hop is allowed and needs no human approval.
    Allow,
    /// The hop is denied.
    Deny,
    /// The policies allow, but only once a human approves: the permit carries the server's
    /// approval obligation.
    ApprovalRequired,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    cases: Vec<RawCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    caller: String,
    callee: String,
    /// The caller itself when absent.
    principal: Option<String>,
    scopes: Vec<String>,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    delegation_chain: Vec<String>,
    ceiling: Option<Vec<String>>,
    expect: Expectation,
}

/// Reads the cases of every tests file, reporting each problem at its location.
pub(super) fn parse_all(files: &[SourceFile], errors: &mut Vec<BundleDiagnostic>) -> Vec<TestCase> {
    let mut cases = Vec::new();
    for file in files.iter().filter(|f| f.kind() == Some(SourceKind::Tests)) {
        let parsed: CasesFile = match serde_json::from_str(&file.text) {
            Ok(parsed) => parsed,
            Err(e) => {
                errors.push(BundleDiagnostic {
                    file: super::diagnostic::clip(&file.name),
                    line: e.line().max(1),
                    column: e.column().max(1),
                    message: super::diagnostic::clip(&format!("invalid test cases: {e}")),
                });
                continue;
            }
        };
        let mut names = std::collections::HashSet::new();
        for (i, raw) in parsed.cases.into_iter().enumerate() {
            let at = locate_name(&file.text, &raw.name);
            let line = BundleDiagnostic::at_offset(&file.name, &file.text, at, "").line;
            let label = format!("case {} `{}`", i + 1, raw.name);
            let mut fail = |problem: String| {
                errors.push(BundleDiagnostic::at_offset(
                    &file.name,
                    &file.text,
                    at,
                    format!("{label}: {problem}"),
                ));
            };
            if !names.insert(raw.name.clone()) {
                fail("another case has the same name".to_owned());
                continue;
            }
            match case(raw, &file.name, line) {
                Ok(case) => cases.push(case),
                Err(problem) => fail(problem),
            }
        }
    }
    cases
}

fn case(raw: RawCase, file: &str, line: usize) -> Result<TestCase, String> {
    let caller = identity("caller", &raw.caller, IdentityKind::parse)?;
    let principal = match &raw.principal {
        Some(p) => identity("principal", p, IdentityKind::parse)?,
        None => caller.clone(),
    };
    let delegation_chain = raw
        .delegation_chain
        .iter()
        .enumerate()
        .map(|(i, s)| identity(&format!("delegation_chain[{i}]"), s, IdentityKind::parse))
        .collect::<Result<_, _>>()?;
    if raw.scopes.is_empty() {
        return Err("`scopes` must name at least one scope".to_owned());
    }
    if raw.expect.decision == ExpectedDecision::Deny && raw.expect.ttl_secs.is_some() {
        return Err(
            "`expect.ttl_secs` is for an allowed hop; a denied one has no session".to_owned(),
        );
    }
    Ok(TestCase {
        file: file.to_owned(),
        line,
        callee: identity("callee", &raw.callee, IdentityKind::parse_any)?,
        caller,
        principal,
        name: raw.name,
        scopes: raw.scopes,
        context: raw.context,
        delegation_chain,
        ceiling: raw.ceiling,
        expect: raw.expect,
    })
}

/// Reports every expected determining policy that the bundle does not hold, at its case: a
/// misspelt id would otherwise only ever fail, never point at the typo.
pub(super) fn check_policy_ids(
    cases: &[TestCase],
    files: &[SourceFile],
    holds: impl Fn(&str) -> bool,
    errors: &mut Vec<BundleDiagnostic>,
) {
    for case in cases {
        let Some(expected) = &case.expect.determining_policies else {
            continue;
        };
        let unknown: Vec<String> = expected
            .iter()
            .filter(|id| !holds(id))
            .map(|id| format!("`{id}`"))
            .collect();
        if unknown.is_empty() {
            continue;
        }
        let text = files
            .iter()
            .find(|f| f.name == case.file)
            .map_or("", |f| f.text.as_str());
        errors.push(BundleDiagnostic::at_offset(
            &case.file,
            text,
            locate_name(text, &case.name),
            format!(
                "case `{}`: `expect.determining_policies` names {}, which the bundle does not hold",
                case.name,
                unknown.join(", ")
            ),
        ));
    }
}

/// `Type:id`, the type read by `kind` (acting kinds only, or resource types too for a callee).
fn identity(
    field: &str,
    s: &str,
    kind: fn(&str) -> Option<IdentityKind>,
) -> Result<Identity, String> {
    let parsed = s.split_once(':').and_then(|(k, id)| {
        let k = kind(k)?;
        (!id.is_empty()).then(|| Identity::new(k, id))
    });
    parsed.ok_or_else(|| {
        format!("`{field}` must be `Type:id` with a type of User, Service or Agent (or a resource type, for the callee), got `{s}`")
    })
}

/// The byte offset of a case's name in its file. serde_json keeps no spans for values, so the
/// first occurrence of the quoted name stands in; names are unique within a file.
fn locate_name(text: &str, name: &str) -> usize {
    serde_json::to_string(name)
        .ok()
        .and_then(|quoted| text.find(&quoted))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tests_file(text: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            name: "tests.json".into(),
            text: text.into(),
        }]
    }

    #[test]
    fn cases_parse_with_defaults_and_locations() {
        let text = r#"{"cases": [
  {"name": "a", "caller": "Agent:x", "callee": "Agent:y", "scopes": ["read"],
   "expect": {"decision": "ALLOW", "granted": ["read"]}}
]}"#;
        let mut errors = Vec::new();
        let cases = parse_all(&tests_file(text), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].principal, Identity::new(IdentityKind::Agent, "x"));
        assert_eq!(cases[0].line, 2);
        assert_eq!(cases[0].expect.decision, ExpectedDecision::Allow);
    }

    #[test]
    fn malformed_cases_are_located() {
        let mut errors = Vec::new();
        parse_all(&tests_file("{\"cases\": [\n  {\"nme\": 1}]}"), &mut errors);
        assert_eq!((errors[0].file.as_str(), errors[0].line), ("tests.json", 2));

        let text = r#"{"cases": [
  {"name": "bad", "caller": "Robot:x", "callee": "Agent:y", "scopes": ["read"],
   "expect": {"decision": "DENY"}}]}"#;
        let mut errors = Vec::new();
        parse_all(&tests_file(text), &mut errors);
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("`caller`"), "{}", errors[0]);
    }

    #[test]
    fn ttl_and_determining_policies_are_expectations() {
        let text = r#"{"cases": [
  {"name": "a", "caller": "Agent:x", "callee": "Agent:y", "scopes": ["read"],
   "expect": {"decision": "APPROVAL_REQUIRED", "ttl_secs": 120,
              "determining_policies": ["p", "q"]}}
]}"#;
        let mut errors = Vec::new();
        let cases = parse_all(&tests_file(text), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let expect = &cases[0].expect;
        assert_eq!(expect.decision, ExpectedDecision::ApprovalRequired);
        assert_eq!(expect.ttl_secs, Some(120));
        assert_eq!(
            expect.determining_policies.as_deref(),
            Some(&["p".to_owned(), "q".to_owned()][..])
        );
        // Reports show only what the author wrote.
        assert_eq!(
            serde_json::to_value(expect).unwrap(),
            serde_json::json!({"decision": "APPROVAL_REQUIRED", "ttl_secs": 120,
                               "determining_policies": ["p", "q"]})
        );
    }

    #[test]
    fn a_ttl_on_a_deny_and_an_unknown_policy_are_located_errors() {
        let text = r#"{"cases": [
  {"name": "denied", "caller": "Agent:x", "callee": "Agent:y", "scopes": ["read"],
   "expect": {"decision": "DENY", "ttl_secs": 60}},
  {"name": "typo", "caller": "Agent:x", "callee": "Agent:y", "scopes": ["read"],
   "expect": {"decision": "DENY", "determining_policies": ["known", "knwon"]}}
]}"#;
        let files = tests_file(text);
        let mut errors = Vec::new();
        let cases = parse_all(&files, &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 2);
        assert!(
            errors[0].message.contains("`expect.ttl_secs`"),
            "{}",
            errors[0]
        );

        check_policy_ids(&cases, &files, |id| id == "known", &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[1].line, 4);
        assert!(
            errors[1].message.contains("names `knwon`") && !errors[1].message.contains("`known`"),
            "{}",
            errors[1]
        );
    }
}
