//! The backup directory. A backup is `shopd-backup-YYYYMMDDTHHMMSS.mmmZ.ndjson`,
//! named after its own moment in UTC (so names sort by time, and the time
//! survives a restart). It is written as `.shopd-backup-….ndjson.tmp`,
//! fsynced, renamed, and the directory fsynced: a backup under its final
//! name is complete. Pruning counts and removes only files whose whole
//! name has that shape; anything else in the directory is left alone.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "shopd-backup-";
const SUFFIX: &str = ".ndjson";

/// A backup's file name for `time`.
#[must_use]
pub fn name_at(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    format!(
        "{PREFIX}{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z{SUFFIX}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The moment a backup's file name gives; `None` for any other name.
#[must_use]
pub fn time_of(name: &str) -> Option<SystemTime> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let b = stamp.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = stamp.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    let millis = digits(16..19)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
    // Only the canonical spelling counts (no 31 February).
    (name_at(time) == name).then_some(time)
}

/// Every backup in `dir` with its moment, newest first.
pub fn list(dir: &Path) -> io::Result<Vec<(SystemTime, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(time) = name.to_str().and_then(time_of) else {
            continue;
        };
        if entry.file_type()?.is_file() {
            found.push((time, entry.path()));
        }
    }
    found.sort_by_key(|&(time, _)| std::cmp::Reverse(time));
    Ok(found)
}

/// The newest backup's moment in `dir`; `None` when it holds none (or
/// does not exist yet).
pub fn newest(dir: &Path) -> io::Result<Option<SystemTime>> {
    match list(dir) {
        Ok(found) => Ok(found.first().map(|(time, _)| *time)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Removes the oldest backups beyond the `keep` newest; returns them.
pub fn prune(dir: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for (_, path) in list(dir)?.into_iter().skip(keep) {
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// A backup being written: its temporary file, removed when this is
/// dropped before [`Pending::complete`] (a failed or stopped backup
/// leaves nothing behind).
pub struct Pending {
    temp: PathBuf,
    done: bool,
}

impl Pending {
    /// Creates `dir` if missing, and the temporary file of the backup
    /// named `name` in it.
    pub fn create(dir: &Path, name: &str) -> io::Result<(Pending, File)> {
        std::fs::create_dir_all(dir)?;
        let temp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&temp)?;
        Ok((Pending { temp, done: false }, file))
    }

    /// Makes the written `file` the backup `name`: fsync, rename, fsync
    /// of the directory (so the new name survives a power loss).
    pub fn complete(mut self, file: &File, name: &str) -> io::Result<PathBuf> {
        file.sync_all()?;
        let dir = self.temp.parent().unwrap_or(Path::new("."));
        let path = dir.join(name);
        std::fs::rename(&self.temp, &path)?;
        self.done = true;
        File::open(dir)?.sync_all()?;
        Ok(path)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`] (Howard Hinnant's algorithm): the
/// UTC year, month and day of a count of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_utc_moment_and_read_back() {
        // 2026-11-30T08:37:00.123Z
        let time = UNIX_EPOCH + Duration::from_millis(1_796_027_820_123);
        let name = name_at(time);
        assert_eq!(name, "shopd-backup-20261130T083700.123Z.ndjson");
        assert_eq!(time_of(&name), Some(time));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(time_of(&name_at(leap)), Some(leap));
    }

    #[test]
    fn other_names_are_not_backups() {
        for name in [
            "shopd-backup-20261130T083700.123Z.ndjson.tmp",
            ".shopd-backup-20261130T083700.123Z.ndjson.tmp",
            "shopd-backup-20260231T083700.123Z.ndjson",
            "shopd-backup-20261130T083700Z.ndjson",
            "shopd-backup-2026113xT083700.123Z.ndjson",
            "shopd-backup-+0261130T083700.123Z.ndjson",
            "notes.txt",
        ] {
            assert_eq!(time_of(name), None, "{name}");
        }
    }

    #[test]
    fn pruning_keeps_the_newest_and_touches_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let base = UNIX_EPOCH + Duration::from_secs(1_796_027_820);
        for n in 0..4 {
            let name = name_at(base + Duration::from_secs(n * 3600));
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::write(dir.path().join("shopd-backup-notes.ndjson"), "mine").unwrap();
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(removed.len(), 2);
        let left = list(dir.path()).unwrap();
        assert_eq!(left.len(), 2);
        assert_eq!(left[0].0, base + Duration::from_secs(3 * 3600));
        assert!(dir.path().join("shopd-backup-notes.ndjson").exists());
        assert_eq!(newest(dir.path()).unwrap(), Some(left[0].0));
        assert_eq!(newest(&dir.path().join("missing")).unwrap(), None);
    }
}
