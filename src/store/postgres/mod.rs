//! The PostgreSQL backend: tables `items`, `carts` and `cart_lines`, shared
//! by any number of shopd instances, each with its own connection pool.
//!
//! Every operation is one statement where it can be (so it is atomic on its
//! own and needs no explicit transaction), prepared once per connection,
//! and retried a few times on SQLSTATE 40001. Add-to-cart is one
//! transaction sent in one round trip (`add`, `pipeline`), atomic against
//! adds from every instance. Lists and exports take a turn of the scan
//! bound, so they never hold every pooled connection. Carts are priced in
//! Rust ([`crate::store::priced_cart`]), as the embedded store prices them
//! (an add has PostgreSQL compute the same sum: see `add`).
//! Ids are `u64` in the API and `BIGINT` here: an id above `i64::MAX` is
//! one no row has.
//!
//! Here: the pool, the store handle and the [`Store`] impl, which hands
//! each call to `items` or `carts` (the SQL of each resource); `client`
//! runs a body on a pooled connection with retries; `fold`, a task each
//! store starts, moves carts' totals from the marks adds leave onto the
//! carts' rows.

// First: the modules below use its macro.
#[macro_use]
mod client;

mod add;
mod carts;
mod errors;
mod fold;
mod items;
mod kept;
mod pipeline;
mod schema;
mod transfer;
mod url;

use crate::domain::etag::Condition;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use self::errors::{Failure, Outage};
pub use self::schema::SchemaError;
pub use self::transfer::BACKUP_LOCK;
pub use self::url::DatabaseUrl;

/// The statements filtered lists run, public so that their plans can be
/// checked (`EXPLAIN`) against a real database: the indexes must serve them.
pub mod list_statements {
    pub use super::carts::LIST_FILTERED as CARTS;
    pub use super::items::{LIST_ALL as ITEMS_ALL, LIST_LIVE as ITEMS_LIVE};
}
use super::{
    Chunks, ExportCounts, ExportMode, KeptRecord, Keyed, Pruned, Scans, Snapshot, Store,
    StoreError, StoreResult, StoreStats,
};
use crate::domain::{Cart, CartFilter, Id, Item, ItemFilter, ItemPatch, NewItem, Page};
use crate::store::scan::Turn;

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The `postgres://` URL.
    pub url: DatabaseUrl,
    /// Connections kept by this instance.
    pub pool_size: usize,
    /// Longest a statement, a connection attempt or a wait for a pooled
    /// connection may take.
    pub timeout: Duration,
}

/// Why the PostgreSQL store could not start; never shows a password.
#[derive(Debug, thiserror::Error)]
pub enum PgOpenError {
    /// The URL does not parse.
    #[error("database URL {url}: {message}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database cannot be reached or refused the login.
    #[error("cannot connect to the database at {target}")]
    Unreachable {
        /// `host:port`.
        target: String,
        #[source]
        source: StoreError,
    },
    /// The schema could not be created or migrated.
    #[error("database at {target}")]
    Schema {
        /// `host:port`.
        target: String,
        #[source]
        source: SchemaError,
    },
}

/// Items and carts in PostgreSQL. A cheap handle: clones share one pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    outage: std::sync::Arc<Outage>,
    /// The bound on long work: lists and exports take a turn of it, so
    /// that at most `scan_workers` of them hold pool connections at once
    /// and point reads and writes always find one.
    scans: Scans,
    /// Stops this instance's fold of carts' marks (`fold`) when the last
    /// clone is dropped (closing the pool stops it too).
    _fold: std::sync::Arc<tokio_util::sync::DropGuard>,
    /// The id sequences, for statements that draw an id themselves.
    sequences: Sequences,
}

/// The OIDs of the items' and carts' id sequences (their identity
/// columns'), looked up once at start-up: `pg_get_serial_sequence` in a
/// statement searches the catalog on every call, which cost a keyed
/// create about 8% of its rate at the database alone.
#[derive(Debug, Clone, Copy)]
struct Sequences {
    items: u32,
    carts: u32,
}

