//! How one setting's value is read, whichever layer gave it: a flag's or a
//! variable's text, or a value of `config.toml`. Reading is checking: each
//! type here refuses what it cannot hold (zero where at least 1 is needed,
//! an address without a port, an unknown log filter), so the rest of the
//! code never checks a raw number again.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::chat::BusUrls;
use crate::http::client::TrustedProxies;
use crate::http::layers::Origins;
use crate::store::{DatabaseUrl, Durability};

/// A value as one layer gave it.
#[derive(Debug, Clone, Copy)]
pub enum Raw<'a> {
    /// From a flag or an environment variable.
    Text(&'a str),
    /// From `config.toml` (or a built-in default, written as TOML).
    Toml(&'a toml::Value),
}

/// A type a setting can hold. `parse` says why a value is refused, without
/// naming where it came from (the caller adds that).
pub trait Setting: Sized {
    /// The value, checked.
    fn parse(raw: Raw<'_>) -> Result<Self, String>;

    /// The value when no layer sets it and the setting has no default:
    /// `None` for a setting that must have one.
    fn absent() -> Option<Self> {
        None
    }
}

impl<T: Setting> Setting for Option<T> {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        T::parse(raw).map(Some)
    }

    fn absent() -> Option<Self> {
        Some(None)
    }
}

/// A whole number from a flag's text or a TOML integer.
fn integer(raw: Raw<'_>, what: &str) -> Result<u64, String> {
    let refused = |shown: String| format!("expected {what}, got {shown}");
    match raw {
        Raw::Text(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| refused(format!("{text:?}"))),
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).map_err(|_| refused(n.to_string())),
        Raw::Toml(other) => Err(refused(format!("{} {other}", other.type_str()))),
    }
}

/// Text from a flag, a variable or a TOML string.
fn text<'a>(raw: Raw<'a>, what: &str) -> Result<&'a str, String> {
    match raw {
        Raw::Text(text) => Ok(text),
        Raw::Toml(toml::Value::String(text)) => Ok(text),
        // Not echoed: a string setting may be a URL with a password.
        Raw::Toml(other) => Err(format!("expected {what}, got a {}", other.type_str())),
    }
}

/// A whole number from 1 to `max`.
fn counted(raw: Raw<'_>, max: u64) -> Result<u64, String> {
    let what = "a whole number, at least 1";
    match integer(raw, what)? {
        0 => Err(format!("expected {what}, got 0")),
        n if n > max => Err(format!("expected at most {max}, got {n}")),
        n => Ok(n),
    }
}

/// The most a count of things held at once (connections, queued lines) may
/// be: far above any real need, and below what would make a semaphore or a
/// channel refuse to be built.
pub const MAX_COUNT: u64 = u32::MAX as u64;

/// The longest a timeout or a wait may be: a year. Far above any real
/// need, and far from where adding it to the clock would overflow.
pub const MAX_SECS: u64 = 365 * 24 * 3600;

impl Setting for NonZeroU64 {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        counted(raw, u64::MAX).and_then(|n| NonZeroU64::new(n).ok_or_else(String::new))
    }
}

impl Setting for NonZeroU32 {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        let n = counted(raw, u64::from(u32::MAX))?;
        u32::try_from(n)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(String::new)
    }
}

impl Setting for NonZeroUsize {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        let n = counted(raw, MAX_COUNT)?;
        usize::try_from(n)
            .ok()
            .and_then(NonZeroUsize::new)
            .ok_or_else(String::new)
    }
}

impl Setting for usize {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        let what = "a whole number";
        match integer(raw, what)? {
            n if n > MAX_COUNT => Err(format!("expected at most {MAX_COUNT}, got {n}")),
            n => usize::try_from(n).map_err(|_| format!("expected at most {MAX_COUNT}, got {n}")),
        }
    }
}

/// A count from 1 to `MAX`, for what is allocated up front (a pool's slots).
pub struct UpTo<const MAX: u64>(NonZeroUsize);

impl<const MAX: u64> Setting for UpTo<MAX> {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        let n = counted(raw, MAX.min(MAX_COUNT))?;
        usize::try_from(n)
            .ok()
            .and_then(NonZeroUsize::new)
            .map(UpTo)
            .ok_or_else(String::new)
    }
}

impl<const MAX: u64> From<UpTo<MAX>> for NonZeroUsize {
    fn from(n: UpTo<MAX>) -> NonZeroUsize {
        n.0
    }
}

/// Whole seconds from 1 to a year: a timeout. Held as a [`Duration`].
pub struct Secs(Duration);

impl Setting for Secs {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        counted(raw, MAX_SECS).map(|n| Secs(Duration::from_secs(n)))
    }
}

impl From<Secs> for Duration {
    fn from(secs: Secs) -> Duration {
        secs.0
    }
}

