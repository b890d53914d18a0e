//! The `shopd` binary: settings, logging, then the app until a signal.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shopd::store::{OnDamage, Store};
use shopd::{App, Cli, Command, Settings};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Export(args)) => return finish(shopd::transfer::export(args).await),
        Some(Command::Import(args)) => {
            let imported = shopd::transfer::import(args).await.map(|imported| {
                // On stderr: standard output may be part of a pipe.
                eprintln!(
                    "imported {} items and {} carts",
                    imported.items, imported.carts
                );
            });
            return finish(imported);
        }
        Some(Command::Check { data_dir }) => return check(&data_dir),
        Some(Command::Completions { shell }) => {
            shopd::config::completions(shell, &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Man) => return finish(shopd::config::man(&mut std::io::stdout())),
        None => {}
    }
    let on_damage = if cli.accept_data_loss {
        OnDamage::AcceptDataLoss
    } else {
        OnDamage::Refuse
    };
    let settings = match Settings::load(&cli.serve) {
        Ok(settings) => settings,
        // Logging has not started: stderr is ours alone.
        Err(err) => return finish(Err(err)),
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(settings.log.level.as_str()))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Log lines go to stderr from a writer thread: a request never waits
    // for a pipe or a terminal. When that thread falls behind by more than
    // its buffer, lines are dropped rather than slowing requests down; the
    // guard flushes what is left at exit.
    let (writer, flush_logs) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let variables = std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned());
    for name in shopd::config::unknown_variables(variables) {
        tracing::warn!(variable = %name, "not a shopd setting; ignored (see --help)");
    }
    shopd::open_files::raise_for(&settings);
    let outcome = run(settings, on_damage).await;
    let last_line = match &outcome {
        Ok(()) => None,
        Err(err) => Some(format!("shopd: {}", shopd::error_chain(err))),
    };
    // From here on stderr belongs to the log writer thread, and with stderr
    // on a full pipe nobody reads, that thread sits in a write holding
    // stderr's lock. Flushing the logs and the last line get a bounded wait
    // on a helper thread; then shopd exits whether they went out or not.
    let (done, finished) = std::sync::mpsc::channel();
    let last_words = std::thread::Builder::new()
        .name("shopd-exit".into())
        .spawn(move || {
            drop(flush_logs);
            if let Some(line) = last_line {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            let _ = done.send(());
        });
    if last_words.is_ok() {
        let _ = finished.recv_timeout(EXIT_WAIT);
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// The most shopd waits at exit for its last log lines to go out.
const EXIT_WAIT: Duration = Duration::from_secs(3);

/// Starts in the order that leaves nothing behind when a step fails: the
/// signal handlers, the listener (a busy port creates no data directory),
/// the chat bus, the store (and its migrations); then says "listening" and
/// serves. One monomorphised [`serve`] per backend.
async fn run(settings: Settings, on_damage: OnDamage) -> Result<(), shopd::AppError> {
    // Signal handlers first: whoever reads the "listening" line may stop us.
    let signals = shopd::shutdown::Signals::watch();
    let drain = settings.server.shutdown_drain;
    let listener = shopd::bind(settings.server.listen).await?;
    let bus = shopd::app::connect_bus(&settings.chat).await?;
    let start = Start {
        listener,
        signals,
        drain,
    };
    match &settings.storage.database_url {
        Some(url) => {
            let store = format!("PostgreSQL at {url}");
            let app = App::connect(settings).await?.with_bus(bus);
            serve(app, start, &store).await
        }
        None => {
            let store = format!(
                "data directory {} ({:?} durability)",
                settings.storage.data_dir.display(),
                settings.storage.durability
            );
            let app = App::open_with(settings, on_damage)?.with_bus(bus);
            serve(app, start, &store).await
        }
    }
}

/// What start-up prepared before the store: the bound listener, the
/// watched signals, the drain they start.
struct Start {
    listener: TcpListener,
    signals: shopd::shutdown::Signals,
    drain: Duration,
}

/// Says where shopd listens, once everything that can fail has succeeded,
/// then serves until a signal (and the drain) stops it.
async fn serve<S: Store>(app: App<S>, start: Start, store: &str) -> Result<(), shopd::AppError> {
    let app = app.ready().await?;
    let Start {
        listener,
        signals,
        drain,
    } = start;
    let stop = shopd::shutdown::drained(signals, drain, app.draining());
    if let Some(addr) = shopd::app::local_addr(&listener) {
        // On stdout, so scripts (and tests) can read the port when it was 0.
        println!("shopd listening on http://{addr}");
        tracing::info!(%addr, store, "shopd started");
    }
    app.serve(listener, stop).await
}

/// The exit of a command that runs without logging: stderr is ours alone.
fn finish<E: std::error::Error + 'static>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shopd: {}", shopd::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// `shopd check`: prints the summary; exit 0 when clean, 1 otherwise.
fn check(data_dir: &std::path::Path) -> ExitCode {
    match shopd::store::check(data_dir) {
        Ok(report) => {
            print!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                println!(
                    "damaged: see \"Damaged stores and full disks\" in docs/durability.md to recover"
                );
                ExitCode::FAILURE
            }
        }
        Err(err) => finish(Err(err)),
    }
}
