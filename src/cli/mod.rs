//! The `baton` command line: `serve`; `validate`, `keygen` and `demo-pki`, which need no server; and the
//! clients of a running Baton: `authorize`, `policy`, `govern` and `audit`.

pub mod admin_client;
pub mod audit;
pub mod authorize;
pub mod config;
pub mod config_file;
pub mod demo_pki;
pub mod govern;
pub mod govern_report;
pub mod health;
pub mod keygen;
pub mod policy;
pub mod policy_replay;
pub mod policy_shadow;
pub mod policy_test;
pub mod progress;
pub mod serve;
pub mod validate;

use std::ffi::OsString;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// The command line of the `baton` binary.
#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "A policy decision point for agents that call other agents"
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `baton`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the decision API over gRPC.
    Serve(Box<serve::ServeArgs>),
    /// Check a policy bundle and print every error with file:line:column.
    Validate(validate::ValidateArgs),
    /// Ask a running Baton for a decision and print the verdict.
    Authorize(Box<authorize::AuthorizeArgs>),
    /// Policy authoring: test a bundle locally; validate, push, list, activate and roll back
    /// bundles on a running Baton.
    Policy(Box<policy::PolicyArgs>),
    /// Revocation and human approval: revoke, lift, list revocations; approve, reject, show
    /// approvals on a running Baton.
    Govern(Box<govern::GovernArgs>),
    /// Print the delegation tree of one transaction from a running Baton's audit trail, read
    /// through its admin API, or every record of one kind (`--kind shadow_disagreement`).
    Audit(audit::AuditArgs),
    /// Check a configuration file of `serve` and print the effective configuration.
    Config(config::ConfigArgs),
    /// Check that a running Baton takes calls: gRPC health and `/readyz` (exit 0 if so); the
    /// probe for container healthchecks.
    Health(health::HealthArgs),
    /// Generate a signing key for verdicts (or for a token minter): Ed25519 by default, RSA
    /// (RS256) or P-256 (ES256) with `--alg`.
    Keygen(keygen::KeygenArgs),
    /// Write a demo CA and the certificates of the compose demo: Baton's server certificate,
    /// a gateway's, an agent's and an admin's (not for production).
    DemoPki(demo_pki::DemoPkiArgs),
}

/// Parses the command line of `baton`, with the configuration file `serve` is given (its
/// `--config`, or `BATON_CONFIG`) as the defaults of its flags. Clap's own errors (and
/// `--help`) exit as clap has them exit; a configuration file it refuses is returned.
pub fn parse() -> Result<Cli, config_file::ConfigFileError> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if let Some(path) = config_file::named_in(&args) {
        let serve = command
            .find_subcommand("serve")
            .cloned()
            .unwrap_or_else(|| clap::Command::new("serve"));
        let file = config_file::ConfigFile::read(&path, &serve)?;
        command = command.mut_subcommand("serve", |serve| file.apply(serve));
    }
    let matches = command.get_matches_from(args);
    Ok(Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}
