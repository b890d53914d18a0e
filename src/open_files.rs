//! The open-file limit: every connection, chat member and pooled database
//! connection is a file descriptor, and the soft limit many systems start
//! processes with (1,024) is far below what the default settings allow.
//! At start-up shopd raises its soft limit to what its settings need, up to
//! the hard limit, and warns, naming the settings, when the hard limit is
//! lower.

use crate::config::Settings;

/// Descriptors beyond connections: the store's files, the listener, log
/// and metrics files, the bus's socket, spare room for short-lived ones.
const OVERHEAD: u64 = 128;

/// The descriptors `settings` can make shopd hold at once.
#[must_use]
pub fn needed(settings: &Settings) -> u64 {
    let storage = &settings.storage;
    let database = storage
        .database_url
        .as_ref()
        .map_or(0, |_| storage.database_pool_size.get() as u64);
    let connections = settings.server.max_connections.get() + settings.chat.max_connections.get();
    connections as u64 + database + OVERHEAD
}

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// The soft limit already covered the need.
    Enough { limit: u64 },
    /// The soft limit was raised to cover the need.
    To { limit: u64 },
    /// The hard limit is below the need: raised as far as it goes.
    Short { limit: u64, needed: u64 },
}

/// Raises the soft open-file limit to `needed`, up to the hard limit.
pub fn raise(needed: u64) -> std::io::Result<Raised> {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)?;
        if soft >= needed {
            return Ok(Raised::Enough { limit: soft });
        }
        let limit = needed.min(hard);
        rlimit::setrlimit(Resource::NOFILE, limit, hard)?;
        Ok(if limit < needed {
            Raised::Short { limit, needed }
        } else {
            Raised::To { limit }
        })
    }
    #[cfg(not(unix))]
    Ok(Raised::Enough { limit: needed })
}

/// Raises the limit for `settings` and logs the outcome: a warning naming
/// the settings when the hard limit is too low.
pub fn raise_for(settings: &Settings) {
    match raise(needed(settings)) {
        Ok(Raised::Enough { limit }) => tracing::debug!(limit, "open-file limit suffices"),
        Ok(Raised::To { limit }) => tracing::info!(limit, "open-file limit raised"),
        Ok(Raised::Short { limit, needed }) => tracing::warn!(
            limit,
            needed,
            max_connections = settings.server.max_connections.get(),
            chat_max_connections = settings.chat.max_connections.get(),
            "the open-file limit is below what max_connections and chat_max_connections \
             allow: past it, new connections fail; raise the hard limit (LimitNOFILE= in a \
             systemd unit, `ulimit -Hn` as root) or lower those settings"
        ),
        Err(err) => tracing::warn!(error = %err, "cannot read or raise the open-file limit"),
    }
}
