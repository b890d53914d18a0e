//! How records are laid out in sled: big-endian ids as keys (so sled's key
//! order is id order) and values as one format version byte followed by the
//! record in bincode's standard configuration.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::domain::Id;

/// The format of values written by this version. A later format gets a new
/// byte, and [`decode`] learns to read (and migrate) the old one.
const FORMAT_V1: u8 = 1;

/// An item as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub name: String,
    pub price: f64,
    pub deleted: bool,
}

/// A cart as stored: its lines, in the order the items were first added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CartRecord {
    pub lines: Vec<LineRecord>,
}

/// One line of a stored cart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineRecord {
    pub item: Id,
    pub quantity: u64,
}

/// A stored value that this version cannot read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored value has unknown format version {0}")]
    UnknownVersion(u8),
    #[error("stored value is empty")]
    Empty,
    #[error("stored value is corrupt: {0}")]
    Corrupt(#[from] bincode::error::DecodeError),
    #[error("value cannot be encoded: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("stored key is not an id")]
    BadKey,
}

/// The key of an id.
pub fn key(id: Id) -> [u8; 8] {
    id.to_be_bytes()
}

/// The id of a key.
pub fn id_of(key: &[u8]) -> Result<Id, CodecError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| CodecError::BadKey)?;
    Ok(Id::from_be_bytes(bytes))
}

/// Encodes a record with the current format version in front.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(record, &mut out, bincode::config::standard())?;
    Ok(out)
}

/// Decodes a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => {
            let (record, _) = bincode::serde::decode_from_slice(rest, bincode::config::standard())?;
            Ok(record)
        }
        Some((&version, _)) => Err(CodecError::UnknownVersion(version)),
        None => Err(CodecError::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_a_version_byte() {
        let item = ItemRecord {
            name: "чай ☕".into(),
            price: 0.1 + 0.2,
            deleted: true,
        };
        let bytes = encode(&item).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<ItemRecord>(&bytes).unwrap(), item);
    }

    #[test]
    fn unknown_versions_are_refused() {
        assert!(matches!(
            decode::<ItemRecord>(&[9, 0]),
            Err(CodecError::UnknownVersion(9))
        ));
        assert!(matches!(decode::<ItemRecord>(&[]), Err(CodecError::Empty)));
    }

    #[test]
    fn keys_sort_by_id() {
        assert!(key(2) < key(256));
        assert_eq!(id_of(&key(77)).unwrap(), 77);
    }
}
