//! The chat's limits, read from the Chat group of the settings.

use std::time::Duration;

use super::history::HistoryLimits;
use super::token::{SecretError, Tokens, read_secret};

/// The limits of chat connections.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Texts over this many bytes close with 1009.
    pub max_message_bytes: usize,
    /// Lines queued for one member.
    pub queue_len: usize,
    /// Connections beyond this many are closed with 1013.
    pub max_connections: usize,
    /// A member whose queue is full and that has taken nothing from it for
    /// this long is closed with 1008.
    pub stall_timeout: Duration,
    /// Lines a second one member may send, on average.
    pub rate_per_sec: u32,
    /// Lines one member may send at once, beyond the average.
    pub rate_burst: u32,
    /// What each room keeps of its lines.
    pub history: HistoryLimits,
    /// Signs and checks resume tokens.
    pub tokens: Tokens,
}

impl ChatOptions {
    /// The chat settings of `settings`, tokens signed with `secret`.
    #[must_use]
    pub fn from_settings(settings: &crate::config::Settings, secret: &[u8]) -> ChatOptions {
        let chat = &settings.chat;
        ChatOptions {
            max_message_bytes: chat.max_message_bytes.get(),
            queue_len: chat.queue_len.get(),
            max_connections: chat.max_connections.get(),
            stall_timeout: chat.stall_timeout,
            rate_per_sec: chat.rate_per_sec.get(),
            rate_burst: chat.rate_burst.get(),
            history: HistoryLimits {
                lines: chat.history_lines,
                room_bytes: chat.history_room_bytes.get(),
                rooms: chat.history_rooms.get(),
            },
            tokens: Tokens::new(secret, chat.token_ttl),
        }
    }
}

/// The secret of `chat_token_secret_file`, when it is set.
pub fn configured_secret(
    settings: &crate::config::Settings,
) -> Result<Option<Vec<u8>>, SecretError> {
    settings
        .chat
        .token_secret_file
        .as_deref()
        .map(read_secret)
        .transpose()
}

impl Default for ChatOptions {
    /// 64 KiB messages, 1024 queued lines, 10,000 connections, 10 s to
    /// stall, 100 lines a second with bursts of 200.
    fn default() -> Self {
        ChatOptions {
            max_message_bytes: 64 * 1024,
            queue_len: 1024,
            max_connections: 10_000,
            stall_timeout: Duration::from_secs(10),
            rate_per_sec: 100,
            rate_burst: 200,
            history: HistoryLimits::default(),
            tokens: Tokens::default(),
        }
    }
}
