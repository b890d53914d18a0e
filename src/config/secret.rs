//! The admin token and [`Secret`], the wrapper that keeps it out of logs.

use std::fmt;
use std::path::Path;

use super::ConfigError;

/// The variable that may hold the admin token itself.
pub const ADMIN_TOKEN_ENV: &str = "SHOPD_ADMIN_TOKEN";

/// The admin token: the variable's value, else the file's first line.
/// Either must be at least 16 characters, so a guessable token is refused.
pub fn admin_token(
    from_env: Option<String>,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        key: "admin_token_file",
        message,
    };
    let token = match (from_env, file) {
        (Some(token), _) => token,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))?,
        (None, None) => return Ok(None),
    };
    let token = token.lines().next().unwrap_or_default().trim().to_owned();
    if token.chars().count() < 16 {
        return Err(invalid(
            "the admin token must be at least 16 characters".into(),
        ));
    }
    Ok(Some(Secret(token)))
}

/// A value that must never be shown: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: only for comparing or sending it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