impl Sequences {
    /// Looks them up.
    async fn of(client: &deadpool_postgres::Client) -> Result<Sequences, tokio_postgres::Error> {
        let row = client
            .query_one(
                "SELECT pg_get_serial_sequence('items', 'id')::regclass::oid,
                        pg_get_serial_sequence('carts', 'id')::regclass::oid",
                &[],
            )
            .await?;
        Ok(Sequences {
            items: row.try_get(0)?,
            carts: row.try_get(1)?,
        })
    }
}

impl PgStore {
    /// Connects, checks that the database answers, and creates or migrates
    /// the schema.
    pub async fn connect(options: &PgOptions) -> Result<PgStore, PgOpenError> {
        let mut config: tokio_postgres::Config =
            options
                .url
                .expose()
                .parse()
                .map_err(|err: tokio_postgres::Error| PgOpenError::Url {
                    url: options.url.redacted(),
                    message: err.to_string(),
                })?;
        let target = target_of(&config);
        let millis = options.timeout.as_millis();
        config
            .connect_timeout(options.timeout)
            .application_name("shopd")
            .options(format!("-c statement_timeout={millis}"));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| PgOpenError::Url {
                url: options.url.redacted(),
                message: err.to_string(),
            })?;
        let mut client = pool.get().await.map_err(|err| PgOpenError::Unreachable {
            target: target.clone(),
            source: Failure::from(err).into_store_error(),
        })?;
        schema::migrate(&mut client)
            .await
            .map_err(|source| PgOpenError::Schema {
                target: target.clone(),
                source,
            })?;
        let sequences = Sequences::of(&client)
            .await
            .map_err(|err| PgOpenError::Unreachable {
                target: target.clone(),
                source: Failure::from(err).into_store_error(),
            })?;
        drop(client);
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(fold::run(pool.clone(), stop.clone()));
        Ok(PgStore {
            pool,
            outage: std::sync::Arc::default(),
            scans: Scans::default(),
            _fold: std::sync::Arc::new(stop.drop_guard()),
            sequences,
        })
    }

    /// A turn of the scan bound for a list that may be long work: any
    /// filtered one (its plan may walk far to fill a page), and an
    /// unfiltered one reaching past [`SHORT_LIST`] rows. The first pages
    /// of an unfiltered list read about `offset + limit` rows by id: they
    /// run as point reads do, and are never shed.
    async fn long_list(&self, unfiltered: bool, page: Page) -> StoreResult<Option<Turn>> {
        if unfiltered && page.offset.saturating_add(page.limit) <= SHORT_LIST {
            return Ok(None);
        }
        self.scans.admit().await.map(Some)
    }

    /// The same store with `scans` as the bound on its long work.
    #[must_use]
    pub fn with_scans(mut self, scans: Scans) -> PgStore {
        self.scans = scans;
        self
    }
}

/// Rows an unfiltered list may read (`offset + limit`) without a turn of
/// the scan bound.
const SHORT_LIST: usize = 1000;

/// `host:port` of the first host the config names, for messages.
fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// The SQL id of API id `id`; `None` when no row can have it.
fn sql_id(id: Id) -> Option<i64> {
    i64::try_from(id).ok()
}

/// The API id of a row's id (identity values are positive).
fn api_id(id: i64) -> Id {
    Id::try_from(id).unwrap_or_default()
}

