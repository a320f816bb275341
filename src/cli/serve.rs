//! `baton serve`: flags, each with a `BATON_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::decision::DecisionSettings;
use crate::delegation::trust::AssertedChains;
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
    /// Address to serve HTTP on: `/.well-known/jwks.json`, `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "BATON_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// The Ed25519 key that signs verdicts (PEM PKCS#8 or JWK). Without one, an ephemeral key is
    /// generated at startup.
    #[arg(long, env = "BATON_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// More public keys to publish beside the signing key (PEM, JWK or JWKS files), so verdicts
    /// signed by a rotated-out key stay verifiable.
    #[arg(
        long = "publish-key",
        env = "BATON_PUBLISH_KEYS",
        value_delimiter = ','
    )]
    pub publish_keys: Vec<PathBuf>,
    /// `iss` of verdicts.
    #[arg(long, env = "BATON_ISSUER", default_value = crate::state::DEFAULT_ISSUER)]
    pub issuer: String,
    /// `aud` of verdicts: the token minter that redeems them.
    #[arg(long, env = "BATON_VERDICT_AUDIENCE", default_value = crate::state::DEFAULT_VERDICT_AUDIENCE)]
    pub verdict_audience: String,
    /// How long a verdict itself is valid, in seconds (at most 120).
    #[arg(long, env = "BATON_VERDICT_LIFETIME", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=crate::delegation::verdict::MAX_VERDICT_LIFETIME_SECS))]
    pub verdict_lifetime: u64,
    /// A token issuer whose access tokens hops may present, as `ISSUER=JWKS_FILE`.
    #[arg(long = "trusted-issuer", env = "BATON_TRUSTED_ISSUERS", value_delimiter = ',', value_parser = trusted_issuer)]
    pub trusted_issuers: Vec<(String, PathBuf)>,
    /// Which requests may go without a `subject_token`.
    #[arg(
        long,
        env = "BATON_ASSERTED_CHAINS",
        value_enum,
        default_value = "first-hop"
    )]
    pub asserted_chains: AssertedChains,
    /// Gateway bearer tokens, `name token` per line. Without it, callers on the loopback
    /// interface are the trusted gateways.
    #[arg(long, env = "BATON_GATEWAY_TOKENS")]
    pub gateway_tokens: Option<PathBuf>,
    /// Decisions kept in the in-process cache; 0 turns it off.
    #[arg(long, env = "BATON_CACHE_CAPACITY", default_value_t = crate::cache::CacheSettings::default().capacity)]
    pub cache_capacity: u64,
    /// Longest any cached decision is kept, in seconds; an allow never outlives its grant.
    #[arg(long, env = "BATON_CACHE_MAX_TTL", default_value_t = crate::cache::CacheSettings::default().max_ttl.as_secs())]
    pub cache_max_ttl: u64,
    /// Log format.
    #[arg(long, env = "BATON_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint to export spans to, such as `http://otel-collector:4317`. Without one,
    /// spans are not exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    pub fn cache(&self) -> crate::cache::CacheSettings {
        crate::cache::CacheSettings {
            capacity: self.cache_capacity,
            max_ttl: std::time::Duration::from_secs(self.cache_max_ttl),
        }
    }

    pub fn settings(&self) -> DecisionSettings {
        DecisionSettings {
            max_depth: self.max_depth,
            allow_cycles: self.allow_cycles,
            max_ttl_secs: self.max_ttl,
            default_ttl_secs: self.default_ttl,
        }
    }
}

fn trusted_issuer(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((issuer, path)) if !issuer.is_empty() && !path.is_empty() => {
            Ok((issuer.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected `ISSUER=JWKS_FILE`, got `{s}`")),
    }
}
