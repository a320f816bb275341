//! The `baton` binary: parse the command line, set up logging, and run the command.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use baton::bundle::PolicyBundle;
use baton::cli::{Cli, Command, authorize, serve::ServeArgs, validate};
use baton::decision::Limits;
use baton::state::State;
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
        Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Validate(args) => Ok(if validate::run(&args) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    baton::telemetry::init(args.log_format).map_err(|e| anyhow::anyhow!(e))?;
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
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        bundle = %args.bundle.display(),
        version = bundle.version(),
        policies = bundle.policy_count(),
        "serving"
    );
    let state = Arc::new(State::new(bundle, args.settings(), Limits::default()));
    let drain = std::time::Duration::from_secs(args.drain_timeout);
    baton::server::run_with_drain(listener, state, shutdown_signal(), drain).await?;
    tracing::info!("stopped after draining in-flight calls");
    Ok(())
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
