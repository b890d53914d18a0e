//! PostgreSQL for the tests: one server per test process, one fresh
//! database per test (created here, dropped when the test is done).
//!
//! The server is, in order: the one `SHOPD_TEST_DATABASE_URL` names (a URL
//! of a role that may create databases); the one the `PG*` variables name
//! (as `pg_virtualenv` exports them; tokio-postgres ignores them, so the
//! URL is built here); else a throwaway cluster started from Debian's
//! `postgresql` binaries in a temp dir, which goes away with this process.
//! Without any of them the PostgreSQL tests skip loudly, and fail when `CI`
//! is set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::TestApp;
use rand::RngExt;

/// A server this process may create databases on.
struct Server {
    /// URL of the server's `postgres` database, as a role that may create
    /// databases.
    admin_url: String,
    /// Held open while the process runs: when it closes (the process
    /// ended), the cluster's watchdog shell stops the server and removes
    /// its directory.
    _watchdog: Option<Mutex<ChildStdin>>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// A fresh, empty database for one test; dropped (forcibly) with this value.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    /// The admin URL and the database's name, when this value owns it.
    owner: Option<(String, String)>,
}

/// A fresh database, or `None` (after a loud SKIPPED line) when this
/// machine has no PostgreSQL. Panics under `CI`, where skipping would hide
/// that the PostgreSQL tests did not run.
pub async fn fresh_database(test: &str) -> Option<TestDatabase> {
    let server = match SERVER.get_or_init(start_server) {
        Ok(server) => server,
        Err(why) => {
            return crate::support::skip(
                test,
                &format!("no PostgreSQL: {why}"),
                "Install it (apt-get install -y postgresql) or set SHOPD_TEST_DATABASE_URL to run this test",
            );
        }
    };
    let name = format!("shopd_test_{:016x}", rand::rng().random::<u64>());
    let admin = connect(&server.admin_url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    Some(TestDatabase {
        url: with_database(&server.admin_url, &name),
        owner: Some((server.admin_url.clone(), name)),
    })
}

impl TestDatabase {
    /// A database another value owns (a second instance on it).
    pub fn borrowed(url: &shopd::config::DatabaseUrl) -> TestDatabase {
        TestDatabase {
            url: url.expose().to_owned(),
            owner: None,
        }
    }

    /// A plain client on this database, for checks behind shopd's back.
    #[allow(dead_code)] // Not every test binary build uses it.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.owner.take() else {
            return;
        };
        // Drop runs outside any runtime we could block on: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let admin = connect(&admin_url).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        });
        let _ = dropped.join();
    }
}

/// Two instances on one fresh database, or `None` to skip.
pub async fn two_instances(test: &str) -> Option<(TestApp, TestApp)> {
    let database = fresh_database(test).await?;
    let url = database.url.clone();
    let a = TestApp::builder().postgres(database).spawn().await;
    let b = TestApp::builder().shared_postgres(&url).spawn().await;
    Some((a, b))
}

/// Connects, and drives the connection on a task of the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("connect to the test database server: {err}"));
    tokio::spawn(connection);
    client
}

/// The schema versions applied, in order, as `shopd_schema` records them.
#[allow(dead_code)] // Not every test binary build uses it.
pub async fn schema_versions(client: &tokio_postgres::Client) -> Vec<i64> {
    client
        .query("SELECT version FROM shopd_schema ORDER BY version", &[])
        .await
        .unwrap_or_else(|err| panic!("read the schema versions: {err}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// `url` pointing at database `name` instead.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let base = base.rsplit_once('/').map_or(base, |(server, _)| server);
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

fn start_server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("SHOPD_TEST_DATABASE_URL") {
        return Ok(Server {
            admin_url: url,
            _watchdog: None,
        });
    }
    if let Ok(host) = std::env::var("PGHOST") {
        let var = |key: &str, default: &str| std::env::var(key).unwrap_or_else(|_| default.into());
        let user = var("PGUSER", "postgres");
        let password = std::env::var("PGPASSWORD")
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let port = var("PGPORT", "5432");
        // A socket directory goes in the `host` parameter.
        let admin_url = if host.starts_with('/') {
            format!("postgres://{user}{password}@localhost:{port}/postgres?host={host}")
        } else {
            format!("postgres://{user}{password}@{host}:{port}/postgres")
        };
        return Ok(Server {
            admin_url,
            _watchdog: None,
        });
    }
    start_cluster()
}

/// The newest Debian PostgreSQL's binaries.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|path| {
        path.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop()
}

/// Runs `program` as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root).
fn as_postgres(program: &Path, root: bool) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn start_cluster() -> Result<Server, String> {
    let bin =
        postgres_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)")?;
    let root = unsafe { libc::geteuid() } == 0;
    let dir = tempfile::Builder::new()
        .prefix("shopd-test-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if root {
        let uid_gid = |flag: &str| -> Result<u32, String> {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .map_err(|e| e.to_string())?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|_| "no postgres user".to_string())
        };
        std::os::unix::fs::chown(&dir, Some(uid_gid("-u")?), Some(uid_gid("-g")?))
            .map_err(|e| e.to_string())?;
    }
    let data = dir.join("data");
    let initdb = as_postgres(&bin.join("initdb"), root)
        .arg("-D")
        .arg(&data)
        .args(["-U", "shopd", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let port = crate::support::free_port();
    // The server runs under a shell that waits for its stdin to close (this
    // process ended, however it ended), then stops it and removes the dir.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=400 -c shared_buffers=64MB >{dir}/log 2>&1 & pid=$!; \
         cat >/dev/null; kill -INT $pid; wait $pid; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
    );
    let mut shell = as_postgres(Path::new("/bin/sh"), root)
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start postgres: {e}"))?;
    let stdin = shell.stdin.take().ok_or("no stdin")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdin = stdin;
    let _ = stdin.flush();
    Ok(Server {
        admin_url: format!("postgres://shopd@127.0.0.1:{port}/postgres"),
        _watchdog: Some(Mutex::new(stdin)),
    })
}
