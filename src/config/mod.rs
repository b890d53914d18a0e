//! Settings: built-in defaults, then `config.toml`, then `SHOPD_*`
//! environment variables, then command-line flags, each overriding the one
//! before. Checked once at start-up; a refusal names the flag, variable or
//! file key that gave the value.
//!
//! Outside, keys are flat snake_case (one `SHOPD_<KEY>` and one `--<key>`
//! each); inside, [`Settings`] groups them by concern ([`Server`],
//! [`Limits`], [`Storage`], [`Chat`], [`Admin`], [`Backup`], [`Log`]), each field of a
//! type that cannot hold a bad value (`NonZero*`, `Duration`,
//! `SocketAddr`, ...).
//!
//! Here: loading and the checks across keys; `keys`: the one list of
//! settings, defaults included; `value`: how a value is read and checked;
//! `layers`: where a value comes from; `cli`: the commands and their flags;
//! `secret`: the admin token, never shown.

mod cli;
mod keys;
mod layers;
mod secret;
mod value;

use std::path::PathBuf;

pub use crate::store::DatabaseUrl;

pub use self::cli::{Cli, Command, ExportArgs, ImportArgs, StoreArgs, completions, man};
pub use self::keys::{
    Admin, Backup, Chat, KEYS, Limits, Log, ServeArgs, Server, Settings, Storage,
};
pub use self::layers::{Origin, Source};
pub use self::secret::{ADMIN_TOKEN_ENV, Secret, admin_token};
pub use self::value::{LogFilter, SubjectPrefix};

use self::layers::{Layers, Sources};

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "config.toml";

/// The variable that may name the config file instead of `--config`.
pub const CONFIG_ENV: &str = "SHOPD_CONFIG";

/// One setting as the operator sees it.
#[derive(Debug)]
pub struct Key {
    /// The `config.toml` key; the flag is `--` and this with dashes.
    pub name: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// Its default as a TOML value, or `none` when unset by default.
    pub default: &'static str,
    /// What it does (the `--help` text, without the default).
    pub help: &'static str,
}

/// A flag's `--help` line: what it does, its variable, its default.
fn help_line(help: &str, env: &str, default: &str) -> String {
    if default == "none" {
        // Its help says what unset means.
        format!("{help} [env: {env}]")
    } else {
        format!(
            "{help} [env: {env}] [default: {}]",
            default.trim_matches('"')
        )
    }
}

/// A setting that stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value refused; `at` names where it came from (`--listen`,
    /// `SHOPD_LISTEN`, `listen in FILE`).
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
    /// Two settings that cannot go together.
    #[error("{first} conflicts with {second}: {why}")]
    Conflict {
        first: String,
        second: String,
        why: &'static str,
    },
}

impl Settings {
    /// Resolves the settings from the flags, the process's environment and
    /// the config file they point to.
    pub fn load(flags: &ServeArgs) -> Result<Settings, ConfigError> {
        Settings::load_from(flags, &|name| std::env::var(name).ok())
    }

    /// Resolves the settings from the flags, the variables `env` reads
    /// (an empty one counts as unset) and the config file they point to.
    pub fn load_from(
        flags: &ServeArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let path = flags
            .config
            .clone()
            .or_else(|| env(CONFIG_ENV).map(PathBuf::from))
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|path| path.is_file()));
        let file = match path {
            Some(path) => {
                let table = layers::read_file(&path, KEYS)?;
                Some((path, table))
            }
            None => None,
        };
        let mut sources = Sources::default();
        let mut settings = keys::resolve(&Layers::new(flags, &env, file), &mut sources)?;
        settings.admin.token = token(env(ADMIN_TOKEN_ENV), &settings.admin, &sources)?;
        settings.check(&sources)?;
        Ok(settings)
    }

    /// The checks that involve more than one key.
    fn check(&self, sources: &Sources) -> Result<(), ConfigError> {
        if self.storage.database_url.is_some() && sources.is_set("data_dir") {
            return Err(ConfigError::Conflict {
                first: sources.of("data_dir"),
                second: sources.of("database_url"),
                why: "the data directory is not used with PostgreSQL; set one of them",
            });
        }
        if !self.backup.every.is_zero() && self.backup.dir.is_none() {
            return Err(ConfigError::Invalid {
                at: sources.of("backup_every_secs"),
                message:
                    "scheduled backups need backup_dir (SHOPD_BACKUP_DIR): where to write them"
                        .into(),
            });
        }
        if self.admin.protect_catalogue && self.admin.token.is_none() {
            return Err(ConfigError::Invalid {
                at: sources.of("protect_catalogue"),
                message: format!("needs an admin token (admin_token_file or {ADMIN_TOKEN_ENV})"),
            });
        }
        Ok(())
    }
}

/// The `SHOPD_*` variables among `names` that are not shopd's (a typo such
/// as `SHOPD_LISTN`, or a setting this version does not have): shopd warns
/// about them rather than silently using a default.
pub fn unknown_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = |name: &str| {
        name == CONFIG_ENV || name == ADMIN_TOKEN_ENV || KEYS.iter().any(|key| key.env == name)
    };
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with("SHOPD_") && !known(name))
        .collect();
    unknown.sort();
    unknown
}

/// The admin token from the variable `SHOPD_ADMIN_TOKEN` or from the file
/// `admin_token_file` names, not both; a refusal names its source.
fn token(
    from_env: Option<String>,
    admin: &Admin,
    sources: &Sources,
) -> Result<Option<Secret>, ConfigError> {
    match (from_env, &admin.token_file) {
        (Some(_), Some(_)) => Err(ConfigError::Conflict {
            first: ADMIN_TOKEN_ENV.into(),
            second: sources.of("admin_token_file"),
            why: "both give the admin token; set one of them",
        }),
        (Some(token), None) => {
            secret::token_of(&token)
                .map(Some)
                .map_err(|message| ConfigError::Invalid {
                    at: ADMIN_TOKEN_ENV.into(),
                    message,
                })
        }
        (None, Some(path)) => {
            secret::token_in(path)
                .map(Some)
                .map_err(|message| ConfigError::Invalid {
                    at: sources.of("admin_token_file"),
                    message,
                })
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests;
