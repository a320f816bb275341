//! The configuration file of `baton serve` (TOML): every flag of `serve`, named as the flag
//! without its dashes, at the top level or in a table named after the flag's first word
//! (`[redis] url = [...]` is `redis-url`). Precedence: file < environment < flags.
//!
//! The file's values become the flags' defaults before the command line is parsed, so clap
//! still does what it does for every flag (its environment variable, its type, its checks)
//! and the precedence needs no code of its own: a flag given on the command line beats its
//! environment variable, which beats its default. That is also why this is not figment: clap
//! already holds each flag's name, variable, type and default, and a second layer merging
//! the same settings would be one more place for them to disagree.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The flag (and variable) naming the configuration file of `serve`.
pub const CONFIG_FLAG: &str = "config";
/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "BATON_CONFIG";

/// Why a configuration file was refused; each names the file and, where it can, the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file cannot be read.
    #[error("cannot read the configuration file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML.
    #[error("`{}` is not valid TOML: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// Where and what, from the TOML parser.
        message: String,
    },
    /// A setting that `serve` has no flag for.
    #[error(
        "`{}`: unknown setting `{key}` (settings are the flags of `baton serve` without their dashes, such as `redis-url`)",
        path.display()
    )]
    Unknown {
        /// The file.
        path: PathBuf,
        /// The setting as written, with its table.
        key: String,
    },
    /// A setting whose value the flag does not take.
    #[error("`{}`: setting `{key}`: {message}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// The setting.
        key: String,
        /// Why the value is refused.
        message: String,
    },
}

/// The settings a file gives, as the flags' ids with their values as text.
#[derive(Debug, Default)]
pub struct ConfigFile {
    path: PathBuf,
    settings: Vec<(String, Vec<String>)>,
}

impl ConfigFile {
    /// Reads `path` and checks every setting against `serve`'s flags.
    pub fn read(path: &Path, serve: &Command) -> Result<Self, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, serve)
    }

    /// Checks the TOML `text` (read from `path`) against `serve`'s flags.
    pub fn parse(text: &str, path: &Path, serve: &Command) -> Result<Self, ConfigFileError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigFileError::Toml {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
        let mut flat = Vec::new();
        flatten("", &table, &mut flat);
        let isolated = without_environment(serve);
        let mut settings = Vec::new();
        for (key, value) in flat {
            let long = key.replace('_', "-");
            let unknown = || ConfigFileError::Unknown {
                path: path.to_owned(),
                key: key.clone(),
            };
            let Some(arg) = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
            else {
                return Err(unknown());
            };
            if long == CONFIG_FLAG {
                return Err(unknown());
            }
            let refused = |message: String| ConfigFileError::Value {
                path: path.to_owned(),
                key: key.clone(),
                message,
            };
            let values = scalars(&value).map_err(refused)?;
            check_values(&isolated, arg, &values).map_err(refused)?;
            settings.push((arg.get_id().to_string(), values));
        }
        Ok(Self {
            path: path.to_owned(),
            settings,
        })
    }

    /// `serve` with the file's settings as its flags' defaults.
    pub fn apply(&self, mut serve: Command) -> Command {
        for (id, values) in &self.settings {
            let values = values.clone();
            serve = serve.mut_arg(id, move |arg| arg.default_values(values));
        }
        serve
    }
}

/// `serve` deaf to the environment, so a value is checked on its own.
fn without_environment(serve: &Command) -> Command {
    let ids: Vec<String> = serve
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .map(|a| a.get_id().to_string())
        .collect();
    ids.into_iter().fold(serve.clone(), |command, id| {
        command.mut_arg(id, |arg| arg.env(None::<&str>))
    })
}

