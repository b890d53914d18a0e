//! The standard `process_*` figures, read from `/proc` (Linux only;
//! elsewhere they are left out).

use std::fmt::Write as _;
use std::sync::OnceLock;

/// Clock ticks per second of `/proc/*/stat`: the kernel's `USER_HZ`,
/// 100 on every architecture Linux runs shopd on (Prometheus' own
/// procfs library makes the same assumption).
const USER_HZ: f64 = 100.0;

/// One reading of this process.
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// Reads `/proc/self`; `None` where there is no procfs.
pub fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces and parens.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let resident_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) as f64 / USER_HZ,
        resident_bytes: resident_kib * 1024,
        virtual_bytes: field(23)?,
        start_time_seconds: boot_time()? + field(22)? as f64 / USER_HZ,
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64),
        max_fds: max_open_files(),
    })
}

/// Seconds since the epoch at boot; it does not change, so read once.
fn boot_time() -> Option<f64> {
    static BOOT: OnceLock<Option<f64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    })
}

/// The soft limit on open files (`None` when unlimited).
fn max_open_files() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Writes the standard process metrics, with Prometheus clients' HELP texts.
pub(super) fn render(out: &mut String, p: &Sample) {
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        &p.cpu_seconds,
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        &p.resident_bytes,
    );
    family(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        &p.virtual_bytes,
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        &p.start_time_seconds,
    );
    if let Some(open) = p.open_fds {
        family(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &open,
        );
    }
    if let Some(max) = p.max_fds {
        family(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            &max,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_from_proc() {
        if cfg!(target_os = "linux") {
            let sample = sample().expect("procfs");
            assert!(sample.resident_bytes > 0 && sample.virtual_bytes >= sample.resident_bytes);
            assert!(sample.start_time_seconds > 1.0e9);
            assert!(sample.open_fds.is_some_and(|n| n >= 3));
        }
    }
}
