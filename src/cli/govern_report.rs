//! `baton govern report`: the standing-access review ([`crate::standing_access`]) of a bundle
//! over the audit trail of a window. The bundle is a directory (`--bundle`) or the server's
//! active one; the trail is the file trail (`--audit-file`) or the server's, read through the
//! admin call `QueryAudit`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use super::admin_client::{AdminConnection, authorized, channel, client, describe_status};
use crate::audit::scan::TrailFiles;
use crate::bundle::{PolicyBundle, SourceFile};
use crate::identity::{Identity, IdentityKind};
use crate::pb::{self, audit_service_client::AuditServiceClient};
use crate::replay::Window;
use crate::standing_access::{
    DEFAULT_MAX_EVALUATIONS, Review, ReviewSettings, Sighting, StandingAccessReport,
};
use crate::transport::replay_convert::timestamp;

/// The arguments of `baton govern report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The bundle directory to review; without it, the server's active bundle.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Read the file trail here (`serve`'s `--audit-file`, with its segments); without it, the
    /// server's trail through `QueryAudit`.
    #[arg(long)]
    pub audit_file: Option<PathBuf>,
    /// The window: this last span before now, such as `90d` (the default without `--since`
    /// or `--until`).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["since", "until"])]
    pub window: Option<Duration>,
    /// The window's start (RFC 3339, inclusive); the first record without it.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<SystemTime>,
    /// The window's end (RFC 3339, exclusive); now without it.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<SystemTime>,
    /// List agents that expire within this span from now, such as `30d`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    pub expiring_within: Duration,
    /// The most Cedar evaluations spent enumerating the grants the policies allow.
    #[arg(long, default_value_t = DEFAULT_MAX_EVALUATIONS)]
    pub max_evaluations: u64,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The admin API, for the active bundle or the trail.
    #[arg(long, env = "BATON_ADMIN_SERVER")]
    pub server: Option<String>,
    /// The admin bearer token for `--server`; prefer the environment variable.
    #[arg(long, env = "BATON_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// TLS to an `https://` admin API.
    #[command(flatten)]
    pub tls: crate::tls::client::ClientTlsArgs,
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time such as 2026-11-27T08:00:00Z: {e}"))
}

/// The default window: a quarter.
const DEFAULT_WINDOW: Duration = Duration::from_secs(90 * 24 * 3600);

/// Builds the report and prints it as text or JSON.
pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let window = if args.since.is_some() || args.until.is_some() {
        Window::new(args.since, args.until)?
    } else {
        Window::since(args.window.unwrap_or(DEFAULT_WINDOW), now)
    };
    let admin = args.server.as_ref().map(|server| AdminConnection {
        server: server.clone(),
        token: args.token.clone(),
        tls: args.tls.clone(),
    });
    let needs_server = || {
        anyhow::anyhow!(
            "give --server (the admin API) to read the active bundle or the trail there, or --bundle and --audit-file"
        )
    };
    let bundle = match (&args.bundle, &admin) {
        (Some(dir), _) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || PolicyBundle::load(&dir))
                .await?
                .map_err(|e| anyhow::anyhow!("the bundle does not compile:\n{e}"))?
        }
        (None, Some(admin)) => active_bundle(admin).await?,
        (None, None) => return Err(needs_server()),
    };
    let settings = ReviewSettings {
        window,
        now,
        expiring_within: args.expiring_within,
        max_evaluations: args.max_evaluations,
    };
    let report = match (&args.audit_file, &admin) {
        (Some(file), _) => {
            let files = TrailFiles::find(file, window.range_ms())
                .with_context(|| format!("cannot read the audit trail `{}`", file.display()))?;
            tokio::task::spawn_blocking(move || {
                let mut review = Review::new(&bundle, settings);
                for record in files.records(Arc::new(AtomicU64::new(0))) {
                    review.offer_record(&record?);
                }
                Ok::<_, std::io::Error>(review.finish())
            })
            .await?
            .context("cannot read the audit trail")?
        }
        (None, Some(admin)) => {
            // Each page goes to the review as it arrives, so a long window is never held here.
            let (pages, mut arriving) = tokio::sync::mpsc::channel::<Vec<Sighting>>(PAGES_AHEAD);
            let review = tokio::task::spawn_blocking(move || {
                let mut review = Review::new(&bundle, settings);
                while let Some(page) = arriving.blocking_recv() {
                    for sighting in page {
                        review.offer(sighting);
                    }
                }
                review.finish()
            });
            // Dropping `pages` (here or on an error) ends the review's loop.
            remote_sightings(admin, window, pages).await?;
            review.await?
        }
        (None, None) => return Err(needs_server()),
    };
    print(&report, args.json)
}

fn print(report: &StandingAccessReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// The server's active bundle, compiled here.
async fn active_bundle(admin: &AdminConnection) -> anyhow::Result<PolicyBundle> {
    let message = pb::GetBundleRequest { revision: 0 };
    let response = client(admin)
        .await?
        .get_bundle(authorized(admin, message)?)
        .await
        .map_err(describe_status)?
        .into_inner();
    let files: Vec<SourceFile> = response
        .files
        .into_iter()
        .map(|f| SourceFile {
            name: f.name,
            text: f.content,
        })
        .collect();
    tokio::task::spawn_blocking(move || PolicyBundle::compile(files))
        .await?
        .map_err(|e| anyhow::anyhow!("the active bundle does not compile here:\n{e}"))
}

/// Pages of the server's trail the review may be behind by.
const PAGES_AHEAD: usize = 2;

/// Every decision of the window in the server's trail, page after page, into `pages`.
async fn remote_sightings(
    admin: &AdminConnection,
    window: Window,
    pages: tokio::sync::mpsc::Sender<Vec<Sighting>>,
) -> anyhow::Result<()> {
    let mut audit = AuditServiceClient::new(channel(admin).await?);
    let mut page_token = String::new();
    loop {
        let query = pb::QueryAuditRequest {
            kind: "decision".to_owned(),
            start_time: window.from.map(timestamp),
            end_time: window.until.map(timestamp),
            page_size: 1000,
            page_token,
            ..Default::default()
        };
        let page = audit
            .query_audit(authorized(admin, query)?)
            .await
            .map_err(describe_status)?
            .into_inner();
        let sightings = page.records.into_iter().filter_map(sighting).collect();
        pages
            .send(sightings)
            .await
            .map_err(|_| anyhow::anyhow!("the review stopped taking records"))?;
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

/// The sighting in a decision record of the wire; `None` for other records or ones that do not
/// name their identities.
fn sighting(record: pb::AuditRecord) -> Option<Sighting> {
    let Some(pb::audit_record::Event::Decision(d)) = record.event else {
        return None;
    };
    let time = record.time.and_then(|t| SystemTime::try_from(t).ok())?;
    let identity =
        |r: &pb::EntityRef| Some(Identity::new(IdentityKind::parse_any(&r.r#type)?, &r.id));
    let allowed = d.decision == pb::Decision::Allow as i32;
    Some(Sighting {
        time,
        chain: d.chain.iter().filter_map(identity).collect(),
        caller: identity(d.caller.as_ref()?)?,
        callee: identity(d.callee.as_ref()?)?,
        granted: if allowed {
            d.granted_scopes
        } else {
            Vec::new()
        },
    })
}
