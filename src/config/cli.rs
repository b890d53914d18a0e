//! The command line: serving (its flags are [`ServeArgs`], made by the
//! settings list) or one of the store commands.

use std::path::PathBuf;

use clap::Parser;

use super::{DatabaseUrl, ServeArgs};

/// shopd: a small online shop's backend (items, carts, chat, metrics) in one binary.
///
/// Without a command it serves; the commands below work on a store.
#[derive(Debug, Default, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server's flags.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Start on a damaged data directory anyway: serve what is left, new ids continue after every acknowledged one (a flag only, for the one start that needs it)
    #[arg(long)]
    pub accept_data_loss: bool,
}

/// The commands besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write every item and cart in shopd's export format (NDJSON): from a stopped
    /// embedded store, from PostgreSQL, or from a running shopd (--url)
    Export(ExportArgs),
    /// Load an export into an empty store; checks the whole file first and writes
    /// nothing if any line is wrong
    Import(ImportArgs),
    /// Read every record of a stopped data directory and compare with its manifest; exit 0 when clean, 1 on damage or when it cannot be checked
    Check {
        /// The data directory to check [default: ./data]
        #[arg(
            long,
            env = "SHOPD_DATA_DIR",
            value_name = "DIR",
            default_value = "data"
        )]
        data_dir: PathBuf,
    },
    /// Print a shell completion script for shopd: `shopd completions bash > /etc/bash_completion.d/shopd`
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print shopd's manual page (roff): `shopd man > /usr/local/share/man/man1/shopd.1`
    Man,
}

/// Writes the completion script for `shell` of the whole command line
/// (every command and flag, with the `SHOPD_*` variables in their help).
pub fn completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "shopd", out);
}

/// Writes the manual page of the command line, made from the same
/// definitions as `--help`, so the two cannot disagree.
pub fn man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(command).render(out)
}

/// Where an export or import finds its store: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct StoreArgs {
    /// A stopped shopd's data directory
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL database that shopd uses
    #[arg(long, value_name = "URL")]
    pub database_url: Option<DatabaseUrl>,
}

/// `shopd export`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)))]
pub struct ExportArgs {
    /// A stopped shopd's data directory
    #[arg(long, value_name = "DIR", group = "source")]
    pub data_dir: Option<PathBuf>,
    /// A PostgreSQL database that shopd uses
    #[arg(long, value_name = "URL", group = "source")]
    pub database_url: Option<DatabaseUrl>,
    /// A running shopd (http://HOST:PORT): an online, consistent export through
    /// GET /admin/export, with the admin token from --admin-token-file or SHOPD_ADMIN_TOKEN
    #[arg(long, value_name = "URL", group = "source")]
    pub url: Option<String>,
    /// With --url: file holding the admin token
    #[arg(long, value_name = "FILE", requires = "url")]
    pub admin_token_file: Option<PathBuf>,
    /// Where to write the export [default: standard output]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `shopd import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Where to import to
    #[command(flatten)]
    pub store: StoreArgs,
    /// The export to read [default: standard input]
    #[arg(long = "in", value_name = "FILE")]
    pub input: Option<PathBuf>,
}
