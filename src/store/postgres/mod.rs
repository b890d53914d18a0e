//! The PostgreSQL backend: tables `items`, `carts` and `cart_lines`, shared
//! by any number of shopd instances, each with its own connection pool.
//!
//! Every operation is one statement where it can be (so it is atomic on its
//! own and needs no explicit transaction), prepared once per connection,
//! and retried a few times on SQLSTATE 40001. Add-to-cart is one upsert,
//! atomic against adds from every instance. Carts are priced in Rust
//! ([`crate::store::priced_cart`]), as the embedded store prices them.
//! Ids are `u64` in the API and `BIGINT` here: an id above `i64::MAX` is
//! one no row has.

mod errors;
mod schema;
mod transfer;
mod url;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::{NoTls, Row};

use self::errors::{ATTEMPTS, Failure, Outage, backoff};
pub use self::schema::SchemaError;
pub use self::url::DatabaseUrl;
use super::{LineState, Pager, Snapshot, Store, StoreError, StoreResult, StoreStats, priced_cart};
use crate::domain::{Cart, CartFilter, Id, Item, ItemFilter, ItemPatch, NewItem};

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
}

/// Runs `$body`, an expression using a pooled connection `$client` and
/// `?` on [`Failure`]s, retrying serialization failures; notes the outcome
/// for the outage log.
macro_rules! with_client {
    ($store:expr, |$client:ident| $body:expr) => {{
        let mut attempt = 1;
        let result = loop {
            let outcome: Result<_, Failure> = async {
                #[allow(unused_mut)]
                let mut $client = $store.pool.get().await?;
                $body
            }
            .await;
            match outcome {
                Err(failure) if failure.is_retryable() && attempt < ATTEMPTS => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => break other.map_err(Failure::into_store_error),
            }
        };
        $store.outage.note(result.as_ref().err());
        result
    }};
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
        drop(client);
        Ok(PgStore {
            pool,
            outage: std::sync::Arc::default(),
        })
    }

    /// Finds why an update of item `id` changed no row.
    async fn item_state(
        client: &deadpool_postgres::Client,
        id: i64,
    ) -> Result<Option<bool>, Failure> {
        let statement = client
            .prepare_cached("SELECT deleted FROM items WHERE id = $1")
            .await?;
        let row = client.query_opt(&statement, &[&id]).await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    /// Carts by ascending id from `after` on: at most `count`, with their
    /// lines, read in one statement.
    async fn cart_batch(&self, after: i64, count: i64, skip: i64) -> StoreResult<Vec<Cart>> {
        with_client!(self, |client| {
            let statement = client
                .prepare_cached(
                    "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
                     FROM (SELECT id FROM carts WHERE id > $1 ORDER BY id LIMIT $2 OFFSET $3) c
                     LEFT JOIN cart_lines l ON l.cart_id = c.id
                     LEFT JOIN items i ON i.id = l.item_id
                     ORDER BY c.id, l.position",
                )
                .await?;
            let rows = client.query(&statement, &[&after, &count, &skip]).await?;
            carts_of(&rows)
        })
    }
}

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

fn item_of(row: &Row) -> Result<Item, Failure> {
    Ok(Item {
        id: api_id(row.try_get(0)?),
        name: row.try_get(1)?,
        price: row.try_get(2)?,
        deleted: row.try_get(3)?,
    })
}

/// Rows of `(cart id, item id?, quantity?, name?, price?, deleted?)`,
/// grouped by cart in row order, as priced carts.
fn carts_of(rows: &[Row]) -> Result<Vec<Cart>, Failure> {
    let mut carts = Vec::new();
    let mut current: Option<(i64, Vec<LineState>)> = None;
    for row in rows {
        let cart: i64 = row.try_get(0)?;
        if current.as_ref().is_none_or(|(id, _)| *id != cart) {
            if let Some((id, lines)) = current.take() {
                carts.push(priced_cart(api_id(id), lines));
            }
            current = Some((cart, Vec::new()));
        }
        if let (Some((_, lines)), Some(line)) = (current.as_mut(), line_of(row, 1)?) {
            lines.push(line);
        }
    }
    if let Some((id, lines)) = current {
        carts.push(priced_cart(api_id(id), lines));
    }
    Ok(carts)
}

/// The line in columns `first..first + 5` of `row`, if the row has one.
fn line_of(row: &Row, first: usize) -> Result<Option<LineState>, Failure> {
    let Some(item) = row.try_get::<_, Option<i64>>(first)? else {
        return Ok(None);
    };
    let quantity: i64 = row.try_get(first + 1)?;
    Ok(Some(LineState {
        item: api_id(item),
        quantity: u64::try_from(quantity).unwrap_or_default(),
        name: row.try_get(first + 2)?,
        price: row.try_get(first + 3)?,
        deleted: row.try_get(first + 4)?,
    }))
}

