//! Entity tags: a named, stable hash of a representation, and the
//! preconditions clients send with them.
//!
//! An ETag is the SHA-256 of the exact JSON body the API answers with, its
//! first 16 bytes in unpadded base64url, quoted. The same representation has
//! the same tag on every instance and every version, and any change to the
//! representation changes it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The strong ETag (quoted) of a JSON body.
#[must_use]
pub fn of_body(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// The strong ETag (quoted) of a value's JSON representation.
#[must_use]
pub fn of<T: Serialize + ?Sized>(value: &T) -> String {
    of_body(&serde_json::to_vec(value).unwrap_or_default())
}

/// The entity tags a conditional header lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `*`: any current representation.
    Any,
    /// The listed tags, as sent (`W/` kept).
    Tags(Vec<String>),
}

impl Condition {
    /// Strong comparison (`If-Match`): a weak tag never matches.
    #[must_use]
    pub fn matches_strongly(&self, current: &str) -> bool {
        match self {
            Condition::Any => true,
            Condition::Tags(tags) => tags
                .iter()
                .any(|tag| !tag.starts_with("W/") && tag == current),
        }
    }

    /// Weak comparison (`If-None-Match`): `W/` ignored on both sides.
    #[must_use]
    pub fn matches_weakly(&self, current: &str) -> bool {
        let current = current.strip_prefix("W/").unwrap_or(current);
        match self {
            Condition::Any => true,
            Condition::Tags(tags) => tags
                .iter()
                .any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_named_and_stable() {
        // SHA-256 of `{}` starts 44136fa355b3678a1146ad16f7e8649e.
        assert_eq!(of_body(b"{}"), "\"RBNvo1WzZ4oRRq0W9-hkng\"");
    }

    #[test]
    fn if_none_match_compares_weakly_if_match_strongly() {
        let tags = Condition::Tags(vec!["W/\"a\"".into(), "\"b\"".into()]);
        assert!(tags.matches_weakly("\"a\""));
        assert!(tags.matches_weakly("\"b\""));
        assert!(!tags.matches_weakly("\"c\""));
        assert!(!tags.matches_strongly("\"a\""));
        assert!(tags.matches_strongly("\"b\""));
        assert!(Condition::Any.matches_strongly("\"z\""));
        assert!(Condition::Any.matches_weakly("\"z\""));
    }
}
