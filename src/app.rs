//! Builds shopd from its settings and serves it until a shutdown future
//! resolves: stop accepting, finish in-flight requests, close chats with
//! 1001, flush storage. Everything that can fail (the store, its
//! migrations, the chat bus) fails before [`App::serve`] is called, so that
//! "listening" is only ever said by a shopd that will serve.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use warp::Filter;

use crate::chat::{Bus, BusError, ChatOptions, JournalOptions, Rooms};
use crate::config::{self, Settings};
use crate::http::server::{self, Limits, Timeouts};
use crate::http::{self as api, State};
use crate::metrics::Telemetry;
use crate::ops::Backups;
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
    /// The listen address is busy or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
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
        let storage = &settings.storage;
        let store = SledStore::open_with(
            &storage.data_dir,
            storage.durability,
            storage.flush_every.as_millis() as u64,
            on_damage,
        )?
        .with_scans(Scans::new(
            settings.storage.scan_workers.get(),
            settings.storage.scan_queue_len,
        ));
        let secret = match crate::chat::configured_secret(&settings)? {
            Some(secret) => secret,
            None => crate::chat::kept_secret(&storage.data_dir.join("chat").join("token-secret"))?,
        };
        let options = ChatOptions::from_settings(&settings, &secret);
        // With a bus, the history is kept in it.
        if settings.chat.bus.is_some() {
            return Ok(App::with_rooms(
                store,
                settings,
                Rooms::with_options(options),
            ));
        }
        let rooms = Rooms::persistent(options, &storage.data_dir).map_err(|source| {
            AppError::ChatHistory {
                path: storage.data_dir.join("chat"),
                source,
            }
        })?;
        Ok(App::with_rooms(store, settings, rooms))
    }
}

