//! `baton policy test`: a bundle's cases run locally, under the settings a deployment uses, and
//! reported as text for people or as JSON or JUnit XML for CI, with the policies no case
//! exercised.
//!
//! Exit codes: 0 when every selected case passed, 1 when one failed, 2 when the bundle does not
//! compile, a case's request is invalid, or `--filter` selects no case.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::serve::DecisionArgs;
use crate::bundle::{Expectation, PolicyBundle, TestCase};
use crate::decision::{CaseRun, Coverage, DecisionSettings, DenialCode, RefusalReason, run_case};

/// Every selected case passed.
const PASSED: u8 = 0;
/// A case got something other than it expects.
const FAILED: u8 = 1;
/// The bundle or its cases are invalid, so nothing they say can be trusted.
const INVALID: u8 = 2;

/// The arguments of `baton policy test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Bundle directory.
    pub dir: PathBuf,
    /// How to report: `text` for people; `json` (one object) or `junit` (XML) for CI, on
    /// standard output.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Run only the cases whose name contains this text or, when it holds `*`, `?` or `[`,
    /// matches it whole as a glob. Repeatable: a case runs when any filter selects it.
    #[arg(long, value_parser = CaseFilter::parse)]
    pub filter: Vec<CaseFilter>,
    /// The rules the cases are decided under, as `baton serve` takes them.
    #[command(flatten)]
    pub decision: DecisionArgs,
}

/// How `baton policy test` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A line per case, then the coverage and a summary.
    Text,
    /// One JSON object: the cases (expected beside what came) and the coverage.
    Json,
    /// JUnit XML: a test suite per tests file; the coverage goes to standard error.
    Junit,
}

/// Which cases `--filter` selects by name.
#[derive(Debug, Clone)]
pub enum CaseFilter {
    /// The name contains the text.
    Substring(String),
    /// The whole name matches the glob.
    Glob(glob::Pattern),
}

impl CaseFilter {
    /// A glob when `s` holds a glob's special characters, a substring otherwise.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains(['*', '?', '[']) {
            glob::Pattern::new(s)
                .map(Self::Glob)
                .map_err(|e| format!("`{s}` is not a valid glob: {e}"))
        } else {
            Ok(Self::Substring(s.to_owned()))
        }
    }

    /// Whether this filter selects the case named `name`.
    pub fn selects(&self, name: &str) -> bool {
        match self {
            Self::Substring(text) => name.contains(text.as_str()),
            Self::Glob(pattern) => pattern.matches(name),
        }
    }
}

/// One case as it ran.
struct Ran<'b> {
    case: &'b TestCase,
    run: CaseRun,
    took: Duration,
}

impl Ran<'_> {
    fn outcome(&self) -> CaseOutcome {
        match (&self.run.result, self.run.passed()) {
            (Err(_), _) => CaseOutcome::Invalid,
            (Ok(_), true) => CaseOutcome::Passed,
            (Ok(_), false) => CaseOutcome::Failed,
        }
    }

    /// The case's failure as `file:line: case `name` failed: …`.
    fn failure(&self) -> String {
        format!(
            "{}:{}: case `{}` failed: {}",
            self.case.file,
            self.case.line,
            self.case.name,
            self.run.problems.join("; ")
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum CaseOutcome {
    Passed,
    Failed,
    /// The case's request is one the core refuses to decide: the case is wrong.
    Invalid,
}

/// Runs the selected cases of the bundle in `args.dir` and reports them on standard output.
pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let bundle = match PolicyBundle::load(&args.dir) {
        Ok(bundle) => bundle,
        Err(e) => {
            super::validate::print_errors(&e);
            return Ok(ExitCode::from(INVALID));
        }
    };
    let settings = args.decision.settings();
    let selected: Vec<&TestCase> = bundle
        .cases()
        .iter()
        .filter(|c| args.filter.is_empty() || args.filter.iter().any(|f| f.selects(&c.name)))
        .collect();
    if selected.is_empty() && !args.filter.is_empty() {
        eprintln!(
            "no case of {} matches the filter{}",
            args.dir.display(),
            if args.filter.len() > 1 { "s" } else { "" }
        );
        return Ok(ExitCode::from(INVALID));
    }
    let started = Instant::now();
    let ran: Vec<Ran<'_>> = selected
        .into_iter()
        .map(|case| {
            let start = Instant::now();
            let run = run_case(&bundle, case, &settings);
            Ran {
                case,
                run,
                took: start.elapsed(),
            }
        })
        .collect();
    let took = started.elapsed();
    let coverage = Coverage::of(
        &bundle,
        ran.iter()
            .filter_map(|r| r.run.result.as_ref().ok().map(|d| &d.outcome)),
    );
    let not_selected = bundle.cases().len() - ran.len();

    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => {
            write!(out, "{}", text(&ran, &coverage, not_selected))?;
        }
        Format::Json => {
            let report = json(&args.dir, &bundle, &settings, &ran, &coverage, not_selected);
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        }
        Format::Junit => {
            out.write_all(junit(&ran, took)?.as_bytes())?;
            eprint!("{}", coverage_text(&coverage));
        }
    }
    out.flush()?;

    let outcomes: Vec<CaseOutcome> = ran.iter().map(Ran::outcome).collect();
    let code = if outcomes.contains(&CaseOutcome::Invalid) {
        INVALID
    } else if outcomes.contains(&CaseOutcome::Failed) {
        FAILED
    } else {
        PASSED
    };
    Ok(ExitCode::from(code))
}