/// Whole seconds from 0 to a year: a wait that may be skipped. Held as a
/// [`Duration`].
pub struct SecsOrZero(Duration);

impl Setting for SecsOrZero {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        let what = "a whole number of seconds";
        match integer(raw, what)? {
            n if n > MAX_SECS => Err(format!("expected {what}, at most {MAX_SECS}, got {n}")),
            n => Ok(SecsOrZero(Duration::from_secs(n))),
        }
    }
}

impl From<SecsOrZero> for Duration {
    fn from(secs: SecsOrZero) -> Duration {
        secs.0
    }
}

/// Whole milliseconds from 1 to a year. Held as a [`Duration`].
pub struct Millis(Duration);

impl Setting for Millis {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        counted(raw, MAX_SECS * 1000).map(|n| Millis(Duration::from_millis(n)))
    }
}

impl From<Millis> for Duration {
    fn from(millis: Millis) -> Duration {
        millis.0
    }
}

impl Setting for bool {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        match raw {
            Raw::Toml(toml::Value::Boolean(value)) => Ok(*value),
            Raw::Text(text) => match text.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!("expected true or false, got {other:?}")),
            },
            Raw::Toml(other) => Err(format!(
                "expected true or false, got {} {other}",
                other.type_str()
            )),
        }
    }
}

impl Setting for PathBuf {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        match text(raw, "a path")? {
            "" => Err("expected a path, got an empty one".into()),
            path => Ok(PathBuf::from(path)),
        }
    }
}

impl Setting for std::net::SocketAddr {
    fn parse(raw: Raw<'_>) -> Result<Self, String> {
        let given = text(raw, "ADDR:PORT")?;
        given.trim().parse().map_err(|_| {
            format!("expected an IP address and a port (127.0.0.1:8000, [::1]:8000), got {given:?}")
        })
    }
}

/// Types whose own `FromStr` says what is wrong (and never echoes a secret).
macro_rules! from_str {
    ($($ty:ty: $what:literal),*) => {$(
        impl Setting for $ty {
            fn parse(raw: Raw<'_>) -> Result<Self, String> {
                <$ty>::from_str(text(raw, $what)?.trim())
            }
        }
    )*};
}
from_str!(
    Durability: "\"sync\" or \"periodic\"",
    DatabaseUrl: "a postgres:// URL",
    BusUrls: "nats:// URLs",
    SubjectPrefix: "a NATS subject prefix",
    LogFilter: "a log filter"
);

/// Lists: comma-separated text from a flag or a variable, or in
/// `config.toml` an array of strings (or one such string).
macro_rules! list {
    ($($ty:ty: $what:literal),*) => {$(
        impl Setting for $ty {
            fn parse(raw: Raw<'_>) -> Result<Self, String> {
                match raw {
                    Raw::Toml(toml::Value::Array(items)) => {
                        let mut joined = Vec::with_capacity(items.len());
                        for item in items {
                            match item {
                                toml::Value::String(text) => joined.push(text.as_str()),
                                other => {
                                    return Err(format!(
                                        "expected {}, got a {} in the list",
                                        $what,
                                        other.type_str()
                                    ));
                                }
                            }
                        }
                        <$ty>::from_str(&joined.join(","))
                    }
                    raw => <$ty>::from_str(text(raw, $what)?.trim()),
                }
            }
        }
    )*};
}
list!(
    TrustedProxies: "addresses or ADDR/BITS networks",
    Origins: "origins (scheme://host[:port]) or *"
);

/// The prefix of the chat rooms' NATS subjects: dot-separated tokens,
/// none empty, without spaces, `*` or `>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPrefix(String);

impl SubjectPrefix {
    /// The prefix, e.g. `shopd.chat`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SubjectPrefix {
    type Err = String;

    fn from_str(prefix: &str) -> Result<Self, Self::Err> {
        let bad_token = |token: &str| {
            token.is_empty() || token.contains(|c: char| c.is_whitespace() || c == '*' || c == '>')
        };
        if prefix.split('.').any(bad_token) {
            return Err(format!(
                "expected NATS subject tokens separated by dots, without spaces, `*` or `>`, got {prefix:?}"
            ));
        }
        Ok(SubjectPrefix(prefix.to_owned()))
    }
}

/// A log filter in tracing's `EnvFilter` syntax (`info`, `shopd=debug`),
/// checked when read so that a typo stops start-up instead of logging at
/// some other level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl LogFilter {
    /// The filter as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogFilter {
    type Err = String;

    fn from_str(filter: &str) -> Result<Self, Self::Err> {
        tracing_subscriber::EnvFilter::try_new(filter)
            .map(|_| LogFilter(filter.to_owned()))
            .map_err(|err| format!("expected a log filter such as info or shopd=debug: {err}"))
    }
}

#[cfg(test)]
mod tests;
