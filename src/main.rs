//! The `shopd` binary: settings, logging, then the app until a signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shopd::config::Command;
use shopd::store::Store;
use shopd::{App, Cli, Settings};
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
        None => {}
    }
    let settings = match Settings::load(cli.serve) {
        Ok(settings) => settings,
        Err(err) => return fail(&err),
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Log lines go to stderr from a writer thread: a request never waits
    // for a pipe or a terminal. When that thread falls behind by more than
    // its buffer, lines are dropped rather than slowing requests down; the
    // guard flushes what is left at exit.
    let (writer, _flush_logs) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Opens the store the settings choose, then serves: one monomorphised
/// [`serve`] per backend.
async fn run(settings: Settings) -> Result<(), shopd::AppError> {
    let listen = settings.listen.clone();
    match &settings.database_url {
        Some(url) => {
            let store = format!("PostgreSQL at {url}");
            serve(App::connect(settings).await?, &listen, &store).await
        }
        None => {
            let store = format!(
                "data directory {} ({:?} durability)",
                settings.data_dir.display(),
                settings.durability
            );
            serve(App::open(settings)?, &listen, &store).await
        }
    }
}

async fn serve<S: Store>(app: App<S>, listen: &str, store: &str) -> Result<(), shopd::AppError> {
    let listener = shopd::bind(listen).await?;
    if let Some(addr) = shopd::app::local_addr(&listener) {
        // On stdout, so scripts (and tests) can read the port when it was 0.
        println!("shopd listening on http://{addr}");
        tracing::info!(%addr, store, "shopd started");
    }
    app.serve(listener, shopd::shutdown::signal()).await
}

fn finish<E: std::error::Error + 'static>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

fn fail(err: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("shopd: {}", shopd::error_chain(err));
    ExitCode::FAILURE
}
