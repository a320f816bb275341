//! The `baton` binary: parse the command line, set up logging, and run the command.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use baton::approval::Approvals;
use baton::audit::Audit;
use baton::cli::{
    Cli, Command, audit, authorize, govern, keygen, policy, serve::ServeArgs, validate,
};
use baton::decision::Limits;
use baton::delegation::trust::Gateways;
use baton::delegation::verdict::VerdictIssuer;
use baton::fleet::Fleet;
use baton::policy_store::replica::{self, Replica, ReplicaError};
use baton::policy_store::{BundleStore, DirStore, LastGood, RedisStore};
use baton::revocation::Revocations;
use baton::state::Delegation;
use baton::state::State;
use baton::token::{KeySet, Keyring, SigningKey, TrustedIssuer};
use baton::transport::AdminTokens;
use clap::Parser;
use tokio::net::TcpListener;

/// The decision path allocates many small, short-lived values (Cedar expressions, ids); mimalloc
/// serves them markedly faster than the system allocator under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Validate(args) => Ok(if validate::run(&args) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Policy(args) => policy::run(*args).await,
        Command::Govern(args) => govern::run(*args).await,
        Command::Keygen(args) => keygen::run(&args).map(|kid| {
            println!("{kid}");
            ExitCode::SUCCESS
        }),
        Command::Audit(args) => audit::run(args).await.map(|tree| {
            println!("{tree}");
            ExitCode::SUCCESS
        }),
        Command::Authorize(args) => authorize::run(*args).await.map(|printed| {
            println!("{}", printed.text);
            if printed.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// Serves, then flushes the spans however serving ended.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let telemetry = baton::telemetry::init(args.log_format, args.otlp_endpoint.as_deref())?;
    let served = run(args, telemetry.exporting()).await;
    telemetry.shutdown().await;
    served
}

async fn run(args: ServeArgs, exporting: bool) -> anyhow::Result<()> {
    let settings = args.settings();
    let limits = args.bundle_limits();
    let fleet = match args.redis() {
        Some(redis) => {
            tracing::info!(urls = redis.urls.len(), cluster = redis.cluster, prefix = %redis.prefix, "sharing state through Redis");
            Some(Fleet::start(redis)?)
        }
        None => None,
    };
    let (store, last_good) = bundle_store(&args, fleet.clone())?;
    let initial = match replica::initial(
        store.as_ref(),
        last_good.as_ref(),
        &args.bundle,
        &settings,
        &limits,
    )
    .await
    {
        Ok(initial) => initial,
        Err(ReplicaError::Rejected(rejection)) => {
            validate::print_rejection(&rejection);
            anyhow::bail!(
                "not serving: the bundle in `{}` is invalid",
                args.bundle.display()
            );
        }
        Err(ReplicaError::Store(e)) => {
            return Err(e).context("not serving: cannot seed the bundle store");
        }
    };
    let bundle = initial.admitted.bundle;
    for w in bundle.warnings() {
        tracing::warn!(warning = %w, "bundle warning");
    }
    let admin_tokens = admin_tokens(&args)?;
    let delegation = delegation(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let http_listener = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_listen))?;
    let admin_listener = match &admin_tokens {
        Some(_) => Some(
            TcpListener::bind(args.admin_listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.admin_listen))?,
        ),
        None => {
            tracing::info!(
                "no admin token (--admin-token-file or BATON_ADMIN_TOKEN): the admin API is off, audit queries included"
            );
            None
        }
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        http = %http_listener.local_addr()?,
        admin = ?admin_listener.as_ref().and_then(|l| l.local_addr().ok()),
        revision = ?initial.record.as_ref().map(|r| r.revision),
        version = bundle.version(),
        policies = bundle.policy_count(),
        kid = delegation.keyring.signer().kid(),
        otlp = exporting,
        "serving"
    );
    let revocations =
        Revocations::open(Some(args.store_dir.join("revocations.json")), fleet.clone())
            .context("cannot load the revocations")?;
    let approvals = Approvals::new(
        fleet.clone(),
        args.approval_obligation.clone(),
        std::time::Duration::from_secs(args.approval_ttl),
    );
    let state = Arc::new(
        State::with_delegation(bundle, settings, Limits::default(), delegation)
            .with_cache(args.cache(), fleet.clone())
            .with_governance(revocations, approvals)
            .with_audit(Audit::start(&args.audit(), fleet.clone())?),
    );
    let replica = Arc::new(Replica::new(
        state.clone(),
        store,
        last_good,
        limits,
        initial.record,
    ));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    tokio::spawn(replica.clone().follow(stopped(stopping.clone())));
    let admin = async {
        match (admin_listener, admin_tokens) {
            (Some(listener), Some(tokens)) => {
                baton::server::run_admin(listener, replica, tokens, stopped(stopping.clone())).await
            }
            _ => Ok(()),
        }
    };
    let drain = std::time::Duration::from_secs(args.drain_timeout);
    // HTTP outlives the gRPC drain, so probes see `/readyz` fail and scrapes see the last calls.
    let (drained, http_stop) = tokio::sync::oneshot::channel::<()>();
    let grpc_state = state.clone();
    let grpc_stop = stopped(stopping.clone());
    let grpc = async move {
        let served = baton::server::run_with_drain(listener, grpc_state, grpc_stop, drain).await;
        let _ = drained.send(());
        served
    };
    let http = baton::http::run(http_listener, state.clone(), async {
        let _ = http_stop.await;
    });
    let (grpc, http, admin) = tokio::join!(grpc, http, admin);
    state.audit.flush().await;
    tracing::info!(stats = ?state.audit.stats(), "audit trail flushed");
    grpc?;
    http?;
    admin?;
    tracing::info!("stopped after draining in-flight calls");
    Ok(())
}

