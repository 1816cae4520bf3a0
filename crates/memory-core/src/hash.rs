//! [`ContentHash`]: the identity of a memory.
//!
//! ```
//! use memory_core::ContentHash;
//! // Upstream's rule: SHA-256 over the trimmed, lower-cased content.
//! assert_eq!(
//!     ContentHash::of("  Hello World ").as_str(),
//!     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
//! );
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ValidationError;

/// SHA-256 hex digest of `content.trim().to_lowercase()`.
///
/// This is the rule of the Python MCP Memory Service, so the same text has the same id in
/// both, and it is also the Vectorize vector id (64 bytes, Vectorize's id limit).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

impl ContentHash {
    /// Length of the hex digest.
    pub const LEN: usize = 64;

    /// Hashes content the way upstream does.
    pub fn of(content: &str) -> Self {
        let normalised = content.trim().to_lowercase();
        Self(hex::encode(Sha256::digest(normalised.as_bytes())))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short prefix for display (first 8 hex digits).
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl FromStr for ContentHash {
    type Err = ValidationError;

    /// Parses a digest, accepting upper-case hex and surrounding white space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        if t.len() == Self::LEN && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(t))
        } else {
            Err(ValidationError::InvalidHash {
                value: s.chars().take(80).collect(),
            })
        }
    }
}

impl TryFrom<String> for ContentHash {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ContentHash> for String {
    fn from(h: ContentHash) -> Self {
        h.0
    }
}

impl AsRef<str> for ContentHash {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_matches_upstream_rule_for_padded_mixed_case_text() {
        let expected = hex::encode(Sha256::digest(b"hello world"));
        assert_eq!(ContentHash::of("  Hello World ").as_str(), expected);
    }

    #[test]
    fn parse_rejects_short_and_non_hex_strings() {
        assert!("abc".parse::<ContentHash>().is_err());
        assert!("g".repeat(64).parse::<ContentHash>().is_err());
    }

    #[test]
    fn parse_accepts_upper_case_and_normalises_it() {
        let h = ContentHash::of("x");
        let parsed: ContentHash = h.as_str().to_uppercase().parse().unwrap();
        assert_eq!(parsed, h);
    }

    proptest! {
        #[test]
        fn hash_ignores_surrounding_space_and_case(s in "\\PC{0,64}", pad_l in " {0,3}", pad_r in "[ \\t\\n]{0,3}") {
            let padded = format!("{pad_l}{}{pad_r}", s.to_uppercase());
            prop_assert_eq!(ContentHash::of(&padded), ContentHash::of(&s.to_uppercase()));
        }

        #[test]
        fn hash_is_64_lowercase_hex_and_round_trips(s in "\\PC*") {
            let h = ContentHash::of(&s);
            prop_assert_eq!(h.as_str().len(), 64);
            prop_assert!(h.as_str().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(h.as_str().parse::<ContentHash>().unwrap(), h);
        }
    }
}
