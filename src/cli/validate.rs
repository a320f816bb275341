//! `baton validate <dir>`: the checks `serve` runs at startup, without serving.

use std::path::PathBuf;

use crate::bundle::{BundleError, PolicyBundle};

#[derive(Debug, Clone, clap::Args)]
pub struct ValidateArgs {
    /// Bundle directory.
    pub dir: PathBuf,
}

/// Prints warnings and errors, one `file:line:column: message` per line, then a summary.
/// Returns whether the bundle is valid.
pub fn run(args: &ValidateArgs) -> bool {
    match PolicyBundle::load(&args.dir) {
        Ok(bundle) => {
            for w in bundle.warnings() {
                eprintln!("{w} (warning)");
            }
            println!(
                "{}: valid, {} policies, version {}",
                args.dir.display(),
                bundle.policy_count(),
                bundle.version()
            );
            true
        }
        Err(e) => {
            print_errors(&e);
            false
        }
    }
}

pub fn print_errors(e: &BundleError) {
    for w in &e.warnings {
        eprintln!("{w} (warning)");
    }
    for d in &e.errors {
        eprintln!("{d}");
    }
    eprintln!("bundle rejected: {} error(s)", e.errors.len());
}