/// Checks `values` as the flag `arg` would take them on the command line, with every check
/// of its type (numbers, ranges, choices, addresses). Only errors about the value count: a
/// flag that needs another (`--tls-cert` without `--tls-key`) is for the whole configuration
/// to satisfy, and `serve` checks that when it starts.
fn check_values(isolated: &Command, arg: &clap::Arg, values: &[String]) -> Result<(), String> {
    use clap::error::ErrorKind;
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let mut line = vec!["serve".to_owned()];
    if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        match values {
            [v] if v == "true" => line.push(format!("--{long}")),
            [v] if v == "false" => {}
            _ => return Err("expected true or false".into()),
        }
    } else {
        for v in values {
            line.push(format!("--{long}={v}"));
        }
    }
    match isolated.clone().try_get_matches_from(line) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::InvalidValue
                    | ErrorKind::ValueValidation
                    | ErrorKind::InvalidUtf8
                    | ErrorKind::WrongNumberOfValues
                    | ErrorKind::TooManyValues
                    | ErrorKind::TooFewValues
                    | ErrorKind::ArgumentConflict
            ) =>
        {
            Err(first_line(&e.to_string()))
        }
        Err(_) => Ok(()),
    }
}

/// `table`'s settings with the names of the tables they sit in joined by dashes.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}-{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            other => out.push((name, other.clone())),
        }
    }
}

/// A setting's values as a flag would be given them: an array gives one value per element.
fn scalars(value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(_) => Err("a date is not a value of any flag".into()),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err("expected a string, number or boolean, or an array of them".into())
        }
    }
}

fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.trim_start_matches("error: ").to_owned()
}

/// The configuration file `args` (a whole `baton` command line) names for `serve`: its
/// `--config` flag, else [`CONFIG_ENV`].
pub fn named_in(args: &[OsString]) -> Option<PathBuf> {
    let mut rest = args.iter().skip(1).map(|a| a.to_string_lossy());
    if rest.next().as_deref() != Some("serve") {
        return None;
    }
    let flag = format!("--{CONFIG_FLAG}");
    let mut rest = rest.peekable();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        if arg == flag {
            return rest.next().map(|p| PathBuf::from(p.as_ref()));
        }
        if let Some(path) = arg.strip_prefix(&format!("{flag}=")) {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os(CONFIG_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The effective configuration of `serve` as TOML a configuration file could hold, each
/// setting with where its value came from; secrets in URLs are masked.
pub fn effective(matches: &ArgMatches, file: &ConfigFile) -> String {
    // The flags in the order `serve --help` shows them.
    let serve = <crate::cli::serve::ServeArgs as clap::Args>::augment_args(Command::new("serve"));
    let mut out = String::new();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let id = arg.get_id().as_str();
        if long == CONFIG_FLAG || long == "help" || long == "version" {
            continue;
        }
        let Some(raw) = matches.get_raw(id) else {
            let _ = writeln!(out, "# {long} is not set");
            continue;
        };
        let values: Vec<String> = raw.map(|v| masked(&v.to_string_lossy())).collect();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_owned(),
            Some(ValueSource::EnvVariable) => arg.get_env().map_or("environment".to_owned(), |e| {
                e.to_string_lossy().into_owned()
            }),
            // The file's values are the flags' defaults.
            _ if file.settings.iter().any(|(set, _)| set == id) => {
                format!("file {}", file.path.display())
            }
            _ => "default".to_owned(),
        };
        let value = if values.len() == 1 && !is_list(arg) {
            toml_string(&values[0])
        } else {
            let items: Vec<String> = values.iter().map(|v| toml_string(v)).collect();
            format!("[{}]", items.join(", "))
        };
        let _ = writeln!(out, "{long} = {value}  # {source}");
    }
    out
}

fn is_list(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), clap::ArgAction::Append)
}

/// Text as a TOML value: numbers and booleans as they are, anything else quoted.
fn toml_string(value: &str) -> String {
    if value == "true" || value == "false" || value.parse::<i64>().is_ok() {
        value.to_owned()
    } else {
        toml::Value::String(value.to_owned()).to_string()
    }
}

/// A URL's password replaced by `****`; anything else as it is.
fn masked(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return value.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    format!("{scheme}://{user}:****@{host}{path}")
}

#[cfg(test)]
mod tests {
    use clap::{Args as _, FromArgMatches as _};

    use super::*;
    use crate::cli::serve::ServeArgs;

    fn serve() -> Command {
        ServeArgs::augment_args(Command::new("serve"))
    }

