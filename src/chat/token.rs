//! Resume tokens: `NAME.EXPIRES.MAC`, where MAC is HMAC-SHA256 over the
//! room, the name and the expiry (seconds since the Unix epoch) under a
//! secret every instance shares, in unpadded base64url. A token names its
//! room only through the MAC, so one issued for another room, forged or
//! altered does not verify. Tokens are never logged; their `Debug` hides
//! the secret.

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a secret shopd makes itself.
const SECRET_BYTES: usize = 32;
/// Shortest secret accepted from a file.
const MIN_SECRET_BYTES: usize = 16;

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a token of this room under this secret.
    Invalid,
    /// Was one, and has expired.
    Expired,
}

/// Issues and checks resume tokens.
#[derive(Clone)]
pub struct Tokens {
    /// The HMAC key as HMAC itself derives it from the secret (padded to
    /// SHA-256's block; hashed first when longer), so keying never fails.
    key: [u8; 64],
    ttl: Duration,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for Tokens {
    /// A random secret (tokens verify on this process only), a day's life.
    fn default() -> Self {
        Tokens::new(&random_secret(), Duration::from_secs(86_400))
    }
}

/// Why no secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file cannot be read or written.
    #[error("chat token secret file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The database would not give or keep one.
    #[error("chat token secret in the database: {0}")]
    Database(String),
    /// The file holds too little.
    #[error("setting chat_token_secret_file: {path} holds fewer than {MIN_SECRET_BYTES} bytes")]
    Short { path: String },
}

/// A fresh random secret.
#[must_use]
pub fn random_secret() -> Vec<u8> {
    let mut rng = rand::rng();
    (0..SECRET_BYTES).map(|_| rng.random()).collect()
}

/// The secret in `path` (surrounding whitespace ignored).
pub fn read_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SecretError::File {
        path: shown.clone(),
        source,
    })?;
    let trimmed = bytes.trim_ascii().to_vec();
    if trimmed.len() < MIN_SECRET_BYTES {
        return Err(SecretError::Short { path: shown });
    }
    Ok(trimmed)
}

/// The secret kept at `path`, made (owner-only, fsynced) when missing.
pub fn kept_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    if path.exists() {
        return read_secret(path);
    }
    let shown = path.display().to_string();
    let file_error = |source| SecretError::File {
        path: shown.clone(),
        source,
    };
    let secret = URL_SAFE_NO_PAD.encode(random_secret());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(file_error)?;
    }
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(file_error)?;
        file.write_all(secret.as_bytes()).map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
    }
    std::fs::rename(&temporary, path).map_err(file_error)?;
    Ok(secret.into_bytes())
}

/// The secret every instance on one PostgreSQL database shares: made by
/// the first to ask, in table `shopd_chat_secret`. Each statement and the
/// connection take at most `timeout`; instances starting at once race to
/// create the table, so a failed attempt is retried a few times.
pub async fn database_secret(url: &str, timeout: Duration) -> Result<Vec<u8>, SecretError> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match database_secret_once(url, timeout).await {
            Ok(secret) => return Ok(secret),
            Err(err) if attempt >= ATTEMPTS => return Err(err),
            Err(err) => {
                tracing::debug!(error = %err, attempt, "chat token secret: retrying");
                tokio::time::sleep(Duration::from_millis(50) * attempt).await;
                attempt += 1;
            }
        }
    }
}