/// Carts read per statement when a list filters by price or quantity
/// (computed in Rust, so the filter cannot run in SQL).
const CART_BATCH: i64 = 256;

const CART_SQL: &str = "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
     FROM carts c
     LEFT JOIN cart_lines l ON l.cart_id = c.id
     LEFT JOIN items i ON i.id = l.item_id
     WHERE c.id = $1
     ORDER BY l.position";

impl Store for PgStore {
    async fn create_item(&self, item: NewItem) -> StoreResult<Item> {
        with_client!(self, |client| {
            let statement = client
                .prepare_cached(
                    "INSERT INTO items (name, price) VALUES ($1, $2)
                     RETURNING id, name, price, deleted",
                )
                .await?;
            let row = client
                .query_one(&statement, &[&item.name, &item.price])
                .await?;
            item_of(&row)
        })
    }

    async fn item(&self, id: Id) -> StoreResult<Item> {
        let key = sql_id(id).ok_or(StoreError::ItemNotFound(id))?;
        with_client!(self, |client| {
            let statement = client
                .prepare_cached("SELECT id, name, price, deleted FROM items WHERE id = $1")
                .await?;
            match client.query_opt(&statement, &[&key]).await? {
                Some(row) => item_of(&row),
                None => Err(StoreError::ItemNotFound(id).into()),
            }
        })
    }

    async fn items(&self, filter: ItemFilter) -> StoreResult<Vec<Item>> {
        let min = filter.price.min.unwrap_or(f64::NEG_INFINITY);
        let max = filter.price.max.unwrap_or(f64::INFINITY);
        let (offset, limit) = (sql_count(filter.page.offset), sql_count(filter.page.limit));
        with_client!(self, |client| {
            let statement = client
                .prepare_cached(
                    "SELECT id, name, price, deleted FROM items
                     WHERE ($1 OR NOT deleted) AND price >= $2 AND price <= $3
                     ORDER BY id LIMIT $4 OFFSET $5",
                )
                .await?;
            let rows = client
                .query(
                    &statement,
                    &[&filter.show_deleted, &min, &max, &limit, &offset],
                )
                .await?;
            rows.iter().map(item_of).collect()
        })
    }

    async fn replace_item(&self, id: Id, item: NewItem) -> StoreResult<Item> {
        self.patch_item(
            id,
            ItemPatch {
                name: Some(item.name),
                price: Some(item.price),
            },
        )
        .await
    }

    async fn patch_item(&self, id: Id, patch: ItemPatch) -> StoreResult<Item> {
        let key = sql_id(id).ok_or(StoreError::ItemNotFound(id))?;
        with_client!(self, |client| {
            let statement = client
                .prepare_cached(
                    "UPDATE items SET name = COALESCE($2, name), price = COALESCE($3, price)
                     WHERE id = $1 AND NOT deleted
                     RETURNING id, name, price, deleted",
                )
                .await?;
            let row = client
                .query_opt(&statement, &[&key, &patch.name, &patch.price])
                .await?;
            match row {
                Some(row) => item_of(&row),
                None => match Self::item_state(&client, key).await? {
                    None => Err(StoreError::ItemNotFound(id).into()),
                    // Deleted, also when a delete won the race with us.
                    Some(_) => Err(StoreError::ItemDeleted(id).into()),
                },
            }
        })
    }

    async fn delete_item(&self, id: Id) -> StoreResult<Item> {
        let key = sql_id(id).ok_or(StoreError::ItemNotFound(id))?;
        with_client!(self, |client| {
            let statement = client
                .prepare_cached(
                    "UPDATE items SET deleted = TRUE WHERE id = $1
                     RETURNING id, name, price, deleted",
                )
                .await?;
            match client.query_opt(&statement, &[&key]).await? {
                Some(row) => item_of(&row),
                None => Err(StoreError::ItemNotFound(id).into()),
            }
        })
    }

    async fn create_cart(&self) -> StoreResult<Id> {
        with_client!(self, |client| {
            let statement = client
                .prepare_cached("INSERT INTO carts DEFAULT VALUES RETURNING id")
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            Ok(api_id(row.try_get(0)?))
        })
    }

    async fn cart(&self, id: Id) -> StoreResult<Cart> {
        let key = sql_id(id).ok_or(StoreError::CartNotFound(id))?;
        with_client!(self, |client| {
            let statement = client.prepare_cached(CART_SQL).await?;
            let rows = client.query(&statement, &[&key]).await?;
            carts_of(&rows)?
                .pop()
                .ok_or_else(|| StoreError::CartNotFound(id).into())
        })
    }

