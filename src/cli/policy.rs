//! `baton policy`: the policy author's commands. `test` runs a bundle's cases locally; the
//! others talk to a running Baton's admin API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

pub use super::admin_client::AdminConnection;
use super::admin_client::{authorized, bundle_files, client, describe_status};
use super::policy_shadow::ShadowCommand;
use super::progress::{phases_line, spinner};
use crate::pb;

/// The arguments of `baton policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// The policy command to run.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// The commands of `baton policy`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate a bundle directory on the server (a dry run) and print every problem.
    Validate {
        /// Bundle directory.
        dir: PathBuf,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Run a bundle's test cases locally, without a server, under `serve`'s decision settings;
    /// report as text, JSON or JUnit with the policies no case exercised. Exits 0 when every
    /// case passed, 1 when one failed, 2 when the bundle or a case is invalid.
    Test(super::policy_test::TestArgs),
    /// Decide the audit trail's recorded decisions again against a bundle directory and report
    /// what would change (ALLOW↔DENY, scopes, TTL, obligations, approval), grouped by the
    /// policies responsible. Exits 0 when nothing changes, 1 when something does (unless
    /// `--allow-flips`), 2 on bad input or when nothing could be replayed.
    Replay(Box<super::policy_replay::ReplayArgs>),
    /// Push a bundle directory: validated, tested, stored and activated on every replica; with
    /// `--shadow`, stored and shadowed instead of activated.
    Push {
        /// Bundle directory.
        dir: PathBuf,
        /// Why: shown by `list`.
        #[arg(long, short)]
        message: String,
        /// Do not activate: every replica decides a sample of live requests against the bundle
        /// too and records where it disagrees (see `policy shadow status`); `activate` its
        /// revision to promote it.
        #[arg(long)]
        shadow: bool,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// List the stored revisions, newest first.
    List {
        /// Most revisions to list.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Make a stored revision active again.
    Activate {
        /// The revision to activate, as `list` shows it.
        revision: u64,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Undo the latest activation: the revision active before it becomes active again.
    Rollback {
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// The shadow bundle: how the running comparison stands, or stop it.
    Shadow {
        /// What to do with it.
        #[command(subcommand)]
        command: ShadowCommand,
    },
}

/// Runs the command; the exit code is 1 when a bundle is rejected or a case fails (2 for
/// `test` when the bundle or a case is invalid).
pub async fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        PolicyCommand::Test(args) => super::policy_test::run(&args),
        PolicyCommand::Replay(args) => super::policy_replay::run(*args).await,
        PolicyCommand::Validate { dir, admin } => {
            let files = bundle_files(&dir)?;
            let started = Instant::now();
            let spinner = spinner("validating on the server");
            let response = client(&admin)
                .await?
                .validate_bundle(authorized(&admin, pb::ValidateBundleRequest { files })?)
                .await;
            spinner.finish_and_clear();
            let response = response.map_err(describe_status)?.into_inner();
            for w in &response.warnings {
                eprintln!("{} (warning)", located(w));
            }
            for e in &response.errors {
                eprintln!("{}", located(e));
            }
            for f in &response.test_failures {
                eprintln!(
                    "{}:{}: case `{}` failed: {}",
                    f.file,
                    f.line,
                    f.name,
                    f.problems.join("; ")
                );
            }
            if !response.limit_exceeded.is_empty() {
                eprintln!("{}", response.limit_exceeded);
            }
            if response.valid {
                println!(
                    "{}: valid, {} policies, {} test case(s) passed, version {}",
                    dir.display(),
                    response.policy_count,
                    response.tests_run,
                    response.version
                );
                println!(
                    "{}",
                    phases_line(response.timings.as_ref(), started.elapsed())
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("bundle rejected");
                Ok(ExitCode::FAILURE)
            }
        }
        PolicyCommand::Push {
            dir,
            message,
            shadow,
            admin,
        } => {
            let files = bundle_files(&dir)?;
            let started = Instant::now();
            let spinner = spinner(if shadow {
                "validating and storing the shadow bundle"
            } else {
                "validating, storing and activating"
            });
            let pushed = client(&admin)
                .await?
                .push_bundle(authorized(
                    &admin,
                    pb::PushBundleRequest {
                        files,
                        message,
                        shadow,
                    },
                )?)
                .await;
            spinner.finish_and_clear();
            match pushed {
                Ok(response) => {
                    let response = response.into_inner();
                    for w in &response.warnings {
                        eprintln!("{} (warning)", located(w));
                    }
                    if let Some(b) = &response.bundle {
                        let done = if response.shadow {
                            "pushed as the shadow"
                        } else {
                            "pushed and activated"
                        };
                        println!(
                            "{done} revision {} (version {}, {} policies, {} test case(s) passed)",
                            b.revision, b.version, b.policy_count, response.tests_run
                        );
                    }
                    println!(
                        "{}",
                        phases_line(response.timings.as_ref(), started.elapsed())
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(status) => {
                    eprintln!("{}", describe_status(status));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PolicyCommand::List { limit, admin } => {
            let response = client(&admin)
                .await?
                .list_bundles(authorized(&admin, pb::ListBundlesRequest { limit })?)
                .await
                .map_err(describe_status)?
                .into_inner();
            for b in &response.bundles {
                println!("{}", bundle_line(b));
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Activate { revision, admin } => {
            let started = Instant::now();
            let spinner = spinner(format!("validating and activating revision {revision}"));
            let response = client(&admin)
                .await?
                .activate_bundle(authorized(&admin, pb::ActivateBundleRequest { revision })?)
                .await;
            spinner.finish_and_clear();
            let response = response.map_err(describe_status)?.into_inner();
            print_activation(&response);
            println!(
                "{}",
                phases_line(response.timings.as_ref(), started.elapsed())
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Shadow { command } => super::policy_shadow::run(command).await,
        PolicyCommand::Rollback { admin } => {
            let response = client(&admin)
                .await?
                .rollback_bundle(authorized(&admin, pb::RollbackBundleRequest {})?)
                .await
                .map_err(describe_status)?
                .into_inner();
            print_activation(&response);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn located(d: &pb::Diagnostic) -> String {
    format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message)
}

fn bundle_line(b: &pb::BundleInfo) -> String {
    let when = b
        .created_at
        .as_ref()
        .and_then(|t| u64::try_from(t.seconds).ok())
        .map(|s| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
            )
            .to_string()
        })
        .unwrap_or_default();
    format!(
        "{} {:>5}  {}  {}  {:<12} {} policies  {}",
        if b.active { "*" } else { " " },
        b.revision,
        b.version,
        when,
        b.author,
        b.policy_count,
        b.message
    )
}

fn print_activation(response: &pb::ActivateBundleResponse) {
    if let Some(b) = &response.active {
        println!(
            "revision {} (version {}) is active; it replaced revision {}",
            b.revision, b.version, response.previous_revision
        );
    }
}
