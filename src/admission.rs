//! The one gate every bundle passes before it may be activated: size limits, the compile
//! (parsing, strict schema validation, entities, the contract and annotations), then the
//! bundle's own test cases. Startup, pushes, activations, replicas and `baton validate` all go
//! through it. Pure: it reads nothing and stores nothing.

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

pub use crate::bundle::Phases;
use crate::bundle::{BundleDiagnostic, BundleError, PolicyBundle, SourceFile};
use crate::decision::{CaseFailure, DecisionSettings, SuiteReport, run_cases};

/// Bounds on what a bundle may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    /// Total size of the files' names and texts.
    pub max_bytes: usize,
    /// Most policies the compiled bundle may hold.
    pub max_policies: usize,
}

impl Default for BundleLimits {
    fn default() -> Self {
        Self {
            max_bytes: 32 * 1024 * 1024,
            max_policies: 100_000,
        }
    }
}

/// A bundle fit to activate, and how its tests went.
#[derive(Debug)]
pub struct Admitted {
    /// The compiled bundle, ready to activate.
    pub bundle: PolicyBundle,
    /// The bundle's own test cases, all of which passed.
    pub tests: SuiteReport,
    /// How long each phase took.
    pub timings: Phases,
}

/// Why a bundle may not be activated.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Rejection {
    /// The files' names and texts together exceed [`BundleLimits::max_bytes`]; checked
    /// before anything is parsed.
    #[error("the bundle is {bytes} bytes, over the limit of {max}")]
    TooLarge {
        /// Total size of the files' names and texts.
        bytes: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// The compiled bundle holds more than [`BundleLimits::max_policies`] policies.
    #[error("the bundle has {policies} policies, over the limit of {max}")]
    TooManyPolicies {
        /// How many policies the bundle holds.
        policies: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// A file is misnamed or repeated, or the bundle does not compile.
    #[error("{0}")]
    Invalid(BundleError),
    /// The bundle compiles but at least one of its own test cases fails.
    #[error("{} of {} test case(s) failed: {}", .failures.len(), .run, first(.failures))]
    TestsFailed {
        /// How many test cases ran.
        run: usize,
        /// Every case that failed, in the order they ran.
        failures: Vec<CaseFailure>,
        /// The compile's warnings, reported alongside the failures.
        warnings: Vec<BundleDiagnostic>,
    },
}

fn first(failures: &[CaseFailure]) -> String {
    failures
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

impl Rejection {
    /// Every problem as one line each, `file:line:column: message` where located.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid(e) => e.errors.iter().map(ToString::to_string).collect(),
            Self::TestsFailed { failures, .. } => {
                failures.iter().map(ToString::to_string).collect()
            }
            other => vec![other.to_string()],
        }
    }

    /// The compile's warnings, where the bundle got far enough to have any.
    pub fn warnings(&self) -> &[BundleDiagnostic] {
        match self {
            Self::Invalid(e) => &e.warnings,
            Self::TestsFailed { warnings, .. } => warnings,
            _ => &[],
        }
    }
}

/// Admits `files` as a bundle, or says every reason it cannot be activated.
pub fn admit(
    files: Vec<SourceFile>,
    settings: &DecisionSettings,
    limits: &BundleLimits,
) -> Result<Admitted, Rejection> {
    let bytes: usize = files.iter().map(|f| f.name.len() + f.text.len()).sum();
    if bytes > limits.max_bytes {
        return Err(Rejection::TooLarge {
            bytes,
            max: limits.max_bytes,
        });
    }
    check_names(&files)?;
    let bundle = PolicyBundle::compile(files).map_err(Rejection::Invalid)?;
    if bundle.policy_count() > limits.max_policies {
        return Err(Rejection::TooManyPolicies {
            policies: bundle.policy_count(),
            max: limits.max_policies,
        });
    }
    let testing = Instant::now();
    let tests = run_cases(&bundle, settings);
    let timings = Phases {
        tests: testing.elapsed(),
        ..bundle.compile_timings()
    };
    if !tests.passed() {
        return Err(Rejection::TestsFailed {
            run: tests.run,
            failures: tests.failures,
            warnings: bundle.warnings().to_vec(),
        });
    }
    Ok(Admitted {
        bundle,
        tests,
        timings,
    })
}

/// Pushed files arrive by name, so each must be a bundle file, once: anything else would be
/// hashed into the version without meaning anything.
fn check_names(files: &[SourceFile]) -> Result<(), Rejection> {
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for file in files {
        let plain = !file.name.is_empty()
            && !file.name.starts_with('.')
            && !file.name.contains(['/', '\\'])
            && !file.name.chars().any(char::is_control);
        if !plain || file.kind().is_none() {
            errors.push(BundleDiagnostic::in_file(
                &file.name,
                "not a bundle file: expected `*.cedarschema`, `*.cedar`, `entities.json`, `tests.json` or `*.tests.json`",
            ));
        } else if !seen.insert(file.name.as_str()) {
            errors.push(BundleDiagnostic::in_file(
                &file.name,
                "the file appears twice",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Rejection::Invalid(BundleError {
            errors,
            warnings: Vec::new(),
        }))
    }
}

impl fmt::Display for Admitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "valid, {} policies, {} test case(s) passed, version {}",
            self.bundle.policy_count(),
            self.tests.run,
            self.bundle.version()
        )
    }
}
