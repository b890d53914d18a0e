//! What shopd does for its operator beside serving: the streaming export
//! (to an HTTP response or a file) and scheduled backups.
//!
//! - `export`: an export running in its own task, read as a stream of
//!   chunks, or written to a file from a blocking thread;
//! - `backup`: the scheduler: one backup per `backup_every_secs`, its
//!   metrics, its failures logged once;
//! - `files`: the backup directory: names with their UTC time, the
//!   temporary file, fsync, rename, and pruning beyond `backup_keep`.

pub mod backup;
pub mod export;
pub mod files;

pub use backup::Backups;
pub use export::{ExportStream, WriteError, export_to};
