//! Settings: built-in defaults, then `config.toml`, then `SHOPD_*`
//! environment variables, then command-line flags, each overriding the one
//! before. Checked once at start-up; any problem names its file, key or value.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::store::Durability;

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "config.toml";

/// shopd: a small online shop's backend (items, carts, chat, metrics) in one binary.
#[derive(Debug, Default, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML config file [default: ./config.toml when present]
    #[arg(long, env = "SHOPD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the database; created if missing, locked while shopd runs [default: ./data]
    #[arg(long, env = "SHOPD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address and port to serve on; port 0 picks a free one [default: 127.0.0.1:8000]
    #[arg(long, env = "SHOPD_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// When a write is acknowledged: `sync` (on disk, fsynced) or `periodic` (sled's timer) [default: sync]
    #[arg(long, env = "SHOPD_DURABILITY", value_name = "MODE")]
    pub durability: Option<Durability>,
    /// With `durability = "periodic"`: milliseconds between sled's flushes [default: 500]
    #[arg(long, env = "SHOPD_FLUSH_EVERY_MS", value_name = "MS")]
    pub flush_every_ms: Option<u64>,
    /// Largest request body accepted, in bytes; larger ones get 413 [default: 1048576]
    #[arg(long, env = "SHOPD_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,
    /// Seconds a client may take to send a request's headers [default: 10]
    #[arg(long, env = "SHOPD_HEADER_READ_TIMEOUT_SECS", value_name = "SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Most HTTP connections served at once; more wait to be accepted [default: 4096]
    #[arg(long, env = "SHOPD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Seconds to wait for in-flight requests at shutdown [default: 30]
    #[arg(long, env = "SHOPD_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Largest chat message accepted, in bytes; larger ones close with 1009 [default: 65536]
    #[arg(long, env = "SHOPD_CHAT_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub chat_max_message_bytes: Option<usize>,
    /// Messages queued for one chat member before it is dropped with 1008 [default: 1024]
    #[arg(long, env = "SHOPD_CHAT_QUEUE_LEN", value_name = "N")]
    pub chat_queue_len: Option<usize>,
    /// Most chat connections at once; more are closed with 1013 [default: 10000]
    #[arg(long, env = "SHOPD_CHAT_MAX_CONNECTIONS", value_name = "N")]
    pub chat_max_connections: Option<usize>,
    /// Log filter, e.g. `info` or `shopd=debug`; RUST_LOG, when set, wins [default: info]
    #[arg(long, env = "SHOPD_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// The keys of `config.toml`; every one optional, no others allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    durability: Option<Durability>,
    flush_every_ms: Option<u64>,
    max_body_bytes: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    chat_max_message_bytes: Option<usize>,
    chat_queue_len: Option<usize>,
    chat_max_connections: Option<usize>,
    log_level: Option<String>,
}

/// Every setting, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// `ADDR:PORT` to listen on.
    pub listen: String,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// sled's flush interval in `periodic` mode.
    pub flush_every_ms: u64,
    /// Request body limit in bytes.
    pub max_body_bytes: u64,
    /// Time allowed for a request's headers.
    pub header_read_timeout_secs: u64,
    /// Connection limit.
    pub max_connections: usize,
    /// Time allowed for in-flight requests at shutdown.
    pub shutdown_grace_secs: u64,
    /// Chat message limit in bytes.
    pub chat_max_message_bytes: usize,
    /// Per-member chat queue length.
    pub chat_queue_len: usize,
    /// Chat connection limit.
    pub chat_max_connections: usize,
    /// Log filter.
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("data"),
            listen: "127.0.0.1:8000".into(),
            durability: Durability::Sync,
            flush_every_ms: 500,
            max_body_bytes: 1024 * 1024,
            header_read_timeout_secs: 10,
            max_connections: 4096,
            shutdown_grace_secs: 30,
            chat_max_message_bytes: 64 * 1024,
            chat_queue_len: 1024,
            chat_max_connections: 10_000,
            log_level: "info".into(),
        }
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
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value out of its range.
    #[error("setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Settings {
    /// Resolves the settings from parsed flags (which clap already merged
    /// with the environment) and the config file they point to.
    pub fn load(cli: Cli) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => FileSettings::default(),
        };
        let d = Settings::default();
        let settings = Settings {
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            durability: cli.durability.or(file.durability).unwrap_or(d.durability),
            flush_every_ms: cli
                .flush_every_ms
                .or(file.flush_every_ms)
                .unwrap_or(d.flush_every_ms),
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(d.max_body_bytes),
            header_read_timeout_secs: cli
                .header_read_timeout_secs
                .or(file.header_read_timeout_secs)
                .unwrap_or(d.header_read_timeout_secs),
            max_connections: cli
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            shutdown_grace_secs: cli
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .unwrap_or(d.shutdown_grace_secs),
            chat_max_message_bytes: cli
                .chat_max_message_bytes
                .or(file.chat_max_message_bytes)
                .unwrap_or(d.chat_max_message_bytes),
            chat_queue_len: cli
                .chat_queue_len
                .or(file.chat_queue_len)
                .unwrap_or(d.chat_queue_len),
            chat_max_connections: cli
                .chat_max_connections
                .or(file.chat_max_connections)
                .unwrap_or(d.chat_max_connections),
            log_level: cli.log_level.or(file.log_level).unwrap_or(d.log_level),
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let positive = |key, value: u64| {
            if value == 0 {
                Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 1".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("flush_every_ms", self.flush_every_ms)?;
        positive("max_body_bytes", self.max_body_bytes)?;
        positive("header_read_timeout_secs", self.header_read_timeout_secs)?;
        positive("max_connections", self.max_connections as u64)?;
        positive("chat_max_message_bytes", self.chat_max_message_bytes as u64)?;
        positive("chat_queue_len", self.chat_queue_len as u64)?;
        positive("chat_max_connections", self.chat_max_connections as u64)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "data_dir",
                message: "must not be empty".into(),
            });
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|err| ConfigError::Parse {
        path: path.to_path_buf(),
        message: err.to_string().trim_end().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shopd.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9\"\ndata_dir = \"/srv/a\"\n").unwrap();
        let cli = Cli {
            config: Some(path),
            data_dir: Some("/srv/b".into()),
            ..Cli::default()
        };
        let settings = Settings::load(cli).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9");
        assert_eq!(settings.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(settings.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_keys_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shopd.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Settings::load(Cli {
            config: Some(path.clone()),
            ..Cli::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("shopd.toml") && err.contains("lisen"), "{err}");
    }
}
