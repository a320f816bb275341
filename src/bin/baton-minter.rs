//! `baton-minter`: the reference token minter as a program of its own. It fetches Baton's
//! published keys over gRPC and trusts nothing else Baton says; see `baton::minter`.
//!
//! Exit status: 0 minted, 1 the verdict was refused, 2 the minter could not start. Either
//! failure prints `baton-minter: <CODE>: <message>` on stderr.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use baton::clock::SystemClock;
use baton::delegation::{DEFAULT_ISSUER, DEFAULT_VERDICT_AUDIENCE};
use baton::fleet::{Fleet, RedisSettings};
use baton::minter::replay::DEFAULT_REDIS_PREFIX;
use baton::minter::{
    DEFAULT_MINTER_ISSUER, FileReplayGuard, MemoryReplayGuard, Minter, RedisReplayGuard,
    ReplayGuard, fetch_jwks,
};
use baton::revocation::{RedisRevocations, Revocations};
use baton::token::SigningKey;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "baton-minter",
    version,
    about = "Redeem Baton verdicts for RFC 9068 access tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Redeem one verdict and print the access token minted from it.
    Mint(Box<MintArgs>),
    /// Serve the OAuth 2.0 token endpoint (RFC 8693 token exchange) at `POST /token`; give it
    /// `--redis` or `--replay-file` so single use holds across requests and restarts.
    Serve(Box<ServeArgs>),
    /// Print the minter's public keys as a JWKS, for Baton's `--trusted-issuer`.
    Jwks {
        /// The minter's private key (PEM PKCS#8 or private JWK), as `baton keygen` writes it.
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct MintArgs {
    #[command(flatten)]
    minter: MinterArgs,
    /// The verdict (compact JWS); read from stdin when absent.
    #[arg(long)]
    verdict: Option<String>,
    /// Print the token and its claims as JSON instead of the bare token.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    minter: MinterArgs,
    /// Where the token endpoint (`POST /token`) listens.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: std::net::SocketAddr,
}

/// What every minter needs: keys, names, and where its replay guard and revocations live.
#[derive(Debug, clap::Args)]
struct MinterArgs {
    /// Baton's gRPC address, whose `GetJwks` keys verify the verdict.
    #[arg(
        long,
        value_name = "URL",
        env = "BATON_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    baton: String,
    /// TLS to an `https://` Baton.
    #[command(flatten)]
    tls: baton::tls::client::ClientTlsArgs,
    /// The minter's private key (PEM PKCS#8 or private JWK): Ed25519, RSA (2048 to 4096 bits)
    /// or P-256. The tokens it mints carry its algorithm (`EdDSA`, `RS256`, `ES256`) as `alg`.
    #[arg(long)]
    key: PathBuf,
    /// The `iss` of the minted tokens.
    #[arg(long, default_value = DEFAULT_MINTER_ISSUER)]
    issuer: String,
    /// This minter's name: the verdict `aud` it accepts.
    #[arg(long, default_value = DEFAULT_VERDICT_AUDIENCE)]
    audience: String,
    /// The `iss` of Baton's verdicts.
    #[arg(long, default_value = DEFAULT_ISSUER)]
    baton_issuer: String,
    /// Remember redeemed verdicts in this Redis (`redis://host:port`), shared by every minter
    /// that uses it. Without it the memory is this process's, which redeems one verdict: use
    /// Redis wherever the same verdict could reach the minter twice.
    #[arg(long, value_name = "URL", env = "BATON_MINTER_REDIS")]
    redis: Option<String>,
    /// CA certificates (PEM) that sign a `rediss://` server's certificate.
    #[arg(long, env = "BATON_MINTER_REDIS_CA")]
    redis_ca: Option<PathBuf>,
    /// A client certificate chain (PEM) for Redis; needs `--redis-key`.
    #[arg(long, env = "BATON_MINTER_REDIS_CERT", requires = "redis_key")]
    redis_cert: Option<PathBuf>,
    /// The private key (PEM) of `--redis-cert`.
    #[arg(long, env = "BATON_MINTER_REDIS_KEY", requires = "redis_cert")]
    redis_key: Option<PathBuf>,
    /// Without Redis: remember redeemed verdicts in this file, shared by every minter process
    /// on this host that names it and kept across restarts. Without either, the memory is this
    /// process's, which a second `mint` does not share.
    #[arg(long, value_name = "PATH", env = "BATON_MINTER_REPLAY_FILE")]
    replay_file: Option<PathBuf>,
    /// The prefix of the Redis keys (`<prefix>jti:<jti>`).
    #[arg(long, default_value = DEFAULT_REDIS_PREFIX)]
    redis_prefix: String,
    /// The key prefix Baton uses in the same Redis, whose revocations this minter honours.
    #[arg(long, default_value = "baton")]
    baton_redis_prefix: String,
    /// Without Redis: the revocations file Baton keeps (`--revocations-file`), honoured the same.
    #[arg(long)]
    revocations_file: Option<std::path::PathBuf>,
    /// An obligation this minter's deployment enforces; repeat for several. A verdict carrying
    /// any other is refused.
    #[arg(long = "understand", value_name = "OBLIGATION")]
    understood: Vec<String>,
}

/// A failure to report: its code and its message with every cause.
struct Failure {
    code: &'static str,
    message: String,
    status: u8,
}

impl Failure {
    fn setup(code: &'static str, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            message: format!("{:#}", error.into()),
            status: 2,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Mint(args) => mint(*args).await,
        Command::Serve(args) => serve(*args).await,
        Command::Jwks { key } => jwks(&key),
    };
    match outcome {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("baton-minter: {}: {}", failure.code, failure.message);
            ExitCode::from(failure.status)
        }
    }
}

