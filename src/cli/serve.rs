//! `baton serve`: flags, each with a `BATON_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::decision::DecisionSettings;
use crate::telemetry::LogFormat;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to serve gRPC on.
    #[arg(long, env = "BATON_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Policy bundle directory.
    #[arg(long, env = "BATON_BUNDLE", default_value = "policies")]
    pub bundle: PathBuf,
    /// Longest delegation chain, in hops from the principal to the callee.
    #[arg(long, env = "BATON_MAX_DEPTH", default_value_t = DecisionSettings::default().max_depth)]
    pub max_depth: usize,
    /// Let an identity appear twice in one chain (denied by default).
    #[arg(long, env = "BATON_ALLOW_CYCLES")]
    pub allow_cycles: bool,
    /// Cap on every session, in seconds.
    #[arg(long, env = "BATON_MAX_TTL", default_value_t = DecisionSettings::default().max_ttl_secs)]
    pub max_ttl: u64,
    /// Session length when no determining permit carries `@ttl`, in seconds.
    #[arg(long, env = "BATON_DEFAULT_TTL", default_value_t = DecisionSettings::default().default_ttl_secs)]
    pub default_ttl: u64,
    /// Longest wait for in-flight calls after SIGTERM or Ctrl-C, in seconds.
    #[arg(long, env = "BATON_DRAIN_TIMEOUT", default_value_t = crate::server::DEFAULT_DRAIN_TIMEOUT.as_secs())]
    pub drain_timeout: u64,
    /// Log format.
    #[arg(long, env = "BATON_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

impl ServeArgs {
    pub fn settings(&self) -> DecisionSettings {
        DecisionSettings {
            max_depth: self.max_depth,
            allow_cycles: self.allow_cycles,
            max_ttl_secs: self.max_ttl,
            default_ttl_secs: self.default_ttl,
        }
    }
}