async fn database_secret_once(url: &str, timeout: Duration) -> Result<Vec<u8>, SecretError> {
    // The error's text never holds the URL (nor its password).
    let failed = |err: tokio_postgres::Error| SecretError::Database(err.to_string());
    let mut config: tokio_postgres::Config = url.parse().map_err(failed)?;
    config
        .connect_timeout(timeout)
        .application_name("shopd")
        // Quiet: every instance after the first would log the NOTICE that
        // the table "already exists, skipping" at info.
        .options(format!(
            "-c statement_timeout={} -c client_min_messages=warning",
            timeout.as_millis()
        ));
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(failed)?;
    let connection = tokio::spawn(connection);
    let secret = URL_SAFE_NO_PAD.encode(random_secret());
    let result = async {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS shopd_chat_secret (
                     id int PRIMARY KEY CHECK (id = 1),
                     secret text NOT NULL
                 )",
            )
            .await?;
        client
            .execute(
                "INSERT INTO shopd_chat_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&secret],
            )
            .await?;
        let row = client
            .query_one("SELECT secret FROM shopd_chat_secret WHERE id = 1", &[])
            .await?;
        Ok::<String, tokio_postgres::Error>(row.get(0))
    }
    .await;
    drop(client);
    let _ = connection.await;
    Ok(result.map_err(failed)?.into_bytes())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Tokens {
    /// Tokens signed with `secret` that live for `ttl`.
    #[must_use]
    pub fn new(secret: &[u8], ttl: Duration) -> Tokens {
        use sha2::Digest;
        let mut key = [0; 64];
        if secret.len() <= key.len() {
            key[..secret.len()].copy_from_slice(secret);
        } else {
            key[..32].copy_from_slice(&Sha256::digest(secret));
        }
        Tokens { key, ttl }
    }

    fn mac(&self, room: &str, name: &str, expires: u64) -> HmacSha256 {
        let key: hmac::digest::Key<HmacSha256> = self.key.into();
        let mut mac = <HmacSha256 as KeyInit>::new(&key);
        for part in [room.as_bytes(), b"\0", name.as_bytes(), b"\0"] {
            mac.update(part);
        }
        mac.update(&expires.to_be_bytes());
        mac
    }

    /// A token that lets `name` resume in `room`.
    pub(crate) fn issue(&self, room: &str, name: &str) -> String {
        let expires = now().saturating_add(self.ttl.as_secs());
        let tag = self.mac(room, name, expires).finalize().into_bytes();
        format!("{name}.{expires}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The name `token` lets its holder take in `room`.
    pub(crate) fn check(&self, room: &str, token: &str) -> Result<String, Refusal> {
        let mut parts = token.rsplitn(3, '.');
        let (Some(tag), Some(expires), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Invalid);
        };
        let expires: u64 = expires.parse().map_err(|_| Refusal::Invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refusal::Invalid)?;
        self.mac(room, name, expires)
            .verify_slice(&tag)
            .map_err(|_| Refusal::Invalid)?;
        if expires < now() {
            return Err(Refusal::Expired);
        }
        Ok(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_member_in_its_room_only() {
        let tokens = Tokens::default();
        let token = tokens.issue("lobby", "brave-otter-4821");
        assert_eq!(tokens.check("lobby", &token), Ok("brave-otter-4821".into()));
        assert_eq!(tokens.check("other", &token), Err(Refusal::Invalid));
        let forged = token.replacen("brave", "sly", 1);
        assert_eq!(tokens.check("lobby", &forged), Err(Refusal::Invalid));
        let other_secret = Tokens::default();
        assert_eq!(other_secret.check("lobby", &token), Err(Refusal::Invalid));
        for junk in ["", "a", "a.b", "a.1.", "a.x.AAAA", "..."] {
            assert_eq!(
                tokens.check("lobby", junk),
                Err(Refusal::Invalid),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn the_key_is_hmacs_own_for_short_and_long_secrets() {
        for secret in [b"short secret".to_vec(), vec![7; 200]] {
            let tokens = Tokens::new(&secret, Duration::ZERO);
            let mut reference =
                <HmacSha256 as KeyInit>::new_from_slice(&secret).expect("any length");
            reference.update(b"x");
            let mut ours = <HmacSha256 as KeyInit>::new(&tokens.key.into());
            ours.update(b"x");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes()
            );
        }
    }

    #[test]
    fn tokens_expire() {
        let tokens = Tokens::new(&random_secret(), Duration::ZERO);
        let expires = now() - 10;
        let tag = tokens.mac("lobby", "ann", expires).finalize().into_bytes();
        let old = format!("ann.{expires}.{}", URL_SAFE_NO_PAD.encode(tag));
        assert_eq!(tokens.check("lobby", &old), Err(Refusal::Expired));
    }

    #[test]
    fn a_kept_secret_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chat").join("token-secret");
        let first = kept_secret(&path).expect("made");
        assert_eq!(kept_secret(&path).expect("read"), first);
        assert!(format!("{:?}", Tokens::new(&first, Duration::ZERO)).contains("ttl"));
    }
}
