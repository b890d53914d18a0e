//! The bus's wire format: the envelope around a chat line (format
//! version, sending instance, the line's bytes) and the subject a room's
//! lines travel on; for lines kept in the history stream, the stored
//! envelope (version 2, with the sending member) and the offset header;
//! and the claim (version 3) a resumed member's instance sends on the
//! room's subject, so other instances close its older connection.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use crate::chat::deliver::Line;

/// First byte of every envelope; another value is another format.
const ENVELOPE_VERSION: u8 = 1;
/// Envelope bytes before the line: the version and the instance id.
pub(super) const ENVELOPE_BYTES: usize = 1 + 8;
/// First byte of a stored envelope: version 1's fields, then the member.
const STORED_VERSION: u8 = 2;
/// Stored envelope bytes before the line: version, instance, member.
pub(super) const STORED_BYTES: usize = 1 + 8 + 8;
/// First byte of a claim: a resumed member's name, and when it joined.
/// Instances that know only version 1 drop it as not a line.
const CLAIM_VERSION: u8 = 3;
/// Claim bytes before the name: version, instance, join time.
const CLAIM_BYTES: usize = 1 + 8 + 8;
/// The header that carries a stored line's offset in its room.
pub(super) const OFFSET_HEADER: &str = "Shopd-Offset";

/// Room names longer than this (in bytes) are hashed into their subject.
const SUBJECT_NAME_BYTES: usize = 256;

/// `prefix.HEX`: the room name's UTF-8 bytes in lower-case hex (subjects
/// cannot hold `.`, `*`, `>` or spaces). Names over 256 bytes keep their
/// first 256 bytes and add a 64-bit FNV-1a hash of the whole name, so
/// subjects stay short.
pub(super) fn subject(prefix: &str, room_name: &str) -> String {
    let bytes = room_name.as_bytes();
    let mut out =
        String::with_capacity(prefix.len() + 2 + 2 * bytes.len().min(SUBJECT_NAME_BYTES) + 17);
    out.push_str(prefix);
    out.push('.');
    for byte in &bytes[..bytes.len().min(SUBJECT_NAME_BYTES)] {
        let _ = write!(out, "{byte:02x}");
    }
    if bytes.is_empty() {
        out.push('_');
    }
    if bytes.len() > SUBJECT_NAME_BYTES {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let _ = write!(out, "-{hash:016x}");
    }
    out
}

/// The envelope of `line` from `instance`.
pub(super) fn seal(instance: u64, line: &Line) -> Bytes {
    let mut envelope = BytesMut::with_capacity(ENVELOPE_BYTES + line.bytes().len());
    envelope.put_u8(ENVELOPE_VERSION);
    envelope.put_u64(instance);
    envelope.put_slice(line.bytes());
    envelope.freeze()
}

/// The line in `envelope`, unless it is this instance's own (`instance`)
/// or not a valid envelope.
pub(super) fn open(envelope: &Bytes, instance: u64) -> Option<Line> {
    if envelope.len() < ENVELOPE_BYTES || envelope[0] != ENVELOPE_VERSION {
        return None;
    }
    let sender = u64::from_be_bytes(envelope[1..ENVELOPE_BYTES].try_into().ok()?);
    if sender == instance {
        return None;
    }
    Line::from_utf8(envelope.slice(ENVELOPE_BYTES..))
}

/// The stored envelope of `line`, said by `member` of `instance`.
pub(super) fn seal_stored(instance: u64, member: u64, line: &Line) -> Bytes {
    let mut envelope = BytesMut::with_capacity(STORED_BYTES + line.bytes().len());
    envelope.put_u8(STORED_VERSION);
    envelope.put_u64(instance);
    envelope.put_u64(member);
    envelope.put_slice(line.bytes());
    envelope.freeze()
}

/// The line in a stored envelope, numbered `offset`; its sender is set
/// when it was said by a member of `instance` (this one).
pub(super) fn open_stored(envelope: &Bytes, offset: u64, instance: u64) -> Option<Line> {
    if envelope.len() < STORED_BYTES || envelope[0] != STORED_VERSION {
        return None;
    }
    let from = u64::from_be_bytes(envelope[1..9].try_into().ok()?);
    let member = u64::from_be_bytes(envelope[9..STORED_BYTES].try_into().ok()?);
    // A copy: a slice would keep the whole buffer the message was read
    // into alive for as long as the history keeps the line.
    let line = Line::from_utf8(Bytes::copy_from_slice(&envelope[STORED_BYTES..]))?;
    Some(line.numbered(offset, (from == instance).then_some(member)))
}

