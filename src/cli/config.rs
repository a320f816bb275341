//! `baton config check [FILE]`: reads a configuration file of `serve` the way `serve` would
//! (with this environment's `BATON_*` variables over it), checks everything `serve` checks
//! before listening (keys, token files, TLS files, settings that must agree), and prints the
//! effective configuration, with where each value came from and secrets masked.

use std::path::PathBuf;

use clap::{Args, Command, FromArgMatches as _};

use super::config_file::{ConfigFile, effective};
use super::serve::ServeArgs;

/// The flags of `baton config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do with a configuration file.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The subcommands of `baton config`.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file (or, without one, the environment alone) and print the
    /// effective configuration of `serve`.
    Check {
        /// The TOML file; without it, the `BATON_*` environment is checked alone.
        file: Option<PathBuf>,
    },
}

/// Checks the file; the effective configuration as TOML, or why it is refused.
pub fn run(args: &ConfigArgs) -> anyhow::Result<String> {
    let ConfigCommand::Check { file } = &args.command;
    let serve = ServeArgs::augment_args(Command::new("serve"));
    let config = match file {
        Some(file) => ConfigFile::read(file, &serve)?,
        None => ConfigFile::default(),
    };
    let serve = config.apply(serve);
    let matches = serve.clone().try_get_matches_from(["serve"])?;
    let args = ServeArgs::from_arg_matches(&matches)?;
    args.config()?;
    let mut printed = effective(&matches, &config);
    if std::env::var_os("BATON_ADMIN_TOKEN").is_some() {
        printed.push_str("# admin token: from BATON_ADMIN_TOKEN (not shown)\n");
    }
    Ok(printed)
}