fn jwks(key: &std::path::Path) -> Result<String, Failure> {
    let key = SigningKey::from_file(key).map_err(|e| Failure::setup("KEY_INVALID", e))?;
    let jwks = baton::token::KeySet::new(vec![key.public()]).to_jwks();
    serde_json::to_string_pretty(&jwks).map_err(|e| Failure::setup("KEY_INVALID", e))
}

/// The minter `args` describe, with its replay guard and revocations connected.
async fn build_minter(args: MinterArgs) -> Result<Minter, Failure> {
    let key = SigningKey::from_file(&args.key).map_err(|e| Failure::setup("KEY_INVALID", e))?;
    let baton_keys = fetch_jwks(&args.baton, &args.tls)
        .await
        .map_err(|e| Failure::setup("JWKS_UNAVAILABLE", e))?;
    // One fleet for both uses of Redis: Baton's revocations under Baton's prefix, and the
    // replay guard, whose keys its own prefix names (`<prefix>jti:<jti>`).
    let fleet = match &args.redis {
        Some(url) => {
            let tls = baton::cli::serve::redis_tls(
                args.redis_ca.as_deref(),
                args.redis_cert.as_deref(),
                args.redis_key.as_deref(),
            )
            .map_err(|e| Failure::setup("REDIS_INVALID", e))?;
            let settings = RedisSettings {
                tls,
                prefix: args.baton_redis_prefix.clone(),
                // A one-shot command, not a request path: it can wait for the connection.
                op_timeout: std::time::Duration::from_secs(2),
                ..RedisSettings::new(vec![url.clone()])
            };
            Some(Fleet::start(settings).map_err(|e| Failure::setup("REDIS_INVALID", e))?)
        }
        None => None,
    };
    let replay: Arc<dyn ReplayGuard> = match &fleet {
        Some(fleet) => Arc::new(
            RedisReplayGuard::connect(Arc::clone(fleet), &args.redis_prefix)
                .await
                .map_err(|e| Failure::setup("REPLAY_STORE_UNAVAILABLE", e))?,
        ),
        None => match &args.replay_file {
            Some(path) => Arc::new(
                FileReplayGuard::open(path)
                    .map_err(|e| Failure::setup("REPLAY_STORE_UNAVAILABLE", e))?,
            ),
            None => Arc::new(MemoryReplayGuard::default()),
        },
    };
    let revocations = match (fleet, &args.revocations_file) {
        (Some(fleet), _) => {
            let store = Arc::new(RedisRevocations::new(fleet));
            let revocations = Revocations::shared(
                store,
                None,
                Arc::new(SystemClock),
                Arc::new(baton::metrics::Metrics::new()),
            )
            .map_err(|e| Failure::setup("REVOCATIONS_UNAVAILABLE", e))?;
            // Unknown whether the transaction is revoked, so nothing is minted.
            if !revocations.reload().await {
                return Err(Failure::setup(
                    "REVOCATIONS_UNAVAILABLE",
                    anyhow::anyhow!("cannot read Baton's revocations from Redis"),
                ));
            }
            Some(revocations)
        }
        (None, Some(path)) => Some(
            Revocations::open(Some(path.clone()), Arc::new(SystemClock))
                .map_err(|e| Failure::setup("REVOCATIONS_UNAVAILABLE", e))?,
        ),
        (None, None) => None,
    };
    Ok(Minter {
        revocations,
        baton_issuer: args.baton_issuer,
        audience: args.audience,
        issuer: args.issuer,
        key,
        baton_keys,
        replay,
        understood: args.understood.into_iter().collect(),
    })
}

/// Serves the token endpoint until Ctrl-C.
async fn serve(args: ServeArgs) -> Result<String, Failure> {
    let listen = args.listen;
    if args.minter.redis.is_none() && args.minter.replay_file.is_none() {
        // A long-running endpoint with a memory of its own forgets every redemption on restart.
        return Err(Failure::setup(
            "REPLAY_STORE_REQUIRED",
            anyhow::anyhow!(
                "serve needs --redis or --replay-file, so single use outlives the process"
            ),
        ));
    }
    let minter = Arc::new(build_minter(args.minter).await?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::setup("LISTEN_FAILED", e))?;
    eprintln!("baton-minter: serving the token endpoint on http://{listen}/token");
    axum::serve(listener, baton::minter::token_endpoint::router(minter))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::setup("SERVE_FAILED", e))?;
    Ok(String::new())
}

async fn mint(args: MintArgs) -> Result<String, Failure> {
    let verdict = match args.verdict {
        Some(verdict) => verdict,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::setup("VERDICT_UNREADABLE", e))?;
            text
        }
    };
    let minter = build_minter(args.minter).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let minted = minter
        .mint(verdict.trim(), now)
        .await
        .map_err(|e| Failure {
            code: e.code(),
            message: format!("{:#}", anyhow::Error::from(e)),
            status: 1,
        })?;
    if args.json {
        let json = serde_json::json!({
            "access_token": minted.token,
            "token_type": "Bearer",
            "expires_in": minted.claims.exp.saturating_sub(now),
            "claims": minted.claims,
        });
        serde_json::to_string_pretty(&json).map_err(|e| Failure::setup("OUTPUT_FAILED", e))
    } else {
        Ok(minted.token)
    }
}