impl App<PgStore> {
    /// Connects to the database of `settings.storage.database_url` and
    /// brings its schema up to date.
    pub async fn connect(settings: Settings) -> Result<Self, AppError> {
        let storage = &settings.storage;
        let Some(url) = storage.database_url.clone() else {
            return Err(AppError::Database(PgOpenError::Url {
                url: String::new(),
                message: "no database URL is set".into(),
            }));
        };
        let secret_url = url.clone();
        let store = PgStore::connect(&PgOptions {
            url,
            pool_size: storage.database_pool_size.get(),
            timeout: storage.database_timeout,
        })
        .await?
        .with_scans(Scans::new(
            storage.scan_workers.get(),
            storage.scan_queue_len,
        ));
        // After the store: an unreachable database is reported by it.
        let secret = match crate::chat::configured_secret(&settings)? {
            Some(secret) => secret,
            None => {
                let timeout = storage.database_timeout;
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

    /// Joins the chat to `bus` (from [`connect_bus`]). On the embedded
    /// store without `chat_token_secret_file`, resume tokens are signed
    /// with the secret kept in the bus, which every instance shares.
    #[must_use]
    pub fn with_bus(mut self, bus: Option<Bus>) -> Self {
        if let Some(bus) = bus {
            if self.settings.storage.database_url.is_none()
                && self.settings.chat.token_secret_file.is_none()
                && self.rooms.stats().connections == 0
                && let Some(secret) = bus.token_secret()
            {
                self.rooms =
                    Rooms::with_options(ChatOptions::from_settings(&self.settings, secret));
            }
            let attached = self.rooms.attach_bus(bus);
            debug_assert!(attached, "the bus is attached once, before any member");
        }
        self
    }

    /// Ready to serve: connected to the chat bus the settings name, unless
    /// [`App::with_bus`] already did.
    pub async fn ready(self) -> Result<Self, AppError> {
        if self.settings.chat.bus.is_none() || self.rooms.bus().is_some() {
            return Ok(self);
        }
        let bus = connect_bus(&self.settings.chat).await?;
        Ok(self.with_bus(bus))
    }

    /// Serves on `listener` until `shutdown` resolves, then drains and
    /// flushes. Returns once storage is closed. Not [`App::ready`] yet: gets
    /// ready first.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AppError> {
        let app = self.ready().await?;
        app.run(listener, shutdown).await
    }

    async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AppError> {
        let Settings {
            server,
            limits,
            storage,
            admin,
            ..
        } = &self.settings;
        let stats = StatsCache::default();
        let refresh = tokio::spawn(
            stats
                .clone()
                .refresh(self.store.clone(), storage.stats_refresh),
        );
        let state = State {
            store: self.store.clone(),
            max_body_bytes: limits.max_body_bytes.get(),
            max_list_limit: limits.max_list_limit.get(),
            max_name_chars: limits.max_name_chars.get(),
            max_cart_lines: limits.max_cart_lines.get(),
            telemetry: self.telemetry.clone(),
            stats,
            access: api::admin::Access {
                token: admin.token.clone(),
                protect_catalogue: admin.protect_catalogue,
            },
            rooms: self.rooms.clone(),
            draining: self.draining.clone(),
            layers: api::layers::Options {
                trusted_proxies: self.settings.server.trusted_proxies.clone(),
                cors_allowed_origins: self.settings.server.cors_allowed_origins.clone(),
                rate_limit: self.settings.limits.rate_limit_per_sec.map(|per_sec| {
                    let burst = self.settings.limits.rate_limit_burst.unwrap_or(per_sec);
                    (per_sec.get(), burst.get())
                }),
                idempotency_ttl: storage.idempotency_ttl,
            },
        };
        let chat_origins = api::chat_origin::ChatOrigins::new(
            self.settings.chat.allowed_origins.clone(),
            &self.settings.server.cors_allowed_origins,
        );
        let filter = api::chat_origin::guard(chat_origins, self.telemetry.clone())
            .or(crate::chat::route(self.rooms.clone()))
            .unify()
            .or(api::api(state))
            .unify()
            .boxed();
        let limits = Limits {
            timeouts: Timeouts {
                header_read: server.header_read_timeout,
                request: server.request_timeout,
                idle: server.idle_timeout,
                write: server.write_timeout,
            },
            max_connections: server.max_connections.get(),
            shutdown_grace: server.shutdown_grace,
            max_connections_per_client: server.max_connections_per_client.get(),
            trusted_proxies: server.trusted_proxies.clone(),
        };
        let upkeep = tokio::spawn(upkeep(self.telemetry.clone()));
        let prune = tokio::spawn(crate::store::idempotency::prune_expired(
            self.store.clone(),
            storage.idempotency_ttl,
        ));
        let stop_backups = tokio_util::sync::CancellationToken::new();
        let backups = Backups::new(self.store.clone(), &self.settings.backup, &self.telemetry)
            .map(|backups| tokio::spawn(backups.run(stop_backups.clone())));
        let rooms = self.rooms.clone();
        let draining = self.draining.clone();
        let shutdown = async move {
            shutdown.await;
            draining.begin();
            // A backup running now is abandoned; the store closes after it.
            stop_backups.cancel();
            // Chats are upgraded connections the HTTP drain does not see.
            rooms.shutdown().await;
        };
        let telemetry = self.telemetry.clone();
        server::serve(listener, filter, limits, telemetry, shutdown).await;
        upkeep.abort();
        prune.abort();
        refresh.abort();
        // Both hold the store: gone before it closes, so that once this
        // returns nothing holds the data directory's lock.
        let _ = prune.await;
        let _ = refresh.await;
        if let Some(backups) = backups {
            let _ = backups.await;
        }
        self.store.close().await.map_err(AppError::Close)?;
        tracing::info!("storage flushed; bye");
        Ok(())
    }
}

/// Connects to the chat bus the settings name, if any: an unreachable
/// bus stops start-up. Call it before opening the store, so that a
/// failed start creates nothing.
pub async fn connect_bus(chat: &config::Chat) -> Result<Option<Bus>, AppError> {
    let Some(urls) = &chat.bus else {
        return Ok(None);
    };
    let history = (chat.history_lines > 0).then(|| JournalOptions {
        lines: chat.history_lines,
        max_bytes: chat.history_stream_bytes.get(),
        replicas: chat.history_replicas.get(),
    });
    let bus = Bus::connect(
        urls,
        chat.bus_subject_prefix.as_str(),
        chat.max_message_bytes.get(),
        history,
    )
    .await?;
    Ok(Some(bus))
}

/// Folds metric samples into buckets now and then, as the exporter needs.
async fn upkeep(telemetry: Telemetry) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        telemetry.run_upkeep();
    }
}

/// Binds `addr` (port 0 for any free one). Call it first: a busy port
/// then stops start-up before anything is created.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// The address a listener ended up on.
pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
