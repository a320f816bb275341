//! `baton policy replay`: the recorded decisions of an audit trail decided again against a
//! candidate bundle, and what would change, grouped by the policies responsible. Reads the file
//! trail (`--audit-file`) or the Redis stream (`--redis-url`) itself, or asks a running Baton to
//! replay its own trail (`--server`, the admin call `ReplayBundle`).
//!
//! Exit codes: 0 when nothing changes (or `--allow-flips`), 1 when a decision would change, 2
//! when the input is bad or no decision of the window could be replayed because none was kept
//! with `--audit-context full`.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::admin_client::{AdminConnection, authorized, bundle_files, channel, describe_status};
use super::serve::DecisionArgs;
use crate::audit::scan::TrailFiles;
use crate::bundle::PolicyBundle;
use crate::fleet::{Fleet, RedisSettings};
use crate::pb::{self, policy_admin_client::PolicyAdminClient};
use crate::replay::{Replay, ReplayReport, Window, finish, phase, replay_records};
use crate::transport::replay_convert::timestamp;

/// Nothing would change, or `--allow-flips`.
const UNCHANGED: u8 = 0;
/// A decision would change.
const CHANGED: u8 = 1;
/// Bad input, or nothing could be replayed.
const INVALID: u8 = 2;

/// The arguments of `baton policy replay`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("trail").required(true).args(["audit_file", "redis_url", "server"])))]
pub struct ReplayArgs {
    /// The candidate bundle directory.
    pub dir: PathBuf,
    /// Replay the decisions of this last span, such as `24h` or `30m`.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["from", "to"])]
    pub since: Option<Duration>,
    /// Replay decisions from this time on (RFC 3339, inclusive).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<SystemTime>,
    /// Replay decisions until this time (RFC 3339, exclusive).
    #[arg(long, value_parser = parse_time)]
    pub to: Option<SystemTime>,
    /// Read the file trail here (`serve`'s `--audit-file`, with its segments), read-only.
    #[arg(long)]
    pub audit_file: Option<PathBuf>,
    /// Read the audit stream in this Redis (`redis://` or `rediss://`).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The key prefix of the deployment in that Redis (`serve`'s `--redis-prefix`).
    #[arg(long, default_value = "baton", requires = "redis_url")]
    pub redis_prefix: String,
    /// Ask the running Baton whose admin API is here to replay its own trail, under its own
    /// settings (`ReplayBundle`).
    #[arg(long)]
    pub server: Option<String>,
    /// The admin bearer token for `--server`; prefer the environment variable.
    #[arg(long, env = "BATON_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// TLS to an `https://` admin API.
    #[command(flatten)]
    pub tls: crate::tls::client::ClientTlsArgs,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 even when decisions would change.
    #[arg(long)]
    pub allow_flips: bool,
    /// The rules decisions are decided again under, as `baton serve` takes them (with
    /// `--server`, the server's own apply).
    #[command(flatten)]
    pub decision: DecisionArgs,
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time such as 2026-11-27T08:00:00Z: {e}"))
}

/// Replays and prints the report; see the module documentation for the exit codes.
pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let window = match args.since {
        Some(span) => Window::since(span, SystemTime::now()),
        None => match Window::new(args.from, args.to) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(INVALID));
            }
        },
    };
    let report = if let Some(server) = &args.server {
        remote(&args, server, window).await
    } else {
        local(&args, window).await
    };
    let report = match report {
        Ok(Some(report)) => report,
        Ok(None) => return Ok(ExitCode::from(INVALID)),
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(INVALID));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    for p in &report.phases {
        eprintln!(
            "{:<18} {}",
            p.name,
            humantime::format_duration(ms(p.millis))
        );
    }
    if report.replayed == 0 && report.skipped.without_full_context > 0 {
        eprintln!(
            "nothing could be replayed: every decision was recorded without --audit-context full"
        );
        return Ok(ExitCode::from(INVALID));
    }
    if report.has_changes() && !args.allow_flips {
        eprintln!(
            "{} decision(s) would change (--allow-flips to accept)",
            report.changed
        );
        return Ok(ExitCode::from(CHANGED));
    }
    Ok(ExitCode::from(UNCHANGED))
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A bar on a terminal, nothing when standard error is piped.
fn progress(len: Option<u64>, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {human_pos} records ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Loads the candidate and replays the trail this command reads itself; `None` when the bundle
/// does not compile (its errors printed).
async fn local(args: &ReplayArgs, window: Window) -> anyhow::Result<Option<ReplayReport>> {
    let started = Instant::now();
    let spinner = progress(None, "loading the bundle");
    let dir = args.dir.clone();
    let loaded = tokio::task::spawn_blocking(move || PolicyBundle::load(&dir)).await?;
    spinner.finish_and_clear();
    let bundle = match loaded {
        Ok(bundle) => Arc::new(bundle),
        Err(e) => {
            super::validate::print_errors(&e);
            return Ok(None);
        }
    };
    let loaded = phase("load bundle", started.elapsed());
    let settings = args.decision.settings();
    let mut report = if let Some(file) = &args.audit_file {
        let files = TrailFiles::find(file, window.range_ms())
            .with_context(|| format!("cannot read the audit trail `{}`", file.display()))?;
        let bar = progress(Some(files.bytes()), "replaying");
        let read = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&read);
        let shown = bar.clone();
        let report = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut replay = Replay::new(bundle, settings, window);
            for (n, record) in files.records(counted.clone()).enumerate() {
                replay.offer(&record?);
                if n % 4096 == 0 {
                    shown.set_position(counted.load(Ordering::Relaxed));
                }
            }
            Ok::<_, std::io::Error>(finish(replay, started.elapsed()))
        })
        .await?
        .context("cannot read the audit trail")?;
        bar.finish_and_clear();
        report
    } else {
        let url = args.redis_url.clone().unwrap_or_default();
        let fleet = Fleet::start(RedisSettings {
            prefix: args.redis_prefix.clone(),
            ..RedisSettings::new(vec![url])
        })
        .context("cannot connect to Redis")?;
        let records =
            crate::audit::redis_records(fleet, Duration::from_secs(10), window.from, window.until);
        let bar = progress(None, "replaying");
        let shown = bar.clone();
        let report = replay_records(bundle, settings, window, records, move |n| {
            shown.set_position(n);
        })
        .await
        .context("cannot read the audit stream")?;
        bar.finish_and_clear();
        report
    };
    report.phases.insert(0, loaded);
    Ok(Some(report))
}

/// Asks the server at `server` to replay its own trail against the candidate.
async fn remote(
    args: &ReplayArgs,
    server: &str,
    window: Window,
) -> anyhow::Result<Option<ReplayReport>> {
    let admin = AdminConnection {
        server: server.to_owned(),
        token: args.token.clone(),
        tls: args.tls.clone(),
    };
    let files = bundle_files(&args.dir)?;
    let request = pb::ReplayBundleRequest {
        files,
        revision: 0,
        from: window.from.map(timestamp),
        to: window.until.map(timestamp),
    };
    let spinner = progress(None, "the server is replaying");
    let mut client = PolicyAdminClient::new(channel(&admin).await?)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let answered = client.replay_bundle(authorized(&admin, request)?).await;
    spinner.finish_and_clear();
    let response = answered.map_err(describe_status)?.into_inner();
    Ok(Some(ReplayReport::try_from(response)?))
}
