//! The admin token and [`Secret`], the wrapper that keeps it out of logs.

use std::fmt;
use std::path::Path;

use super::ConfigError;

/// The variable that may hold the admin token itself.
pub const ADMIN_TOKEN_ENV: &str = "SHOPD_ADMIN_TOKEN";

/// The admin token: the variable's value, else the file's first line.
/// Either must be at least 16 characters, so a guessable token is refused.
/// Errors name the variable or the file the token came from.
pub fn admin_token(
    from_env: Option<String>,
    file: Option<&Path>,
) -> Result<Option<Secret>, ConfigError> {
    match (from_env, file) {
        (Some(token), _) => token_of(&token)
            .map(Some)
            .map_err(|message| ConfigError::Invalid {
                at: ADMIN_TOKEN_ENV.into(),
                message,
            }),
        (None, Some(path)) => token_in(path)
            .map(Some)
            .map_err(|message| ConfigError::Invalid {
                at: format!("admin token file {}", path.display()),
                message,
            }),
        (None, None) => Ok(None),
    }
}

/// The token in the file at `path`: its first line.
pub(super) fn token_in(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    token_of(&text)
}

/// The first line of `text`, trimmed, if it is long enough for a token.
pub(super) fn token_of(text: &str) -> Result<Secret, String> {
    let token = text.lines().next().unwrap_or_default().trim();
    if token.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "the admin token must be at least {MIN_TOKEN_CHARS} characters"
        ));
    }
    Ok(Secret(token.to_owned()))
}

/// The shortest admin token accepted.
const MIN_TOKEN_CHARS: usize = 16;

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
