//! The layers a value may come from, highest first: a flag, a `SHOPD_*`
//! variable, `config.toml`, the built-in default; and where each value
//! came from, so that a refusal names it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::value::{Raw, Setting};
use super::{ConfigError, Key, ServeArgs};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Its built-in default.
    Default,
    /// A key of this config file.
    File(PathBuf),
    /// Its `SHOPD_*` variable.
    Env,
    /// Its flag.
    Flag,
}

/// One setting's value's place, as a message names it: `--max-body-bytes`,
/// `SHOPD_MAX_BODY_BYTES`, or `max_body_bytes in FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The key.
    pub key: &'static str,
    /// Its variable.
    pub env: &'static str,
    /// The layer that set it.
    pub source: Source,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Flag => write!(f, "--{}", self.key.replace('_', "-")),
            Source::Env => f.write_str(self.env),
            Source::File(path) => write!(f, "{} in {}", self.key, path.display()),
            Source::Default => write!(f, "{} (built-in default)", self.key),
        }
    }
}

/// Where each key's value came from.
#[derive(Debug, Default)]
pub struct Sources(HashMap<&'static str, Origin>);

impl Sources {
    /// The place of `key`'s value, as a message names it.
    pub fn of(&self, key: &str) -> String {
        self.0
            .get(key)
            .map_or_else(|| key.to_owned(), ToString::to_string)
    }

    /// Whether a layer above the defaults set `key`.
    pub fn is_set(&self, key: &str) -> bool {
        self.0
            .get(key)
            .is_some_and(|origin| origin.source != Source::Default)
    }
}

/// The layers above the defaults.
pub struct Layers<'a> {
    flags: Option<&'a ServeArgs>,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<(PathBuf, toml::Table)>,
}

/// A value found in one layer.
enum Found<'a> {
    Text(String),
    Toml(&'a toml::Value),
}

impl<'a> Layers<'a> {
    /// No layer: every key at its default.
    pub fn none() -> Layers<'static> {
        Layers {
            flags: None,
            env: &|_| None,
            file: None,
        }
    }

    /// `flags` over the variables `env` reads over `file`.
    pub fn new(
        flags: &'a ServeArgs,
        env: &'a dyn Fn(&str) -> Option<String>,
        file: Option<(PathBuf, toml::Table)>,
    ) -> Layers<'a> {
        Layers {
            flags: Some(flags),
            env,
            file,
        }
    }

    /// The highest layer's value of `key`, and that layer.
    fn find(&self, key: &Key) -> Option<(Found<'_>, Source)> {
        if let Some(text) = self.flags.and_then(|flags| flags.flag(key.name)) {
            return Some((Found::Text(text.to_owned()), Source::Flag));
        }
        if let Some(text) = (self.env)(key.env) {
            return Some((Found::Text(text), Source::Env));
        }
        let (path, table) = self.file.as_ref()?;
        let value = table.get(key.name)?;
        Some((Found::Toml(value), Source::File(path.clone())))
    }

    /// `key`'s value read by `P` (its type, or a parser such as `Secs`),
    /// from the highest layer that sets it, else from its default.
    pub fn read<P: Setting, T: From<P>>(
        &self,
        key: &'static Key,
        sources: &mut Sources,
    ) -> Result<T, ConfigError> {
        let origin = |source| Origin {
            key: key.name,
            env: key.env,
            source,
        };
        let (parsed, source) = match self.find(key) {
            Some((Found::Text(text), source)) => (P::parse(Raw::Text(&text)), source),
            Some((Found::Toml(value), source)) => (P::parse(Raw::Toml(value)), source),
            None => (default_of::<P>(key), Source::Default),
        };
        let value = parsed.map_err(|message| ConfigError::Invalid {
            at: origin(source.clone()).to_string(),
            message,
        })?;
        sources.0.insert(key.name, origin(source));
        Ok(T::from(value))
    }
}

/// `key`'s built-in default, read like any TOML value.
fn default_of<P: Setting>(key: &Key) -> Result<P, String> {
    if key.default == "none" {
        return P::absent().ok_or_else(|| "has no default".to_owned());
    }
    let value = toml_value(key.default).map_err(|err| format!("bad default: {err}"))?;
    P::parse(Raw::Toml(&value))
}

/// A bare TOML value (`5`, `"text"`, `true`).
pub fn toml_value(text: &str) -> Result<toml::Value, String> {
    let mut table: toml::Table = format!("v = {text}")
        .parse()
        .map_err(|err| format!("{err}"))?;
    table.remove("v").ok_or_else(|| "no value".to_owned())
}

/// Reads `path` as a table of settings; refuses keys that are not settings.
pub fn read_file(path: &Path, keys: &[Key]) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: err.to_string().trim_end().to_owned(),
        })?;
    if let Some(unknown) = table
        .keys()
        .find(|name| !keys.iter().any(|key| key.name == name.as_str()))
    {
        return Err(ConfigError::Parse {
            path: path.to_path_buf(),
            message: format!("unknown key `{unknown}`"),
        });
    }
    Ok(table)
}