fn text(ran: &[Ran<'_>], coverage: &Coverage, not_selected: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for r in ran {
        let _ = match r.outcome() {
            CaseOutcome::Passed => writeln!(out, "ok   {}", r.case.name),
            CaseOutcome::Failed => writeln!(out, "FAIL {}\n     {}", r.case.name, r.failure()),
            CaseOutcome::Invalid => writeln!(out, "ERR  {}\n     {}", r.case.name, r.failure()),
        };
    }
    out.push_str(&coverage_text(coverage));
    let count = |o| ran.iter().filter(|r| r.outcome() == o).count();
    let _ = write!(
        out,
        "{} case(s), {} passed, {} failed",
        ran.len(),
        count(CaseOutcome::Passed),
        count(CaseOutcome::Failed)
    );
    let invalid = count(CaseOutcome::Invalid);
    if invalid > 0 {
        let _ = write!(out, ", {invalid} invalid");
    }
    if not_selected > 0 {
        let _ = write!(out, " ({not_selected} not selected)");
    }
    out.push('\n');
    out
}

fn coverage_text(coverage: &Coverage) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "coverage: {} of {} policies exercised\n",
        coverage.policies - coverage.unexercised.len(),
        coverage.policies
    );
    for (title, ids) in [
        ("not exercised by any case", &coverage.unexercised),
        (
            "forbids that never matched",
            &coverage.forbids_never_matched,
        ),
    ] {
        if !ids.is_empty() {
            let _ = writeln!(out, "  {title}:");
            for id in ids {
                let _ = writeln!(out, "    {id}");
            }
        }
    }
    out
}

/// The JSON report: one object.
#[derive(Serialize)]
struct JsonReport<'a> {
    bundle: String,
    version: &'a str,
    settings: JsonSettings<'a>,
    summary: JsonSummary,
    cases: Vec<JsonCase<'a>>,
    coverage: JsonCoverage<'a>,
}

#[derive(Serialize)]
struct JsonSettings<'a> {
    max_depth: usize,
    allow_cycles: bool,
    max_ttl_secs: u64,
    default_ttl_secs: u64,
    approval_obligation: &'a str,
}

#[derive(Serialize)]
struct JsonSummary {
    run: usize,
    passed: usize,
    failed: usize,
    invalid: usize,
    not_selected: usize,
}

#[derive(Serialize)]
struct JsonCase<'a> {
    name: &'a str,
    file: &'a str,
    line: usize,
    outcome: CaseOutcome,
    /// As the case writes it: only the fields it gives.
    expected: &'a Expectation,
    /// What came, in the same shape; `null` when the request is invalid.
    got: Option<JsonGot<'a>>,
    /// Every difference, or why the request is invalid; empty when the case passed.
    problems: &'a [String],
    duration_ms: f64,
}

#[derive(Serialize)]
struct JsonGot<'a> {
    decision: &'static str,
    granted: &'a [String],
    refused: BTreeMap<&'a str, RefusalReason>,
    obligations: &'a [String],
    denial: Option<DenialCode>,
    ttl_secs: u64,
    determining_policies: &'a [String],
}

#[derive(Serialize)]
struct JsonCoverage<'a> {
    policies: usize,
    exercised: usize,
    unexercised: &'a [String],
    forbids_never_matched: &'a [String],
}