    async fn carts(&self, filter: CartFilter) -> StoreResult<Vec<Cart>> {
        let unfiltered = CartFilter {
            page: filter.page,
            ..CartFilter::default()
        } == filter;
        if unfiltered {
            // Paged in SQL: no cart is read that the page does not hold.
            let (offset, limit) = (sql_count(filter.page.offset), sql_count(filter.page.limit));
            return self.cart_batch(0, limit, offset).await;
        }
        let mut pager = Pager::new(filter.page);
        let mut after = 0;
        while !pager.is_full() {
            let batch = self.cart_batch(after, CART_BATCH, 0).await?;
            let Some(last) = batch.last() else { break };
            after = sql_id(last.id).unwrap_or(i64::MAX);
            for cart in batch.into_iter().filter(|cart| filter.accepts(cart)) {
                pager.offer(cart);
            }
        }
        Ok(pager.into_found())
    }

    async fn add_to_cart(&self, cart: Id, item: Id, max_lines: usize) -> StoreResult<Cart> {
        let max_lines = i64::try_from(max_lines).unwrap_or(i64::MAX);
        let cart_key = sql_id(cart).ok_or(StoreError::CartNotFound(cart))?;
        let item_key = sql_id(item);
        with_client!(self, |client| {
            let Some(item_key) = item_key else {
                // No item has this id; the cart's existence is checked first.
                return match client
                    .query_opt("SELECT 1 FROM carts WHERE id = $1", &[&cart_key])
                    .await?
                {
                    Some(_) => Err(StoreError::ItemNotFound(item).into()),
                    None => Err(StoreError::CartNotFound(cart).into()),
                };
            };
            // One statement: a new line only while the cart has fewer than
            // `max_lines`; an existing line always. (Concurrent adds of
            // different new items may each see the count below the bound
            // under READ COMMITTED: the cart can pass it by at most the
            // number of such adds running at once.)
            let add = client
                .prepare_cached(
                    "INSERT INTO cart_lines (cart_id, item_id, quantity)
                     SELECT c.id, i.id, 1 FROM carts c, items i
                     WHERE c.id = $1 AND i.id = $2 AND NOT i.deleted
                       AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = $1) < $3
                            OR EXISTS (SELECT 1 FROM cart_lines
                                       WHERE cart_id = $1 AND item_id = $2))
                     ON CONFLICT (cart_id, item_id)
                     DO UPDATE SET quantity = cart_lines.quantity + 1",
                )
                .await?;
            if client
                .execute(&add, &[&cart_key, &item_key, &max_lines])
                .await?
                == 0
            {
                // Nothing added: say why, in the contract's order.
                let why = client
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM carts WHERE id = $1),
                                (SELECT deleted FROM items WHERE id = $2)",
                    )
                    .await?;
                let row = client.query_one(&why, &[&cart_key, &item_key]).await?;
                let cart_exists: bool = row.try_get(0)?;
                let deleted: Option<bool> = row.try_get(1)?;
                return Err(match (cart_exists, deleted) {
                    (false, _) => StoreError::CartNotFound(cart),
                    (true, None) => StoreError::ItemNotFound(item),
                    (true, Some(true)) => StoreError::ItemUnavailable(item),
                    // Live item, existing cart, nothing added: the cart is full.
                    (true, Some(false)) => StoreError::CartFull {
                        cart,
                        limit: usize::try_from(max_lines).unwrap_or(usize::MAX),
                    },
                }
                .into());
            }
            let statement = client.prepare_cached(CART_SQL).await?;
            let rows = client.query(&statement, &[&cart_key]).await?;
            carts_of(&rows)?
                .pop()
                .ok_or_else(|| StoreError::CartNotFound(cart).into())
        })
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (items, carts) = with_client!(self, |client| {
            let row = client
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM items WHERE NOT deleted),
                            (SELECT COUNT(*) FROM carts)",
                    &[],
                )
                .await?;
            let (items, carts): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            Ok((items, carts))
        })?;
        // PostgreSQL's own size function; other engines may not have it.
        let storage_bytes: Option<i64> = with_client!(self, |client| {
            let row = client
                .query_one(
                    "SELECT (pg_total_relation_size('items') + pg_total_relation_size('carts')
                            + pg_total_relation_size('cart_lines'))::BIGINT",
                    &[],
                )
                .await?;
            Ok(row.try_get(0)?)
        })
        .ok();
        Ok(StoreStats {
            items: u64::try_from(items).unwrap_or_default(),
            carts: u64::try_from(carts).unwrap_or_default(),
            storage_bytes: storage_bytes.and_then(|bytes| u64::try_from(bytes).ok()),
        })
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        with_client!(self, |client| transfer::snapshot(&mut client).await)
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
