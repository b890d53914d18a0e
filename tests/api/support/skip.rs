//! The one way a test skips: when something it needs is missing here, it
//! says so loudly (straight to stderr: the test harness hides what passing
//! tests print) and returns; when `CI` is set it fails instead, so CI never
//! passes by skipping.

use std::io::Write;
use std::path::PathBuf;

/// Skips `test`, which cannot run because of `why`; `remedy` says how to
/// make it run. Always `None`; panics when `CI` is set.
pub fn skip<T>(test: &str, why: &str, remedy: &str) -> Option<T> {
    let why = why.trim_end().trim_end_matches('.');
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run and CI is set: {why}. {remedy}"
    );
    let bar = "!".repeat(72);
    let notice = format!(
        "\n{bar}\nSKIPPED {test}: {why}.\n{remedy}; with CI set it fails instead.\n{bar}\n"
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
    None
}

/// An external tool `test` needs, on the `PATH` or in `/usr/sbin`; missing,
/// the test [`skip`]s.
pub fn require_tool(name: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        // The Debian package that ships it.
        let package = match name {
            "promtool" => "prometheus",
            other => other,
        };
        return skip(
            test,
            &format!("`{name}` is not on PATH"),
            &format!("Install it (apt-get install -y {package}) to run this test"),
        );
    }
    found
}
