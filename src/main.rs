//! The `baton` binary: parse the command line, set up logging, and run the command.

use std::process::ExitCode;

use anyhow::Context as _;
use baton::app::{Application, BuildError};
use baton::cli::{
    Command, audit, authorize, config, demo_pki, govern, health, keygen, policy, serve::ServeArgs,
    validate,
};

/// The decision path allocates many small, short-lived values (Cedar expressions, ids); mimalloc
/// serves them markedly faster than the system allocator under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match baton::cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Validate(args) => Ok(if validate::run(&args) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Policy(args) => policy::run(*args).await,
        Command::Govern(args) => govern::run(*args).await,
        Command::Health(args) => health::run(&args).await.map(|report| {
            println!("{report}");
            ExitCode::SUCCESS
        }),
        Command::Config(args) => config::run(&args).map(|effective| {
            print!("{effective}");
            ExitCode::SUCCESS
        }),
        Command::Keygen(args) => keygen::run(&args).map(|kid| {
            println!("{kid}");
            ExitCode::SUCCESS
        }),
        Command::DemoPki(args) => demo_pki::run(&args).map(|written| {
            println!("{written}");
            ExitCode::SUCCESS
        }),
        Command::Audit(args) => audit::run(args).await.map(|tree| {
            println!("{tree}");
            ExitCode::SUCCESS
        }),
        Command::Authorize(args) => authorize::run(*args).await.map(|printed| {
            println!("{}", printed.text);
            ExitCode::from(printed.exit_code())
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
    let served = run(&args, telemetry.exporting()).await;
    telemetry.shutdown().await;
    served
}

async fn run(args: &ServeArgs, exporting: bool) -> anyhow::Result<()> {
    let app = match Application::build(args.config()?).await {
        Ok(app) => app,
        Err(BuildError::Bundle(rejection)) => {
            validate::print_rejection(&rejection);
            anyhow::bail!(
                "not serving: the bundle in `{}` is invalid",
                args.bundle.display()
            );
        }
        Err(e) => return Err(e).context("not serving"),
    };
    let bundle = app.pipeline().bundle();
    tracing::info!(
        listen = %app.decision_addr(),
        http = %app.http_addr(),
        admin = ?app.admin_addr(),
        revision = ?app.revision(),
        from = %app.served_from(),
        version = bundle.version(),
        policies = bundle.policy_count(),
        kid = app.pipeline().delegation().keyring.signer().kid(),
        alg = %app.pipeline().delegation().keyring.signer().algorithm(),
        otlp = exporting,
        "serving"
    );
    drop(bundle);
    app.run_until_stopped(shutdown_signal()).await?;
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
