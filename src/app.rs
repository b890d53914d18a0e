//! Builds shopd from its settings and serves it until a shutdown future
//! resolves: stop accepting, finish in-flight requests, close chats with
//! 1001, flush storage.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use warp::Filter;

use crate::chat::{Bus, BusError, ChatOptions, Rooms};
use crate::config::Settings;
use crate::http::server::{self, Limits, Timeouts};
use crate::http::{self as api, State};
use crate::metrics::Telemetry;
use crate::shutdown::Draining;
use crate::store::{
    OnDamage, OpenError, PgOpenError, PgOptions, PgStore, Scans, SledStore, StatsCache, Store,
    StoreError,
};

/// Why shopd could not start or stop cleanly; messages name the culprit.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The data directory is unusable or taken.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// The database is unreachable, refused us, or has a newer schema.
    #[error(transparent)]
    Database(#[from] PgOpenError),
    /// The chat bus is unreachable or cannot carry the longest chat line.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The listen address is busy, invalid or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The chat history's files cannot be read or written.
    #[error("chat history in {path}: {source}")]
    ChatHistory {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The secret of chat resume tokens cannot be had.
    #[error(transparent)]
    ChatSecret(#[from] crate::chat::SecretError),
    /// The final flush failed.
    #[error("flushing storage at shutdown failed: {0}")]
    Close(#[source] StoreError),
}

/// A shopd ready to serve: storage open, chat and metrics set up.
pub struct App<S = SledStore> {
    store: S,
    settings: Settings,
    rooms: Rooms,
    telemetry: Telemetry,
    draining: Draining,
}

impl App<SledStore> {
    /// Opens (and locks) the data directory of `settings`; refuses a
    /// damaged one.
    pub fn open(settings: Settings) -> Result<Self, AppError> {
        App::open_with(settings, OnDamage::Refuse)
    }

    /// Opens the data directory of `settings`, doing `on_damage` when it
    /// is damaged.
    pub fn open_with(settings: Settings, on_damage: OnDamage) -> Result<Self, AppError> {
        let store = SledStore::open_with(
            &settings.data_dir,
            settings.durability,
            settings.flush_every_ms,
            on_damage,
        )?
        .with_scans(Scans::new(settings.scan_workers, settings.scan_queue_len));
        let secret = match crate::chat::configured_secret(&settings)? {
            Some(secret) => secret,
            None => crate::chat::kept_secret(&settings.data_dir.join("chat").join("token-secret"))?,
        };
        let options = ChatOptions::from_settings(&settings, &secret);
        let rooms = Rooms::persistent(options, &settings.data_dir).map_err(|source| {
            AppError::ChatHistory {
                path: settings.data_dir.join("chat"),
                source,
            }
        })?;
        Ok(App::with_rooms(store, settings, rooms))
    }
}

impl App<PgStore> {
    /// Connects to the database of `settings.database_url` and brings its
    /// schema up to date.
    pub async fn connect(settings: Settings) -> Result<Self, AppError> {
        let Some(url) = settings.database_url.clone() else {
            return Err(AppError::Database(PgOpenError::Url {
                url: String::new(),
                message: "no database URL is set".into(),
            }));
        };
        let secret_url = url.clone();
        let store = PgStore::connect(&PgOptions {
            url,
            pool_size: settings.database_pool_size,
            timeout: Duration::from_millis(settings.database_timeout_ms),
        })
        .await?;
        // After the store: an unreachable database is reported by it.
        let secret = match crate::chat::configured_secret(&settings)? {
            Some(secret) => secret,
            None => {
                let timeout = Duration::from_millis(settings.database_timeout_ms);
                crate::chat::database_secret(secret_url.expose(), timeout).await?
            }
        };
        let rooms = Rooms::with_options(ChatOptions::from_settings(&settings, &secret));
        Ok(App::with_rooms(store, settings, rooms))
    }
}

impl<S: Store> App<S> {
    /// shopd over any store.
    pub fn with_store(store: S, settings: Settings) -> Self {
        let secret = crate::chat::configured_secret(&settings)
            .ok()
            .flatten()
            .unwrap_or_else(crate::chat::random_secret);
        let rooms = Rooms::with_options(ChatOptions::from_settings(&settings, &secret));
        App::with_rooms(store, settings, rooms)
    }

    /// shopd over any store, with `rooms`.
    fn with_rooms(store: S, settings: Settings, rooms: Rooms) -> Self {
        App {
            store,
            settings,
            rooms,
            telemetry: Telemetry::new(),
            draining: Draining::default(),
        }
    }

    /// The flag that makes `/readyz` answer 503: set it when a stop begins
    /// (see [`crate::shutdown::drained`]).
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    /// The store, for callers that seed or inspect data.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Serves on `listener` until `shutdown` resolves, then drains and
    /// flushes. Returns once storage is closed. With a chat bus, connects
    /// to it first: an unreachable bus stops start-up here.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AppError> {
        if let Some(urls) = &self.settings.chat_bus {
            let bus = Bus::connect(
                urls,
                &self.settings.chat_bus_subject_prefix,
                self.settings.chat_max_message_bytes,
            )
            .await?;
            let attached = self.rooms.attach_bus(bus);
            debug_assert!(attached, "serve attaches the bus once, before any member");
        }
        let stats = StatsCache::default();
        let refresh = tokio::spawn(stats.clone().refresh(
            self.store.clone(),
            Duration::from_millis(self.settings.stats_refresh_ms),
        ));
        let state = State {
            store: self.store.clone(),
            max_body_bytes: self.settings.max_body_bytes,
            max_list_limit: self.settings.max_list_limit,
            max_name_chars: self.settings.max_name_chars,
            max_cart_lines: self.settings.max_cart_lines,
            telemetry: self.telemetry.clone(),
            stats,
            access: api::admin::Access {
                token: self.settings.admin_token.clone(),
                protect_catalogue: self.settings.protect_catalogue,
            },
            rooms: self.rooms.clone(),
            draining: self.draining.clone(),
            layers: api::layers::Options {
                trusted_proxies: self.settings.trusted_proxies.clone(),
                cors_allowed_origins: self.settings.cors_allowed_origins.clone(),
                rate_limit: self
                    .settings
                    .rate_limit_per_sec
                    .map(|per_sec| (per_sec, self.settings.rate_limit_burst.unwrap_or(per_sec))),
            },
        };
        let chat_origins = api::chat_origin::ChatOrigins::new(
            self.settings.chat_allowed_origins.clone(),
            &self.settings.cors_allowed_origins,
        );
        let filter = api::chat_origin::guard(chat_origins, self.telemetry.clone())
            .or(crate::chat::route(self.rooms.clone()))
            .unify()
            .or(api::api(state))
            .unify()
            .boxed();
        let secs = Duration::from_secs;
        let limits = Limits {
            timeouts: Timeouts {
                header_read: secs(self.settings.header_read_timeout_secs),
                request: secs(self.settings.request_timeout_secs),
                idle: secs(self.settings.idle_timeout_secs),
                write: secs(self.settings.write_timeout_secs),
            },
            max_connections: self.settings.max_connections,
            shutdown_grace: Duration::from_secs(self.settings.shutdown_grace_secs),
            max_connections_per_client: self.settings.max_connections_per_client,
            trusted_proxies: self.settings.trusted_proxies.clone(),
        };
        let upkeep = tokio::spawn(upkeep(self.telemetry.clone()));
        let rooms = self.rooms.clone();
        let draining = self.draining.clone();
        let shutdown = async move {
            shutdown.await;
            draining.begin();
            // Chats are upgraded connections the HTTP drain does not see.
            rooms.shutdown().await;
        };
        let telemetry = self.telemetry.clone();
        server::serve(listener, filter, limits, telemetry, shutdown).await;
        upkeep.abort();
        refresh.abort();
        self.store.close().await.map_err(AppError::Close)?;
        tracing::info!("storage flushed; bye");
        Ok(())
    }
}

/// Folds metric samples into buckets now and then, as the exporter needs.
async fn upkeep(telemetry: Telemetry) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        telemetry.run_upkeep();
    }
}

/// Binds `addr` (`ADDR:PORT`, port 0 for any free one).
pub async fn bind(addr: &str) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// The address a listener ended up on.
pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
