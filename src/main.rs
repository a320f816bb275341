//! The `baton` binary: parse the command line, set up logging, and run the command.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use baton::bundle::PolicyBundle;
use baton::cli::{Cli, Command, authorize, keygen, serve::ServeArgs, validate};
use baton::decision::Limits;
use baton::delegation::trust::Gateways;
use baton::delegation::verdict::VerdictIssuer;
use baton::state::Delegation;
use baton::state::State;
use baton::token::{KeySet, Keyring, SigningKey, TrustedIssuer};
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
        Command::Keygen(args) => keygen::run(&args).map(|kid| {
            println!("{kid}");
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
    let bundle = match PolicyBundle::load(&args.bundle) {
        Ok(bundle) => bundle,
        Err(e) => {
            validate::print_errors(&e);
            anyhow::bail!(
                "not serving: the bundle in `{}` is invalid",
                args.bundle.display()
            );
        }
    };
    for w in bundle.warnings() {
        tracing::warn!(warning = %w, "bundle warning");
    }
    let delegation = delegation(&args)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let http_listener = TcpListener::bind(args.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        http = %http_listener.local_addr()?,
        bundle = %args.bundle.display(),
        version = bundle.version(),
        policies = bundle.policy_count(),
        kid = delegation.keyring.signer().kid(),
        otlp = exporting,
        "serving"
    );
    let state = Arc::new(
        State::with_delegation(bundle, args.settings(), Limits::default(), delegation)
            .with_cache(args.cache()),
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let drain = std::time::Duration::from_secs(args.drain_timeout);
    // HTTP outlives the gRPC drain, so probes see `/readyz` fail and scrapes see the last calls.
    let (drained, http_stop) = tokio::sync::oneshot::channel::<()>();
    let grpc_state = state.clone();
    let grpc = async move {
        let served =
            baton::server::run_with_drain(listener, grpc_state, stopped(stopping), drain).await;
        let _ = drained.send(());
        served
    };
    let http = baton::http::run(http_listener, state, async {
        let _ = http_stop.await;
    });
    let (grpc, http) = tokio::join!(grpc, http);
    grpc?;
    http?;
    tracing::info!("stopped after draining in-flight calls");
    Ok(())
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
