//! `baton policy shadow status|stop`: the running comparison of the shadow bundle.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use super::admin_client::{AdminConnection, authorized, client, describe_status};
use crate::pb;

/// The commands of `baton policy shadow`.
#[derive(Debug, clap::Subcommand)]
pub enum ShadowCommand {
    /// Which revision is shadowed since when, what was compared, agreed, disagreed or dropped
    /// on the replica that answers, and the disagreements by policy with example decisions.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
    /// Stop shadowing on every replica.
    Stop {
        /// Where the admin API is, and the token to present.
        #[command(flatten)]
        admin: AdminConnection,
    },
}

/// Runs `status` or `stop`.
pub async fn run(command: ShadowCommand) -> anyhow::Result<ExitCode> {
    match command {
        ShadowCommand::Status { json, admin } => {
            let status = client(&admin)
                .await?
                .get_shadow_status(authorized(&admin, pb::GetShadowStatusRequest {})?)
                .await
                .map_err(describe_status)?
                .into_inner();
            if json {
                println!("{}", serde_json::to_string_pretty(&as_json(&status))?);
            } else {
                println!("{}", render(&status));
            }
            Ok(ExitCode::SUCCESS)
        }
        ShadowCommand::Stop { admin } => {
            let stopped = client(&admin)
                .await?
                .stop_shadow(authorized(&admin, pb::StopShadowRequest {})?)
                .await
                .map_err(describe_status)?
                .into_inner();
            match stopped.revision {
                0 => println!("no bundle was shadowed"),
                n => println!("stopped shadowing revision {n}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn since(status: &pb::GetShadowStatusResponse) -> String {
    status
        .since
        .as_ref()
        .and_then(|t| u64::try_from(t.seconds).ok())
        .map(|s| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string())
        .unwrap_or_default()
}

/// The status as `--json` prints it.
pub fn as_json(status: &pb::GetShadowStatusResponse) -> serde_json::Value {
    if !status.shadowing {
        return serde_json::json!({ "shadowing": false });
    }
    let policies: Vec<serde_json::Value> = status
        .policies
        .iter()
        .map(|p| {
            serde_json::json!({
                "policy": p.policy,
                "disagreements": p.count,
                "examples": p.example_decision_ids,
            })
        })
        .collect();
    serde_json::json!({
        "shadowing": true,
        "revision": status.revision,
        "version": status.version,
        "since": since(status),
        "sample": status.sample,
        "compared": status.compared,
        "agreed": status.agreed,
        "disagreed": status.disagreed,
        "dropped": status.dropped,
        "policies": policies,
    })
}

/// The status as people read it.
pub fn render(status: &pb::GetShadowStatusResponse) -> String {
    if !status.shadowing {
        return "no bundle is shadowed".to_owned();
    }
    let mut out = format!(
        "shadowing revision {} (version {}) since {}, sampling {}% of requests\n\
         compared {}: agreed {}, disagreed {}; dropped {} (queue full)",
        status.revision,
        status.version,
        since(status),
        status.sample * 100.0,
        status.compared,
        status.agreed,
        status.disagreed,
        status.dropped
    );
    for p in &status.policies {
        let _ = write!(
            out,
            "\n  {:>6}  {}  e.g. {}",
            p.count,
            p.policy,
            p.example_decision_ids.join(", ")
        );
    }
    out
}