    fn parsed(file: &str, flags: &[&str]) -> ServeArgs {
        let config = ConfigFile::parse(file, Path::new("baton.toml"), &serve()).unwrap();
        let matches = config
            .apply(serve())
            .try_get_matches_from(std::iter::once("serve").chain(flags.iter().copied()))
            .unwrap();
        ServeArgs::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn a_file_sets_flags_at_the_top_and_in_tables() {
        let args = parsed(
            r#"
            max-depth = 3
            allow_cycles = true
            listen = "127.0.0.1:7000"
            [redis]
            url = ["redis://a:6379", "redis://b:6379"]
            timeout-ms = 40
            "#,
            &[],
        );
        assert_eq!(args.decision.max_depth, 3);
        assert!(args.decision.allow_cycles);
        assert_eq!(args.listen.port(), 7000);
        assert_eq!(args.redis_urls, ["redis://a:6379", "redis://b:6379"]);
        assert_eq!(args.redis_timeout_ms, 40);
    }

    #[test]
    fn the_audit_context_is_a_setting_of_the_audit_table() {
        use crate::audit::AuditContext;
        assert_eq!(parsed("", &[]).audit().context, AuditContext::Hash);
        let full = parsed("[audit]\ncontext = \"full\"", &[]);
        assert_eq!(full.audit().context, AuditContext::Full);
        let none = parsed("audit-context = \"none\"", &[]);
        assert_eq!(none.audit().context, AuditContext::None);
        let bad = ConfigFile::parse("[audit]\ncontext = \"all\"", Path::new("b.toml"), &serve())
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("`audit-context`") && bad.contains("all"),
            "{bad}"
        );
    }

    #[test]
    fn flags_beat_the_file() {
        let args = parsed("max-depth = 3", &["--max-depth", "7"]);
        assert_eq!(args.decision.max_depth, 7);
    }

    #[test]
    fn unknown_settings_and_bad_values_name_the_file_and_setting() {
        let unknown = ConfigFile::parse("[redis]\nurls = []", Path::new("b.toml"), &serve())
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("`b.toml`") && unknown.contains("`redis-urls`"),
            "{unknown}"
        );
        let bad = ConfigFile::parse("max-depth = \"deep\"", Path::new("b.toml"), &serve())
            .unwrap_err()
            .to_string();
        assert!(bad.contains("`max-depth`") && bad.contains("deep"), "{bad}");
        let nested = ConfigFile::parse("listen = [[1]]", Path::new("b.toml"), &serve())
            .unwrap_err()
            .to_string();
        assert!(nested.contains("`listen`"), "{nested}");
        let not_toml = ConfigFile::parse("listen = ", Path::new("b.toml"), &serve())
            .unwrap_err()
            .to_string();
        assert!(not_toml.contains("not valid TOML"), "{not_toml}");
    }

    #[test]
    fn the_config_file_is_found_after_serve() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            named_in(&args(&["baton", "serve", "--config", "x.toml"])),
            Some(PathBuf::from("x.toml"))
        );
        assert_eq!(
            named_in(&args(&[
                "baton",
                "serve",
                "--listen",
                "a:1",
                "--config=y.toml"
            ])),
            Some(PathBuf::from("y.toml"))
        );
        assert_eq!(
            named_in(&args(&["baton", "validate", "--config", "x"])),
            None
        );
    }

    #[test]
    fn the_effective_configuration_is_a_file_again_with_secrets_masked() {
        let file = "[redis]\nurl = [\"redis://app:hunter2@cache:6379/0\"]\n";
        let config = ConfigFile::parse(file, Path::new("a.toml"), &serve()).unwrap();
        let command = config.apply(serve());
        let matches = command.clone().try_get_matches_from(["serve"]).unwrap();
        let printed = effective(&matches, &config);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("redis://app:****@cache:6379/0"),
            "{printed}"
        );
        // What is printed reads back as a configuration (the masked password aside).
        let again = ConfigFile::parse(&printed, Path::new("printed.toml"), &serve());
        assert!(again.is_ok(), "{again:?}\n{printed}");
    }
}
