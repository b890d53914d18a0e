//! `shopd export` and `shopd import`: the export format (see
//! [`crate::store::export`]) to and from any store, or from a running
//! shopd over HTTP.

use std::io::{BufReader, Write};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::config::{ADMIN_TOKEN_ENV, ExportArgs, ImportArgs, Secret};
use crate::ops::{WriteError, export_to};
use crate::store::export::ImportError;
use crate::store::{
    Durability, ExportMode, OpenError, PgOpenError, PgOptions, PgStore, SledStore, Snapshot, Store,
    StoreError,
};

/// Why an export or import failed; messages name the file, store or line.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The data directory cannot be opened (or a shopd runs on it).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The database cannot be reached.
    #[error(transparent)]
    Database(#[from] PgOpenError),
    /// The store failed, or an import found it not empty.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The export is not valid; nothing was imported.
    #[error("the export is invalid, nothing was imported")]
    Invalid(#[from] ImportError),
    /// A file could not be read or written.
    #[error("{path}")]
    File {
        /// The file.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The running shopd could not be asked, or said no.
    #[error("{url}: {message}")]
    Remote {
        /// The shopd asked.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// What an import loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Items, deleted ones included.
    pub items: usize,
    /// Carts.
    pub carts: usize,
}

/// Runs `shopd export`: streamed from the store (or the running shopd)
/// to the output as it is read, so memory does not grow with the store.
pub async fn export(args: ExportArgs) -> Result<(), TransferError> {
    let output = Output {
        path: args.out.as_deref(),
        created: std::cell::Cell::new(false),
    };
    let exported = match (&args.data_dir, &args.database_url, &args.url) {
        (Some(dir), _, _) => export_from(&open_sled(dir)?, &output).await,
        (_, Some(url), _) => export_from(&connect(url.clone()).await?, &output).await,
        (_, _, Some(url)) => {
            let token = crate::config::admin_token(
                std::env::var(ADMIN_TOKEN_ENV).ok(),
                args.admin_token_file.as_deref(),
            )
            .map_err(|err| TransferError::Remote {
                url: url.clone(),
                message: err.to_string(),
            })?;
            fetch_export(url, token.as_ref(), &output).await
        }
        // clap requires one source.
        (None, None, None) => Ok(()),
    };
    if exported.is_err() {
        output.discard();
    }
    exported
}

/// Where `shopd export` writes: `--out FILE` or standard output. The file
/// is created only once the source answered, and removed when the export
/// fails, so a failed export leaves no file that looks like one.
struct Output<'a> {
    path: Option<&'a Path>,
    created: std::cell::Cell<bool>,
}

impl Output<'_> {
    fn open(&self) -> Result<Box<dyn Write + Send>, TransferError> {
        match self.path {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(|source| self.error(source))?;
                self.created.set(true);
                Ok(Box::new(file))
            }
            None => Ok(Box::new(std::io::stdout())),
        }
    }

    fn error(&self, source: std::io::Error) -> TransferError {
        let path = self.path.unwrap_or(Path::new("standard output"));
        TransferError::File {
            path: path.display().to_string(),
            source,
        }
    }

    fn discard(&self) {
        if let (Some(path), true) = (self.path, self.created.get()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Exports `store` into `output`, then closes the store.
async fn export_from<S: Store>(store: &S, output: &Output<'_>) -> Result<(), TransferError> {
    let exported = match output.open() {
        Ok(out) => match export_to(store, ExportMode::Online, out).await {
            Ok(_) => Ok(()),
            Err(WriteError::Write(source)) => Err(output.error(source)),
            Err(WriteError::Store(err)) => Err(err.into()),
        },
        Err(err) => Err(err),
    };
    store.close().await?;
    exported
}

/// Runs `shopd import`; the whole export is read and checked before the
/// store is opened.
pub async fn import(args: ImportArgs) -> Result<Imported, TransferError> {
    let snapshot = match &args.input {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|source| TransferError::File {
                path: path.display().to_string(),
                source,
            })?;
            Snapshot::read(BufReader::new(file))?
        }
        None => Snapshot::read(std::io::stdin().lock())?,
    };
    let imported = Imported {
        items: snapshot.items.len(),
        carts: snapshot.carts.len(),
    };
    match (&args.store.data_dir, &args.store.database_url) {
        (Some(dir), _) => {
            let store = open_sled(dir)?;
            store.import(snapshot).await?;
            store.close().await?;
        }
        (_, Some(url)) => connect(url.clone()).await?.import(snapshot).await?,
        (None, None) => {}
    }
    Ok(imported)
}

fn open_sled(dir: &Path) -> Result<SledStore, OpenError> {
    SledStore::open(dir, Durability::Sync, 500)
}

async fn connect(url: crate::config::DatabaseUrl) -> Result<PgStore, PgOpenError> {
    PgStore::connect(&PgOptions {
        url,
        pool_size: 2,
        timeout: Duration::from_secs(30),
    })
    .await
}

/// `GET /admin/export` of the shopd at `url` (`http://HOST:PORT`), written
/// to `output` as it arrives.
async fn fetch_export(
    url: &str,
    token: Option<&Secret>,
    output: &Output<'_>,
) -> Result<(), TransferError> {
    let remote = |message: String| TransferError::Remote {
        url: url.to_owned(),
        message,
    };
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| remote("only http:// URLs are supported".into()))?
        .trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|err| remote(format!("cannot connect: {err}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| remote(err.to_string()))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::get("/admin/export").header(hyper::header::HOST, authority);
    if let Some(token) = token {
        request = request.header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        );
    }
    let request = request
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|err| remote(err.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| remote(err.to_string()))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let body = body
            .collect()
            .await
            .map_err(|err| remote(err.to_string()))?
            .to_bytes();
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|body| body["detail"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut message = format!("answered {status}: {detail}");
        if let Some(advice) = advice(status, token.is_some()) {
            message.push_str("; ");
            message.push_str(advice);
        }
        return Err(remote(message));
    }
    let mut out = output.open()?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| remote(format!("the export was cut off: {err}")))?;
        if let Some(data) = frame.data_ref() {
            out.write_all(data).map_err(|source| output.error(source))?;
        }
    }
    out.flush().map_err(|source| output.error(source))
}

/// What to do about a refused `GET /admin/export`, naming the settings.
fn advice(status: hyper::StatusCode, sent_token: bool) -> Option<&'static str> {
    match status {
        hyper::StatusCode::NOT_FOUND => Some(
            "that shopd has no admin token, so /admin/export is off: start it with \
             --admin-token-file FILE (or SHOPD_ADMIN_TOKEN) and give this command the same token",
        ),
        hyper::StatusCode::UNAUTHORIZED if sent_token => Some(
            "the token given (--admin-token-file or SHOPD_ADMIN_TOKEN) is not that shopd's \
             admin token",
        ),
        hyper::StatusCode::UNAUTHORIZED => Some(
            "no admin token was given: pass the server's token with --admin-token-file FILE \
             or SHOPD_ADMIN_TOKEN",
        ),
        _ => None,
    }
}