/// A count or position for SQL: clamped, as no table holds more rows.
fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store for PgStore {
    async fn create_item(&self, item: NewItem, keyed: Option<Keyed<Item>>) -> StoreResult<Item> {
        items::create(self, item, keyed.as_ref()).await
    }

    async fn item(&self, id: Id) -> StoreResult<Item> {
        items::get(self, id).await
    }

    async fn items(&self, filter: ItemFilter) -> StoreResult<Vec<Item>> {
        let unfiltered = filter.price.min.is_none() && filter.price.max.is_none();
        let _turn = self.long_list(unfiltered, filter.page).await?;
        items::list(self, filter).await
    }

    async fn replace_item(
        &self,
        id: Id,
        item: NewItem,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        let patch = ItemPatch {
            name: Some(item.name),
            price: Some(item.price),
        };
        items::patch(self, id, patch, precondition.as_ref(), keyed.as_ref()).await
    }

    async fn patch_item(
        &self,
        id: Id,
        patch: ItemPatch,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        items::patch(self, id, patch, precondition.as_ref(), keyed.as_ref()).await
    }

    async fn delete_item(
        &self,
        id: Id,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        items::delete(self, id, precondition.as_ref(), keyed.as_ref()).await
    }

    async fn create_cart(&self, keyed: Option<Keyed<Id>>) -> StoreResult<Id> {
        carts::create(self, keyed.as_ref()).await
    }

    async fn cart(&self, id: Id) -> StoreResult<Cart> {
        carts::get(self, id).await
    }

    async fn carts(&self, filter: CartFilter) -> StoreResult<Vec<Cart>> {
        let unfiltered = CartFilter {
            page: filter.page,
            ..CartFilter::default()
        } == filter;
        let _turn = self.long_list(unfiltered, filter.page).await?;
        carts::list(self, filter).await
    }

    async fn add_to_cart(
        &self,
        cart: Id,
        item: Id,
        max_lines: usize,
        keyed: Option<Keyed<Cart>>,
    ) -> StoreResult<Cart> {
        add::add(self, cart, item, max_lines, keyed.as_ref()).await
    }

    async fn kept(&self, key: &str) -> StoreResult<Option<KeptRecord>> {
        kept::get(self, key).await
    }

    async fn prune_kept(&self, now: u64, batch: usize) -> StoreResult<Pruned> {
        kept::prune(self, now, batch).await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (items, carts, keys) = with_client!(self, |client| {
            let row = client
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM items WHERE NOT deleted),
                            (SELECT COUNT(*) FROM carts),
                            (SELECT COUNT(*) FROM idempotency_keys)",
                    &[],
                )
                .await?;
            let (items, carts, keys): (i64, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            Ok((items, carts, keys))
        })?;
        // PostgreSQL's own size function; other engines may not have it.
        let storage_bytes: Option<i64> = with_client!(self, |client| {
            let row = client
                .query_one(
                    "SELECT (pg_total_relation_size('items') + pg_total_relation_size('carts')
                            + pg_total_relation_size('cart_lines')
                            + pg_total_relation_size('cart_dirty')
                            + pg_total_relation_size('idempotency_keys'))::BIGINT",
                    &[],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
        .ok();
        Ok(StoreStats {
            items: u64::try_from(items).unwrap_or_default(),
            carts: u64::try_from(carts).unwrap_or_default(),
            idempotency_keys: u64::try_from(keys).unwrap_or_default(),
            storage_bytes: storage_bytes.and_then(|bytes| u64::try_from(bytes).ok()),
            // The database's disk is the database host's to watch.
            available_bytes: None,
        })
    }

    async fn export(&self, out: Chunks, mode: ExportMode) -> StoreResult<Option<ExportCounts>> {
        // Long work, under the same bound as the embedded store's scans.
        let _turn = self.scans.admit().await?;
        // Not retried: chunks already sent cannot be taken back.
        let result = async {
            let mut client = self.pool.get().await?;
            transfer::export(&mut client, &out, mode).await
        }
        .await
        .map_err(Failure::into_store_error);
        self.outage.note(result.as_ref().err());
        result
    }

    async fn import(&self, snapshot: Snapshot) -> StoreResult<()> {
        with_client!(self, |client| transfer::import(&mut client, &snapshot)
            .await)
    }

    async fn ping(&self) -> StoreResult<()> {
        with_client!(self, |client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
    }

    async fn close(&self) -> StoreResult<()> {
        // Every write was committed before it was acknowledged.
        self.pool.close();
        Ok(())
    }
}
