//! The `shopd` binary: settings, logging, then the app until a signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shopd::store::{OnDamage, Store};
use shopd::{App, Cli, Command, Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Check { data_dir }) = &cli.command {
        return check(data_dir);
    }
    let on_damage = if cli.accept_data_loss {
        OnDamage::AcceptDataLoss
    } else {
        OnDamage::Refuse
    };
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
    match run(settings, on_damage).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Opens the store the settings choose, then serves: one monomorphised
/// [`serve`] per backend.
async fn run(settings: Settings, on_damage: OnDamage) -> Result<(), shopd::AppError> {
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
            serve(App::open_with(settings, on_damage)?, &listen, &store).await
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

/// `shopd check`: prints the summary; exit 0 when clean, 1 otherwise.
fn check(data_dir: &std::path::Path) -> ExitCode {
    match shopd::store::check(data_dir) {
        Ok(report) => {
            print!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                println!("damaged: see the README's \"Damaged stores and full disks\" to recover");
                ExitCode::FAILURE
            }
        }
        Err(err) => fail(&err),
    }
}

fn fail(err: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("shopd: {}", shopd::error_chain(err));
    ExitCode::FAILURE
}
