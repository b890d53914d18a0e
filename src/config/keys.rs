//! The one list of settings. Each line makes a key of `config.toml`, its
//! `SHOPD_*` variable, its `--flag` (with its `--help` text and default),
//! and a typed field of one group of [`Settings`]; the default is written
//! once, as TOML, and read by the same code as any other value.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use super::layers::{Layers, Sources};
use super::secret::Secret;
use super::value::{LogFilter, Millis, Secs, SecsOrZero, SubjectPrefix, UpTo};
use super::{ConfigError, Key};
use crate::chat::BusUrls;
use crate::http::client::TrustedProxies;
use crate::http::layers::Origins;
use crate::store::{DatabaseUrl, Durability};

/// The parser of an entry: its own type, or the one named after `as`.
macro_rules! parser {
    ($ty:ty) => {
        $ty
    };
    ($ty:ty, $parser:ty) => {
        $parser
    };
}

/// Declares the groups and their settings. An entry reads
/// `field <- key: Type [as Parser] = DEFAULT, "SHOPD_KEY", "VALUE", "help";`
/// where DEFAULT is a TOML value, or `none` for a setting unset by default
/// (its type is then an `Option`). A group may end with `+ field: Type;`
/// lines: values that are not keys (resolved from them), default at first.
macro_rules! settings {
    ($(
        $(#[doc = $gdoc:literal])*
        $group:ident: $Group:ident {
            $(
                $field:ident <- $key:ident: $ty:ty $(as $parser:ty)? =
                    $default:tt, $env:literal, $value:literal, $help:literal;
            )*
            $(
                $(#[doc = $xdoc:literal])*
                + $xfield:ident: $xty:ty;
            )*
        }
    )*) => {
        /// The flags of the server; each has its `SHOPD_*` variable and
        /// `config.toml` key. Values stay text here: they are read (and
        /// refused, naming the flag) with the other layers.
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct ServeArgs {
            /// TOML config file [env: SHOPD_CONFIG] [default: ./config.toml when present]
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $($(
                #[arg(long, value_name = $value, help = super::help_line($help, $env, stringify!($default)))]
                pub $key: Option<String>,
            )*)*
        }

        impl ServeArgs {
            /// The text given to the flag of `key`.
            pub(super) fn flag(&self, key: &str) -> Option<&str> {
                match key {
                    $($(stringify!($key) => self.$key.as_deref(),)*)*
                    _ => None,
                }
            }
        }

        /// Every key: its name, variable, default (as TOML, `none` when
        /// unset) and help, in the order of `config.toml`.
        pub const KEYS: &[Key] = &[$($(
            Key {
                name: stringify!($key),
                env: $env,
                default: stringify!($default),
                help: $help,
            },
        )*)*];

        $(
            $(#[doc = $gdoc])*
            #[derive(Debug, Clone, PartialEq)]
            pub struct $Group {
                $(
                    #[doc = $help]
                    #[doc = concat!("\n\nKey `", stringify!($key), "`.")]
                    pub $field: $ty,
                )*
                $(
                    $(#[doc = $xdoc])*
                    pub $xfield: $xty,
                )*
            }

            impl Default for $Group {
                /// The built-in defaults.
                fn default() -> Self {
                    Settings::default().$group
                }
            }
        )*

        /// Every setting, by concern.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $(
                $(#[doc = $gdoc])*
                pub $group: $Group,
            )*
        }

        /// Reads every key from `layers`, highest first; notes where each
        /// value came from in `sources`.
        pub(super) fn resolve(layers: &Layers<'_>, sources: &mut Sources) -> Result<Settings, ConfigError> {
            let mut index = 0;
            let mut next = || {
                let key = &KEYS[index];
                index += 1;
                key
            };
            Ok(Settings {$(
                $group: $Group {
                    $(
                        $field: layers.read::<parser!($ty $(, $parser)?), $ty>(next(), sources)?,
                    )*
                    $($xfield: Default::default(),)*
                },
            )*})
        }
    };
}

settings! {
    /// The HTTP server: where it listens, how many it serves, how long it waits.
    server: Server {
        listen <- listen: SocketAddr = "127.0.0.1:8000", "SHOPD_LISTEN", "ADDR:PORT",
            "Address and port to serve on; port 0 picks a free one";
        max_connections <- max_connections: NonZeroUsize = 4096, "SHOPD_MAX_CONNECTIONS", "N",
            "Most HTTP connections served at once; more wait to be accepted";
        max_connections_per_client <- max_connections_per_client: NonZeroUsize = 256,
            "SHOPD_MAX_CONNECTIONS_PER_CLIENT", "N",
            "Connections one address (the socket peer) may have open, chats included; past it its new connections are closed at once; trusted proxies are exempt";
        trusted_proxies <- trusted_proxies: TrustedProxies = [], "SHOPD_TRUSTED_PROXIES", "CIDRS",
            "Proxies (addresses or ADDR/BITS networks, comma separated) whose `Forwarded` / `X-Forwarded-For` name the client: the rightmost address there that is not one of them [default: none, the socket peer is the client]";
        cors_allowed_origins <- cors_allowed_origins: Origins = [], "SHOPD_CORS_ALLOWED_ORIGINS", "ORIGINS",
            "Origins (scheme://host or scheme://host:port, comma separated, or *) whose pages may call the API from a browser (CORS) [default: none, no CORS headers]";
        header_read_timeout <- header_read_timeout_secs: Duration as Secs = 10,
            "SHOPD_HEADER_READ_TIMEOUT_SECS", "SECS",
            "Seconds a client may take to send a request's headers; past it: 408 and the connection closes";
        request_timeout <- request_timeout_secs: Duration as Secs = 30,
            "SHOPD_REQUEST_TIMEOUT_SECS", "SECS",
            "Seconds a client has to send a whole request, headers and body, from its first byte; past it: 408 and the connection closes";
        idle_timeout <- idle_timeout_secs: Duration as Secs = 75, "SHOPD_IDLE_TIMEOUT_SECS", "SECS",
            "Seconds a keep-alive connection may wait for its next request before it is closed";
        write_timeout <- write_timeout_secs: Duration as Secs = 30, "SHOPD_WRITE_TIMEOUT_SECS", "SECS",
            "Seconds a response may make no write progress (its client not reading) before the connection is closed";
        shutdown_grace <- shutdown_grace_secs: Duration as SecsOrZero = 30,
            "SHOPD_SHUTDOWN_GRACE_SECS", "SECS",
            "Seconds in-flight requests get to finish at shutdown";
        shutdown_drain <- shutdown_drain_secs: Duration as SecsOrZero = 0,
            "SHOPD_SHUTDOWN_DRAIN_SECS", "SECS",
            "Seconds shopd keeps serving after SIGTERM while /readyz answers 503, so load balancers move traffic away before it stops; SIGINT or a second signal skips it";
    }

    /// What one request may ask for.
    limits: Limits {
        max_body_bytes <- max_body_bytes: NonZeroU64 = 1048576, "SHOPD_MAX_BODY_BYTES", "BYTES",
            "Largest request body accepted, in bytes; larger ones get 413";
        max_list_limit <- max_list_limit: NonZeroUsize = 1000, "SHOPD_MAX_LIST_LIMIT", "N",
            "Largest `limit` of `GET /item` and `GET /cart`; larger: 422";
        max_name_chars <- max_name_chars: NonZeroUsize = 1024, "SHOPD_MAX_NAME_CHARS", "N",
            "Longest item name, in characters (Unicode code points); longer: 422";
        max_cart_lines <- max_cart_lines: NonZeroUsize = 1000, "SHOPD_MAX_CART_LINES", "N",
            "Most distinct items (lines) in one cart; adding another item: 409";
        rate_limit_per_sec <- rate_limit_per_sec: Option<NonZeroU32> = none,
            "SHOPD_RATE_LIMIT_PER_SEC", "N",
            "Requests a second one client may make on average; over it: 429 with Retry-After; /healthz, /readyz and /metrics are never limited [default: none, no rate limit]";
        rate_limit_burst <- rate_limit_burst: Option<NonZeroU32> = none,
            "SHOPD_RATE_LIMIT_BURST", "N",
            "With rate_limit_per_sec: requests one client may make at once before the rate applies [default: rate_limit_per_sec]";
    }

    /// Where items and carts live: the embedded store, or PostgreSQL.
    storage: Storage {
        data_dir <- data_dir: PathBuf = "data", "SHOPD_DATA_DIR", "DIR",
            "Directory of the embedded database; created if missing, locked while shopd runs; not with --database-url";
        durability <- durability: Durability = "sync", "SHOPD_DURABILITY", "MODE",
            "When a write is acknowledged: `sync` (on disk, fsynced) or `periodic` (sled's timer)";
        flush_every <- flush_every_ms: Duration as Millis = 500, "SHOPD_FLUSH_EVERY_MS", "MS",
            "With `durability = \"periodic\"`: milliseconds between sled's flushes";
        database_url <- database_url: Option<DatabaseUrl> = none, "SHOPD_DATABASE_URL", "URL",
            "PostgreSQL to store items and carts in instead of the data directory: postgres://USER:PASSWORD@HOST:PORT/DB [default: none, the embedded store]";
        database_pool_size <- database_pool_size: NonZeroUsize as UpTo<10000> = 16,
            "SHOPD_DATABASE_POOL_SIZE", "N",
            "Connections to PostgreSQL each shopd keeps open";
        database_timeout <- database_timeout_ms: Duration as Millis = 5000,
            "SHOPD_DATABASE_TIMEOUT_MS", "MS",
            "Milliseconds a PostgreSQL statement (or connection attempt) may take before the request fails with 503";
        scan_workers <- scan_workers: NonZeroUsize = 2, "SHOPD_SCAN_WORKERS", "N",
            "List scans, exports and big carts run at once, off the async threads";
        scan_queue_len <- scan_queue_len: usize = 32, "SHOPD_SCAN_QUEUE_LEN", "N",
            "Scans waiting for a turn beyond scan_workers; more get 503 with Retry-After";
        stats_refresh <- stats_refresh_ms: Duration as Millis = 5000, "SHOPD_STATS_REFRESH_MS", "MS",
            "Milliseconds between refreshes of the store's sizes shown in /metrics";
        idempotency_ttl <- idempotency_ttl_secs: Duration as Secs = 86400,
            "SHOPD_IDEMPOTENCY_TTL_SECS", "SECS",
            "Seconds an Idempotency-Key and its kept answer hold; after it the key runs again, and expired keys are pruned in the background";
    }

    /// Chat rooms: their bounds, flow control, and the bus joining instances.
    chat: Chat {
        max_message_bytes <- chat_max_message_bytes: NonZeroUsize = 65536,
            "SHOPD_CHAT_MAX_MESSAGE_BYTES", "BYTES",
            "Largest chat message accepted, in bytes; larger ones close with 1009";
        queue_len <- chat_queue_len: NonZeroUsize = 1024, "SHOPD_CHAT_QUEUE_LEN", "N",
            "Messages queued for one chat member; while it is full, members sending to its room wait (nothing is dropped)";
        max_connections <- chat_max_connections: NonZeroUsize = 10000,
            "SHOPD_CHAT_MAX_CONNECTIONS", "N",
            "Most chat connections at once; more are closed with 1013";
        stall_timeout <- chat_stall_timeout_secs: Duration as Secs = 10,
            "SHOPD_CHAT_STALL_TIMEOUT_SECS", "SECS",
            "Seconds a chat member with a full queue may go without reading before it is dropped with 1008";
        rate_per_sec <- chat_rate_per_sec: NonZeroU32 = 100, "SHOPD_CHAT_RATE_PER_SEC", "N",
            "Chat lines a second one member may send on average; faster senders are slowed down";
        rate_burst <- chat_rate_burst: NonZeroU32 = 200, "SHOPD_CHAT_RATE_BURST", "N",
            "Chat lines one member may send at once before chat_rate_per_sec applies";
        history_lines <- chat_history_lines: usize = 100, "SHOPD_CHAT_HISTORY_LINES", "N",
            "Chat lines each room keeps for members that join or resume later; 0 keeps none";
        history_room_bytes <- chat_history_room_bytes: NonZeroUsize = 262144,
            "SHOPD_CHAT_HISTORY_ROOM_BYTES", "BYTES",
            "Bytes of chat lines each room keeps at most; the oldest go first";
        history_rooms <- chat_history_rooms: NonZeroUsize = 1000, "SHOPD_CHAT_HISTORY_ROOMS", "N",
            "Rooms whose chat history is kept; the least recently used room without members goes first";
        history_stream_bytes <- chat_history_stream_bytes: NonZeroU64 = 1073741824,
            "SHOPD_CHAT_HISTORY_STREAM_BYTES", "BYTES",
            "With a chat bus: bytes the chat history stream in NATS JetStream keeps at most, all rooms together; the oldest lines go first";
        history_replicas <- chat_history_replicas: NonZeroUsize as UpTo<5> = 1,
            "SHOPD_CHAT_HISTORY_REPLICAS", "N",
            "With a chat bus: copies of the chat history stream across the NATS cluster (at most 5), when shopd creates it";
        token_ttl <- chat_token_ttl_secs: Duration as Secs = 86400, "SHOPD_CHAT_TOKEN_TTL_SECS", "SECS",
            "Seconds a chat resume token stays valid";
        token_secret_file <- chat_token_secret_file: Option<PathBuf> = none,
            "SHOPD_CHAT_TOKEN_SECRET_FILE", "FILE",
            "File holding the secret (16 bytes or more) that signs chat resume tokens, the same for every instance [default: none, kept in the data directory or the database]";
        bus <- chat_bus: Option<BusUrls> = none, "SHOPD_CHAT_BUS", "URLS",
            "NATS servers joining several shopd into one chat: nats://HOST:PORT[,nats://HOST:PORT...] [default: none, chat within this instance]";
        bus_subject_prefix <- chat_bus_subject_prefix: SubjectPrefix = "shopd.chat",
            "SHOPD_CHAT_BUS_SUBJECT_PREFIX", "PREFIX",
            "With a chat bus: the prefix of the rooms' NATS subjects";
        allowed_origins <- chat_allowed_origins: Option<Origins> = none,
            "SHOPD_CHAT_ALLOWED_ORIGINS", "ORIGINS",
            "Origins (scheme://host or scheme://host:port, comma separated, or *) whose pages may open a chat besides shopd's own; others get 403 [default: none, the exact origins of cors_allowed_origins, its * aside]";
    }

    /// The admin token and what it guards.
    admin: Admin {
        token_file <- admin_token_file: Option<PathBuf> = none, "SHOPD_ADMIN_TOKEN_FILE", "FILE",
            "File holding the token that /admin routes need (`Authorization: Bearer TOKEN`); the variable SHOPD_ADMIN_TOKEN may hold the token itself instead [default: none, /admin is off]";
        protect_catalogue <- protect_catalogue: bool = false, "SHOPD_PROTECT_CATALOGUE", "BOOL",
            "Whether creating, changing and deleting items needs the admin token too";
        /// The token, from `SHOPD_ADMIN_TOKEN` or `admin_token_file`.
        + token: Option<Secret>;
    }

    /// Scheduled backups: where they go, how often, how many stay.
    backup: Backup {
        dir <- backup_dir: Option<PathBuf> = none, "SHOPD_BACKUP_DIR", "DIR",
            "Directory scheduled backups are written to (created if missing); needed by backup_every_secs [default: none, no scheduled backups]";
        every <- backup_every_secs: Duration as SecsOrZero = 0, "SHOPD_BACKUP_EVERY_SECS", "SECS",
            "Seconds between scheduled backups (each a whole export, fsynced, in backup_dir); 0 turns them off";
        keep <- backup_keep: NonZeroUsize = 7, "SHOPD_BACKUP_KEEP", "N",
            "Scheduled backups kept in backup_dir; older ones are removed once a newer one is complete";
    }

    /// What shopd logs.
    log: Log {
        level <- log_level: LogFilter = "info", "SHOPD_LOG_LEVEL", "FILTER",
            "Log filter, e.g. `info` or `shopd=debug`; RUST_LOG, when set, wins";
    }
}

impl Default for Settings {
    /// The built-in defaults: every key read with no layer set.
    fn default() -> Self {
        resolve(&Layers::none(), &mut Sources::default())
            .expect("the built-in defaults are valid (a unit test reads them)")
    }
}