/// A member connected under `name` at `joined` (nanoseconds since the
/// Unix epoch) on instance `instance`: every older connection of that
/// name in the room is to be closed. Older means an earlier `joined`,
/// then a lower instance id, so every instance ranks two claims alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The member's name.
    pub(crate) name: String,
    /// When its connection joined the room.
    pub(crate) joined: u64,
    /// The instance that holds it.
    pub(crate) instance: u64,
}

impl Claim {
    /// Whether a member that joined at `joined` on `instance` is older
    /// than this claim's (and so loses to it).
    pub(crate) fn outranks(&self, joined: u64, instance: u64) -> bool {
        (joined, instance) < (self.joined, self.instance)
    }
}

/// The claim of member `name` that joined at `joined` on `instance`.
pub(super) fn seal_claim(instance: u64, joined: u64, name: &str) -> Bytes {
    let mut envelope = BytesMut::with_capacity(CLAIM_BYTES + name.len());
    envelope.put_u8(CLAIM_VERSION);
    envelope.put_u64(instance);
    envelope.put_u64(joined);
    envelope.put_slice(name.as_bytes());
    envelope.freeze()
}

/// The claim in `envelope`, unless it is this instance's own or not a
/// valid claim.
pub(super) fn open_claim(envelope: &Bytes, instance: u64) -> Option<Claim> {
    if envelope.len() <= CLAIM_BYTES || envelope[0] != CLAIM_VERSION {
        return None;
    }
    let sender = u64::from_be_bytes(envelope[1..9].try_into().ok()?);
    if sender == instance {
        return None;
    }
    let joined = u64::from_be_bytes(envelope[9..CLAIM_BYTES].try_into().ok()?);
    let name = std::str::from_utf8(&envelope[CLAIM_BYTES..]).ok()?;
    Some(Claim {
        name: name.to_owned(),
        joined,
        instance: sender,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_room_name_becomes_one_valid_subject() {
        assert_eq!(subject("shopd.chat", "lobby"), "shopd.chat.6c6f626279");
        let odd = subject("shopd.chat", "a.b *> c");
        assert_eq!(odd, "shopd.chat.612e62202a3e2063");
        assert_ne!(subject("p", "café"), subject("p", "cafe"));
        let long_a = "x".repeat(300);
        let long_b = format!("{}y", "x".repeat(299));
        assert_ne!(subject("p", &long_a), subject("p", &long_b));
        assert!(subject("p", &long_a).len() < 600);
        for name in ["lobby", "a.b *> c", &long_a, "🐱"] {
            let tail = subject("p", name);
            let tail = tail.strip_prefix("p.").expect("under the prefix");
            assert!(
                tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{tail}"
            );
        }
    }

    #[test]
    fn an_envelope_carries_the_line_and_hides_its_own_instances_lines() {
        let line = Line::new("ann", "hi :: there");
        let envelope = seal(7, &line);
        assert_eq!(open(&envelope, 8), Some(line));
        assert_eq!(open(&envelope, 7), None, "our own line");
        assert_eq!(open(&Bytes::from_static(b"\x02abcdefgh"), 8), None);
        assert_eq!(open(&Bytes::from_static(b"\x01"), 8), None);
    }

    #[test]
    fn a_stored_envelope_names_the_member_only_to_its_own_instance() {
        let line = Line::new("ann", "hi");
        let envelope = seal_stored(7, 3, &line);
        let mine = open_stored(&envelope, 5, 7).expect("opens");
        assert_eq!((mine.offset(), mine.sender()), (5, Some(3)));
        assert_eq!(mine.as_str(), "ann :: hi");
        let theirs = open_stored(&envelope, 5, 8).expect("opens");
        assert_eq!(theirs.sender(), None);
        assert_eq!(open(&envelope, 8), None, "not a live envelope");
        assert_eq!(open_stored(&seal(7, &line), 1, 8), None, "not a stored one");
    }

    #[test]
    fn a_claim_is_no_line_and_ranks_alike_everywhere() {
        let envelope = seal_claim(7, 1_000, "ann-abc123");
        assert_eq!(open(&envelope, 8), None, "older versions drop it");
        assert_eq!(open_stored(&envelope, 1, 8), None);
        let claim = open_claim(&envelope, 8).expect("opens");
        assert_eq!(
            claim,
            Claim {
                name: "ann-abc123".into(),
                joined: 1_000,
                instance: 7
            }
        );
        assert_eq!(open_claim(&envelope, 7), None, "our own claim");
        assert_eq!(open_claim(&seal(7, &Line::new("a", "b")), 8), None);
        assert_eq!(open_claim(&seal_claim(7, 1, ""), 8), None, "no name");
        assert!(claim.outranks(999, 9), "joined earlier");
        assert!(claim.outranks(1_000, 6), "same time, lower instance");
        assert!(!claim.outranks(1_000, 8));
        assert!(!claim.outranks(1_001, 1), "joined later");
    }
}
