//! The scheduled backups' figures. Registered only when backups are on,
//! so a shopd without them shows none (and the "backup too old" alert,
//! which needs them, stays out of its way).

use metrics::{Counter, Gauge, Key, KeyName, Recorder, SharedString};

use super::Telemetry;
use super::names::METADATA;

const LAST_SUCCESS: &str = "shopd_backup_last_success_timestamp_seconds";
const DURATION: &str = "shopd_backup_duration_seconds";
const FAILURES: &str = "shopd_backup_failures_total";
const INTERVAL: &str = "shopd_backup_interval_seconds";

/// Handles on the backup metrics; a cheap clone.
#[derive(Clone)]
pub struct BackupMetrics {
    /// The newest complete backup's own moment (Unix seconds; 0 before
    /// the first).
    pub last_success: Gauge,
    /// How long the newest backup took, in seconds.
    pub duration: Gauge,
    /// Backups that failed since start.
    pub failures: Counter,
    /// `backup_every_secs`, so an alert can compare the age with it.
    pub interval: Gauge,
}

impl Telemetry {
    /// Registers the backup metrics (call once, when backups are on).
    #[must_use]
    pub fn backup_metrics(&self) -> BackupMetrics {
        let recorder = &self.inner.recorder;
        let describe = |name: &'static str, help: &'static str| {
            (KeyName::from_const_str(name), SharedString::const_str(help))
        };
        let gauge = |name: &'static str, help: &'static str| {
            let (key, help) = describe(name, help);
            recorder.describe_gauge(key, None, help);
            recorder.register_gauge(&Key::from_static_name(name), &METADATA)
        };
        let (key, help) = describe(
            FAILURES,
            "Scheduled backups that failed since start (each is retried at the next tick; the cause is logged).",
        );
        recorder.describe_counter(key, None, help);
        BackupMetrics {
            last_success: gauge(
                LAST_SUCCESS,
                "The moment of the newest complete scheduled backup in backup_dir (Unix time, from its name, so it survives restarts); 0 when there is none.",
            ),
            duration: gauge(
                DURATION,
                "Seconds the newest scheduled backup taken by this instance took, export, fsync and rename included.",
            ),
            failures: recorder.register_counter(&Key::from_static_name(FAILURES), &METADATA),
            interval: gauge(
                INTERVAL,
                "Seconds between scheduled backups (backup_every_secs).",
            ),
        }
    }
}