/// Where bundles live: Redis with a local last good copy, or a local directory.
fn bundle_store(
    args: &ServeArgs,
    fleet: Option<Arc<Fleet>>,
) -> anyhow::Result<(Arc<dyn BundleStore>, Option<LastGood>)> {
    let in_dir = |e| anyhow::anyhow!("cannot use the store directory: {e}");
    match fleet {
        Some(fleet) => {
            let store = RedisStore::new(fleet, REDIS_TIMEOUT);
            let last_good = LastGood::in_dir(&args.store_dir).map_err(in_dir)?;
            Ok((Arc::new(store), Some(last_good)))
        }
        None => Ok((
            Arc::new(DirStore::open(&args.store_dir).map_err(in_dir)?),
            None,
        )),
    }
}

/// Bound on every Redis command of the bundle store.
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The admin tokens from `--admin-token-file`, else `BATON_ADMIN_TOKEN`; none turns the admin
/// API off rather than leave it open.
fn admin_tokens(args: &ServeArgs) -> anyhow::Result<Option<AdminTokens>> {
    if let Some(path) = &args.admin_token_file {
        return Ok(Some(AdminTokens::from_file(path)?));
    }
    match std::env::var("BATON_ADMIN_TOKEN") {
        Ok(token) => Ok(Some(AdminTokens::single(&token)?)),
        Err(_) => Ok(None),
    }
}

/// Keys, issuers and gateway trust from the flags.
fn delegation(args: &ServeArgs) -> anyhow::Result<Delegation> {
    let signer = match &args.signing_key {
        Some(path) => SigningKey::from_file(path)
            .with_context(|| format!("cannot load the signing key `{}`", path.display()))?,
        None => {
            tracing::warn!(
                "no --signing-key: verdicts are signed with an ephemeral key that ends with this process"
            );
            SigningKey::generate()
        }
    };
    let mut published = Vec::new();
    for path in &args.publish_keys {
        let keys = KeySet::from_file(path)
            .with_context(|| format!("cannot load the published keys `{}`", path.display()))?;
        published.extend(keys.keys().iter().cloned());
    }
    let mut trusted = Vec::new();
    for (issuer, path) in &args.trusted_issuers {
        let keys = KeySet::from_file(path)
            .with_context(|| format!("cannot load the keys of issuer `{issuer}`"))?;
        trusted.push(TrustedIssuer {
            issuer: issuer.clone(),
            keys,
        });
    }
    let gateways = match &args.gateway_tokens {
        Some(path) => Gateways::from_file(path)?,
        None => {
            tracing::info!(
                "no --gateway-tokens: callers on the loopback interface are the trusted gateways"
            );
            Gateways::default()
        }
    };
    Ok(Delegation::new(
        Keyring::new(signer, published),
        VerdictIssuer {
            issuer: args.issuer.clone(),
            audience: args.verdict_audience.clone(),
            lifetime_secs: args.verdict_lifetime,
        },
        trusted,
        args.asserted_chains,
        gateways,
    ))
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
