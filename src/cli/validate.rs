//! `baton validate <dir>`: the checks `serve` runs at startup, without serving.

use std::path::PathBuf;

use crate::admission::{BundleLimits, Rejection, admit};
use crate::bundle::{BundleError, read_dir};
use crate::decision::DecisionSettings;

/// The arguments of `baton validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Bundle directory.
    pub dir: PathBuf,
}

/// Prints warnings and errors, one `file:line:column: message` per line, then a summary.
/// Returns whether the bundle is valid: it compiles, fits the default limits and passes its
/// own test cases, exactly as `serve` requires at startup.
pub fn run(args: &ValidateArgs) -> bool {
    let admitted = read_dir(&args.dir)
        .map_err(Rejection::Invalid)
        .and_then(|files| {
            admit(
                files,
                &DecisionSettings::default(),
                &BundleLimits::default(),
            )
        });
    match admitted {
        Ok(admitted) => {
            for w in admitted.bundle.warnings() {
                eprintln!("{w} (warning)");
            }
            println!("{}: {admitted}", args.dir.display());
            true
        }
        Err(rejection) => {
            print_rejection(&rejection);
            false
        }
    }
}

/// Prints why a bundle cannot be activated: located errors, failing cases, or a limit.
pub fn print_rejection(rejection: &Rejection) {
    match rejection {
        Rejection::Invalid(e) => print_errors(e),
        other => {
            for w in other.warnings() {
                eprintln!("{w} (warning)");
            }
            for line in other.lines() {
                eprintln!("{line}");
            }
            eprintln!("bundle rejected: {other}");
        }
    }
}

/// Prints a bundle's warnings and located errors to standard error, then a count.
pub fn print_errors(e: &BundleError) {
    for w in &e.warnings {
        eprintln!("{w} (warning)");
    }
    for d in &e.errors {
        eprintln!("{d}");
    }
    eprintln!("bundle rejected: {} error(s)", e.errors.len());
}
