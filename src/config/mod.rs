//! Settings: built-in defaults, then `config.toml`, then `SHOPD_*`
//! environment variables, then command-line flags, each overriding the one
//! before. Checked once at start-up; any problem names its file, key or value.
//!
//! Each setting is declared once, in the `settings!` list below: that one
//! line makes its flag (with its `SHOPD_*` variable and `--help` text), its
//! `config.toml` key, its field of [`Settings`] and its default.
//!
//! Here: the list, the layering and the checks; `cli`: the commands and
//! their flags; `secret`: the admin token, never shown.

mod cli;
mod secret;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chat::BusUrls;
use crate::http::client::TrustedProxies;
use crate::http::layers::Origins;
pub use crate::store::DatabaseUrl;
use crate::store::Durability;

pub use self::cli::{Cli, Command, ExportArgs, ImportArgs, StoreArgs};
pub use self::secret::{ADMIN_TOKEN_ENV, Secret, admin_token};

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "config.toml";

/// Declares every setting once. `required` settings always have a value
/// (their default when no layer sets them); `optional` ones may stay unset.
/// Each entry: doc lines (the `--help` text), `name: Type = default`
/// (optional ones have no default), the environment variable, the value's
/// name in `--help`.
macro_rules! settings {
    (
        required {$(
            $(#[doc = $doc:literal])*
            $name:ident: $ty:ty = $default:expr, $env:literal, $value:literal;
        )*}
        optional {$(
            $(#[doc = $odoc:literal])*
            $oname:ident: $oty:ty, $oenv:literal, $ovalue:literal;
        )*}
        resolved {$(
            $(#[doc = $rdoc:literal])*
            $rname:ident: $rty:ty;
        )*}
    ) => {
        /// The flags of the server (and their `SHOPD_*` variables); every one
        /// optional, as a lower layer may set it.
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct ServeArgs {
            /// TOML config file [default: ./config.toml when present]
            #[arg(long, env = "SHOPD_CONFIG", value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long, env = $env, value_name = $value)]
                pub $name: Option<$ty>,
            )*
            $(
                $(#[doc = $odoc])*
                #[arg(long, env = $oenv, value_name = $ovalue)]
                pub $oname: Option<$oty>,
            )*
        }

        /// The keys of `config.toml`; every one optional, no others allowed.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $($name: Option<$ty>,)*
            $($oname: Option<$oty>,)*
        }

        /// Every setting, resolved.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                pub $name: $ty,
            )*
            $(
                $(#[doc = $odoc])*
                pub $oname: Option<$oty>,
            )*
            $(
                $(#[doc = $rdoc])*
                pub $rname: Option<$rty>,
            )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings {
                    $($name: $default,)*
                    $($oname: None,)*
                    $($rname: None,)*
                }
            }
        }

        impl Settings {
            /// Flags (already merged with the environment by clap) over the
            /// file over the defaults.
            fn layered(flags: ServeArgs, file: FileSettings) -> Settings {
                let defaults = Settings::default();
                Settings {
                    $($name: flags.$name.or(file.$name).unwrap_or(defaults.$name),)*
                    $($oname: flags.$oname.or(file.$oname),)*
                    $($rname: None,)*
                }
            }
        }
    };
}

settings! {
    required {
        /// Directory of the embedded database; created if missing, locked while shopd runs [default: ./data]
        data_dir: PathBuf = PathBuf::from("data"), "SHOPD_DATA_DIR", "DIR";
        /// Address and port to serve on; port 0 picks a free one [default: 127.0.0.1:8000]
        listen: String = "127.0.0.1:8000".into(), "SHOPD_LISTEN", "ADDR:PORT";
        /// When a write is acknowledged: `sync` (on disk, fsynced) or `periodic` (sled's timer) [default: sync]
        durability: Durability = Durability::Sync, "SHOPD_DURABILITY", "MODE";
        /// With `durability = "periodic"`: milliseconds between sled's flushes [default: 500]
        flush_every_ms: u64 = 500, "SHOPD_FLUSH_EVERY_MS", "MS";
        /// Connections to PostgreSQL each shopd keeps open [default: 16]
        database_pool_size: usize = 16, "SHOPD_DATABASE_POOL_SIZE", "N";
        /// Milliseconds a PostgreSQL statement (or connection attempt) may take before the request fails with 503 [default: 5000]
        database_timeout_ms: u64 = 5000, "SHOPD_DATABASE_TIMEOUT_MS", "MS";
        /// Milliseconds between refreshes of the store's sizes shown in /metrics [default: 5000]
        stats_refresh_ms: u64 = 5000, "SHOPD_STATS_REFRESH_MS", "MS";
        /// Largest request body accepted, in bytes; larger ones get 413 [default: 1048576]
        max_body_bytes: u64 = 1024 * 1024, "SHOPD_MAX_BODY_BYTES", "BYTES";
        /// Seconds a client may take to send a request's headers [default: 10]
        header_read_timeout_secs: u64 = 10, "SHOPD_HEADER_READ_TIMEOUT_SECS", "SECS";
        /// Most HTTP connections served at once; more wait to be accepted [default: 4096]
        max_connections: usize = 4096, "SHOPD_MAX_CONNECTIONS", "N";
        /// Connections one address (the socket peer) may have open, chats included; past it its new connections are closed at once; trusted proxies are exempt [default: 256]
        max_connections_per_client: usize = 256, "SHOPD_MAX_CONNECTIONS_PER_CLIENT", "N";
        /// Seconds to wait for in-flight requests at shutdown [default: 30]
        shutdown_grace_secs: u64 = 30, "SHOPD_SHUTDOWN_GRACE_SECS", "SECS";
        /// Seconds shopd keeps serving after SIGTERM while /readyz answers 503, so load balancers move traffic away before it stops; SIGINT or a second signal skips it [default: 0]
        shutdown_drain_secs: u64 = 0, "SHOPD_SHUTDOWN_DRAIN_SECS", "SECS";
        /// Seconds a client has to send a whole request, headers and body, from its first byte; past it: 408 and the connection closes [default: 30]
        request_timeout_secs: u64 = 30, "SHOPD_REQUEST_TIMEOUT_SECS", "SECS";
        /// Seconds a keep-alive connection may wait for its next request before it is closed [default: 75]
        idle_timeout_secs: u64 = 75, "SHOPD_IDLE_TIMEOUT_SECS", "SECS";
        /// Seconds a response may make no write progress (its client not reading) before the connection is closed [default: 30]
        write_timeout_secs: u64 = 30, "SHOPD_WRITE_TIMEOUT_SECS", "SECS";
        /// Largest `limit` of `GET /item` and `GET /cart`; larger: 422 [default: 1000]
        max_list_limit: usize = 1000, "SHOPD_MAX_LIST_LIMIT", "N";
        /// Longest item name, in characters (Unicode code points); longer: 422 [default: 1024]
        max_name_chars: usize = 1024, "SHOPD_MAX_NAME_CHARS", "N";
        /// Most distinct items (lines) in one cart; adding another item: 409 [default: 1000]
        max_cart_lines: usize = 1000, "SHOPD_MAX_CART_LINES", "N";
        /// List scans, exports and big carts run at once, off the async threads [default: 2]
        scan_workers: usize = crate::store::Scans::DEFAULT_WORKERS, "SHOPD_SCAN_WORKERS", "N";
        /// Scans waiting for a turn beyond scan_workers; more get 503 with Retry-After [default: 32]
        scan_queue_len: usize = crate::store::Scans::DEFAULT_QUEUE, "SHOPD_SCAN_QUEUE_LEN", "N";
        /// Largest chat message accepted, in bytes; larger ones close with 1009 [default: 65536]
        chat_max_message_bytes: usize = 64 * 1024, "SHOPD_CHAT_MAX_MESSAGE_BYTES", "BYTES";
        /// Messages queued for one chat member before it is dropped with 1008 [default: 1024]
        chat_queue_len: usize = 1024, "SHOPD_CHAT_QUEUE_LEN", "N";
        /// Most chat connections at once; more are closed with 1013 [default: 10000]
        chat_max_connections: usize = 10_000, "SHOPD_CHAT_MAX_CONNECTIONS", "N";
        /// Seconds a chat member with a full queue may go without reading before it is dropped with 1008 [default: 10]
        chat_stall_timeout_secs: u64 = 10, "SHOPD_CHAT_STALL_TIMEOUT_SECS", "SECS";
        /// Chat lines a second one member may send on average; faster senders are slowed down [default: 100]
        chat_rate_per_sec: u32 = 100, "SHOPD_CHAT_RATE_PER_SEC", "N";
        /// Chat lines one member may send at once before chat_rate_per_sec applies [default: 200]
        chat_rate_burst: u32 = 200, "SHOPD_CHAT_RATE_BURST", "N";
        /// Chat lines each room keeps for members that join or resume later; 0 keeps none [default: 100]
        chat_history_lines: usize = 100, "SHOPD_CHAT_HISTORY_LINES", "N";
        /// Bytes of chat lines each room keeps at most; the oldest go first [default: 262144]
        chat_history_room_bytes: usize = 256 * 1024, "SHOPD_CHAT_HISTORY_ROOM_BYTES", "BYTES";
        /// Rooms whose chat history is kept; the least recently used room without members goes first [default: 1000]
        chat_history_rooms: usize = 1000, "SHOPD_CHAT_HISTORY_ROOMS", "N";
        /// Seconds a chat resume token stays valid [default: 86400]
        chat_token_ttl_secs: u64 = 86_400, "SHOPD_CHAT_TOKEN_TTL_SECS", "SECS";
        /// With a chat bus: the prefix of the rooms' NATS subjects [default: shopd.chat]
        chat_bus_subject_prefix: String = "shopd.chat".into(), "SHOPD_CHAT_BUS_SUBJECT_PREFIX", "PREFIX";
        /// Log filter, e.g. `info` or `shopd=debug`; RUST_LOG, when set, wins [default: info]
        log_level: String = "info".into(), "SHOPD_LOG_LEVEL", "FILTER";
        /// Proxies (addresses or ADDR/BITS networks, comma separated) whose `Forwarded` / `X-Forwarded-For` name the client; the rightmost address there that is not one of them is the client [default: none, the socket peer is the client]
        trusted_proxies: TrustedProxies = TrustedProxies::default(), "SHOPD_TRUSTED_PROXIES", "CIDRS";
        /// Origins (scheme://host or scheme://host:port, comma separated, or *) whose pages may call the API from a browser (CORS) [default: none, no CORS headers]
        cors_allowed_origins: Origins = Origins::default(), "SHOPD_CORS_ALLOWED_ORIGINS", "ORIGINS";
        /// Whether creating, changing and deleting items needs the admin token too [default: false]
        protect_catalogue: bool = false, "SHOPD_PROTECT_CATALOGUE", "BOOL";
    }
    optional {
        /// PostgreSQL to store items and carts in instead of the data directory: postgres://USER:PASSWORD@HOST:PORT/DB [default: none, the embedded store]
        database_url: DatabaseUrl, "SHOPD_DATABASE_URL", "URL";
        /// NATS servers joining several shopd into one chat: nats://HOST:PORT[,nats://HOST:PORT...] [default: none, chat within this instance]
        chat_bus: BusUrls, "SHOPD_CHAT_BUS", "URLS";
        /// Requests a second one client may make on average; over it: 429 with Retry-After; /healthz, /readyz and /metrics are never limited [default: none, no rate limit]
        rate_limit_per_sec: u32, "SHOPD_RATE_LIMIT_PER_SEC", "N";
        /// With rate_limit_per_sec: requests one client may make at once before the rate applies [default: rate_limit_per_sec]
        rate_limit_burst: u32, "SHOPD_RATE_LIMIT_BURST", "N";
        /// Origins (scheme://host or scheme://host:port, comma separated, or *) whose pages may open a chat besides shopd's own; others get 403 [default: the exact origins of cors_allowed_origins, its * aside]
        chat_allowed_origins: Origins, "SHOPD_CHAT_ALLOWED_ORIGINS", "ORIGINS";
        /// File holding the token that /admin routes need (`Authorization: Bearer TOKEN`); the variable SHOPD_ADMIN_TOKEN may hold the token itself [default: none, /admin is off]
        admin_token_file: PathBuf, "SHOPD_ADMIN_TOKEN_FILE", "FILE";
        /// File holding the secret (16 bytes or more) that signs chat resume tokens, the same for every instance [default: none, kept in the data directory or the database]
        chat_token_secret_file: PathBuf, "SHOPD_CHAT_TOKEN_SECRET_FILE", "FILE";
    }
    resolved {
        /// The admin token, from `SHOPD_ADMIN_TOKEN` or `admin_token_file`.
        admin_token: Secret;
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
    pub fn load(flags: ServeArgs) -> Result<Settings, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => FileSettings::default(),
        };
        let mut settings = Settings::layered(flags, file);
        settings.admin_token = admin_token(
            std::env::var(ADMIN_TOKEN_ENV).ok(),
            settings.admin_token_file.as_deref(),
        )?;
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
        positive("database_pool_size", self.database_pool_size as u64)?;
        positive("database_timeout_ms", self.database_timeout_ms)?;
        positive("stats_refresh_ms", self.stats_refresh_ms)?;
        positive("max_body_bytes", self.max_body_bytes)?;
        positive("header_read_timeout_secs", self.header_read_timeout_secs)?;
        positive("max_connections", self.max_connections as u64)?;
        positive(
            "max_connections_per_client",
            self.max_connections_per_client as u64,
        )?;
        if let Some(rate) = self.rate_limit_per_sec {
            positive("rate_limit_per_sec", u64::from(rate))?;
        }
        if let Some(burst) = self.rate_limit_burst {
            positive("rate_limit_burst", u64::from(burst))?;
        }
        positive("request_timeout_secs", self.request_timeout_secs)?;
        positive("idle_timeout_secs", self.idle_timeout_secs)?;
        positive("write_timeout_secs", self.write_timeout_secs)?;
        positive("max_list_limit", self.max_list_limit as u64)?;
        positive("max_name_chars", self.max_name_chars as u64)?;
        positive("max_cart_lines", self.max_cart_lines as u64)?;
        positive("scan_workers", self.scan_workers as u64)?;
        positive("chat_max_message_bytes", self.chat_max_message_bytes as u64)?;
        positive("chat_queue_len", self.chat_queue_len as u64)?;
        positive("chat_max_connections", self.chat_max_connections as u64)?;
        if self.protect_catalogue && self.admin_token.is_none() {
            return Err(ConfigError::Invalid {
                key: "protect_catalogue",
                message: format!("needs an admin token (admin_token_file or {ADMIN_TOKEN_ENV})"),
            });
        }
        positive("chat_stall_timeout_secs", self.chat_stall_timeout_secs)?;
        positive("chat_rate_per_sec", u64::from(self.chat_rate_per_sec))?;
        positive("chat_rate_burst", u64::from(self.chat_rate_burst))?;
        positive(
            "chat_history_room_bytes",
            self.chat_history_room_bytes as u64,
        )?;
        positive("chat_history_rooms", self.chat_history_rooms as u64)?;
        positive("chat_token_ttl_secs", self.chat_token_ttl_secs)?;
        let prefix = &self.chat_bus_subject_prefix;
        if prefix.is_empty()
            || prefix.split('.').any(|token| {
                token.is_empty()
                    || token.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
            })
        {
            return Err(ConfigError::Invalid {
                key: "chat_bus_subject_prefix",
                message:
                    "must be NATS subject tokens separated by dots, without spaces, `*` or `>`"
                        .into(),
            });
        }
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
        let flags = ServeArgs {
            config: Some(path),
            data_dir: Some("/srv/b".into()),
            ..ServeArgs::default()
        };
        let settings = Settings::load(flags).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9");
        assert_eq!(settings.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(settings.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_keys_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shopd.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Settings::load(ServeArgs {
            config: Some(path.clone()),
            ..ServeArgs::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("shopd.toml") && err.contains("lisen"), "{err}");
    }

    #[test]
    fn a_database_url_never_shows_its_password() {
        let url: DatabaseUrl =
            "postgres://shop:s3cret@db.example:5433/shop?password=other&sslmode=disable"
                .parse()
                .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains("shop:***@db.example:5433/shop"), "{shown}");
        assert!(shown.contains("password=***&sslmode=disable"), "{shown}");
        let settings = Settings {
            database_url: Some(url),
            ..Settings::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }
}