fn json<'a>(
    dir: &std::path::Path,
    bundle: &'a PolicyBundle,
    settings: &'a DecisionSettings,
    ran: &'a [Ran<'a>],
    coverage: &'a Coverage,
    not_selected: usize,
) -> JsonReport<'a> {
    let count = |o| ran.iter().filter(|r| r.outcome() == o).count();
    JsonReport {
        bundle: dir.display().to_string(),
        version: bundle.version(),
        settings: JsonSettings {
            max_depth: settings.max_depth,
            allow_cycles: settings.allow_cycles,
            max_ttl_secs: settings.max_ttl_secs,
            default_ttl_secs: settings.default_ttl_secs,
            approval_obligation: &settings.approval_obligation,
        },
        summary: JsonSummary {
            run: ran.len(),
            passed: count(CaseOutcome::Passed),
            failed: count(CaseOutcome::Failed),
            invalid: count(CaseOutcome::Invalid),
            not_selected,
        },
        cases: ran
            .iter()
            .map(|r| JsonCase {
                name: &r.case.name,
                file: &r.case.file,
                line: r.case.line,
                outcome: r.outcome(),
                expected: &r.case.expect,
                got: r.run.result.as_ref().ok().map(|d| JsonGot {
                    decision: d.kind.as_str(),
                    granted: &d.outcome.granted,
                    refused: d
                        .outcome
                        .refused
                        .iter()
                        .map(|s| (s.scope.as_str(), s.reason))
                        .collect(),
                    obligations: &d.outcome.obligations,
                    denial: d.outcome.denial.as_ref().map(|d| d.code),
                    ttl_secs: d.outcome.ttl_secs,
                    determining_policies: &d.outcome.determining_policies,
                }),
                problems: &r.run.problems,
                duration_ms: r.took.as_secs_f64() * 1000.0,
            })
            .collect(),
        coverage: JsonCoverage {
            policies: coverage.policies,
            exercised: coverage.policies - coverage.unexercised.len(),
            unexercised: &coverage.unexercised,
            forbids_never_matched: &coverage.forbids_never_matched,
        },
    }
}

/// The JUnit report: a `testsuite` per tests file, in the bundle's order, a `testcase` per
/// case with a `failure` (or, for an invalid request, an `error`) carrying its problems.
/// Written by quick-junit, which escapes every text and attribute.
fn junit(ran: &[Ran<'_>], took: Duration) -> anyhow::Result<String> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suites: Vec<TestSuite> = Vec::new();
    for r in ran {
        let status = match r.outcome() {
            CaseOutcome::Passed => TestCaseStatus::success(),
            outcome => {
                let (kind, ty) = if outcome == CaseOutcome::Invalid {
                    (NonSuccessKind::Error, "invalid request")
                } else {
                    (NonSuccessKind::Failure, "expectation")
                };
                let mut status = TestCaseStatus::non_success(kind);
                status
                    .set_message(r.run.problems.join("; "))
                    .set_type(ty)
                    .set_description(r.failure());
                status
            }
        };
        let mut case = TestCase::new(r.case.name.as_str(), status);
        case.set_classname(r.case.file.as_str()).set_time(r.took);
        match suites.iter_mut().find(|s| s.name.as_str() == r.case.file) {
            Some(suite) => {
                suite.add_test_case(case);
            }
            None => {
                let mut suite = TestSuite::new(r.case.file.as_str());
                suite.add_test_case(case);
                suites.push(suite);
            }
        }
    }
    for suite in &mut suites {
        let time = ran
            .iter()
            .filter(|r| r.case.file == suite.name.as_str())
            .map(|r| r.took)
            .sum();
        suite.set_time(time);
    }
    let mut report = Report::new("baton policy test");
    report.set_time(took).add_test_suites(suites);
    Ok(report.to_string()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_a_substring_unless_it_holds_a_glob_character() {
        let sub = CaseFilter::parse("refund").unwrap();
        assert!(sub.selects("a refund over 500"));
        assert!(!sub.selects("a contractor"));

        let glob = CaseFilter::parse("a refund*").unwrap();
        assert!(glob.selects("a refund over 500"));
        // A glob matches the whole name.
        assert!(!glob.selects("not a refund"));
        assert!(CaseFilter::parse("[unclosed").is_err());
    }
}
