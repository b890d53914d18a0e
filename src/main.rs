//! The `shopd` binary: settings, logging, then the app until a signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use shopd::{App, Cli, Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::load(Cli::parse()) {
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

async fn run(settings: Settings) -> Result<(), shopd::AppError> {
    let data_dir = settings.data_dir.clone();
    let durability = settings.durability;
    let listen = settings.listen.clone();
    let app = App::open(settings)?;
    let listener = shopd::bind(&listen).await?;
    if let Some(addr) = shopd::app::local_addr(&listener) {
        // On stdout, so scripts (and tests) can read the port when it was 0.
        println!("shopd listening on http://{addr}");
        tracing::info!(%addr, data_dir = %data_dir.display(), ?durability, "shopd started");
    }
    app.serve(listener, shopd::shutdown::signal()).await
}

fn fail(err: &dyn std::error::Error) -> ExitCode {
    let mut message = format!("shopd: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
