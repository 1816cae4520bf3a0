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

/// SHA-256 hex digest of the content with leading and trailing white space removed the way
/// Python's `str.strip()` removes it, then lower-cased.
///
/// This is the rule of the Python MCP Memory Service (`content.strip().lower()`), so the
/// same text has the same id in both, and it is also the Vectorize vector id (64 bytes,
/// Vectorize's id limit).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

impl ContentHash {
    /// Length of the hex digest.
    pub const LEN: usize = 64;

    /// Hashes content the way upstream does.
    pub fn of(content: &str) -> Self {
        let normalised = python_strip(content).to_lowercase();
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

/// The code points for which Python's `str.isspace()` is true, which `str.strip()` with no
/// argument removes. Python's set is Unicode's `White_Space` property plus the four ASCII
/// information separators U+001C–U+001F (Python counts them as white space; Rust's
/// `char::is_whitespace` does not), so the set is spelled out rather than derived.
pub(crate) const PYTHON_WHITESPACE: [char; 29] = [
    '\u{09}', '\u{0A}', '\u{0B}', '\u{0C}', '\u{0D}', '\u{1C}', '\u{1D}', '\u{1E}', '\u{1F}',
    '\u{20}', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}',
    '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200A}', '\u{2028}',
    '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

/// Whether Python's `str.isspace()` is true for `c` (see [`PYTHON_WHITESPACE`]).
#[must_use]
pub(crate) fn is_python_whitespace(c: char) -> bool {
    // Every member is below U+3001; the match keeps the common case (a letter) cheap.
    c <= '\u{3000}' && PYTHON_WHITESPACE.contains(&c)
}

/// `s` without the leading and trailing characters Python's `str.strip()` removes.
#[must_use]
pub(crate) fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_whitespace)
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
    fn python_strip_removes_what_python_strips_and_nothing_else() {
        assert_eq!(python_strip("\u{1c} note \u{3000}"), "note");
        // A zero-width space is not white space to Python.
        assert_eq!(python_strip("\u{200b} x"), "\u{200b} x");
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

    /// Python's white space, as `python3` reports it, when `python3` is on the path (it is
    /// required under CI, where the list must be proven, not assumed).
    #[test]
    fn python_whitespace_is_exactly_what_python_strips() {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "print(' '.join(str(c) for c in range(0x110000) if chr(c).isspace()))",
            ])
            .output();
        let out = match out {
            Ok(out) if out.status.success() => out,
            _ if std::env::var_os("CI").is_some() => panic!("python3 is required under CI"),
            _ => {
                eprintln!("SKIPPED: python3 not found; the list is checked where it runs");
                return;
            }
        };
        let python: Vec<char> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(|n| char::from_u32(n.parse().unwrap()).unwrap())
            .collect();
        assert_eq!(python, PYTHON_WHITESPACE);
    }

    #[test]
    fn every_code_point_is_white_space_exactly_when_listed() {
        let listed: std::collections::HashSet<char> = PYTHON_WHITESPACE.into_iter().collect();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(
                is_python_whitespace(c),
                listed.contains(&c),
                "{:#x}",
                c as u32
            );
        }
    }

    #[test]
    fn information_separators_are_stripped_like_python_does() {
        // Python: "\x1cBuy milk\x1f".strip().lower() == "buy milk".
        assert_eq!(
            ContentHash::of("\u{1c}Buy milk\u{1f}").as_str(),
            hex::encode(Sha256::digest(b"buy milk"))
        );
        // Not white space to Python either: kept, so the hash differs.
        assert_ne!(ContentHash::of("\u{200b}x"), ContentHash::of("x"));
    }

    /// Hashes of awkward texts as Python computes them
    /// (`hashlib.sha256(s.strip().lower().encode()).hexdigest()`), when `python3` is there.
    #[test]
    fn hashes_agree_with_python_on_awkward_text() {
        let texts = [
            "\u{1c}Buy milk\u{1f}",
            "\u{85}\u{a0}Straße\u{3000}",
            "\u{200b}\u{feff}ZWSP and BOM are not white space",
            "ΣΑΣ final sigma",
            "İstanbul",
            "\t\n\u{b}\u{c}\r mixed \u{2028}\u{2029}",
        ];
        let script = "import sys,json,hashlib\n\
                      for s in json.load(sys.stdin): print(hashlib.sha256(s.strip().lower().encode()).hexdigest())";
        let child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 is required under CI"
            );
            eprintln!("SKIPPED: python3 not found");
            return;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(&texts).unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let python: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let ours: Vec<String> = texts
            .iter()
            .map(|t| ContentHash::of(t).to_string())
            .collect();
        assert_eq!(ours, python);
    }

    proptest! {
        /// Any padding of Python white space on either side leaves the hash unchanged.
        #[test]
        fn hash_ignores_surrounding_python_white_space(
            s in "\\PC{0,64}",
            pad_l in proptest::collection::vec(proptest::sample::select(PYTHON_WHITESPACE.to_vec()), 0..4),
            pad_r in proptest::collection::vec(proptest::sample::select(PYTHON_WHITESPACE.to_vec()), 0..4),
        ) {
            let padded = format!(
                "{}{s}{}",
                pad_l.iter().collect::<String>(),
                pad_r.iter().collect::<String>()
            );
            prop_assert_eq!(ContentHash::of(&padded), ContentHash::of(&s));
        }

        /// Upper, lower and mixed case of the same (ASCII-cased) text share a hash.
        #[test]
        fn hash_ignores_case(s in "[A-Za-z0-9 .,!?]{0,64}") {
            prop_assert_eq!(ContentHash::of(&s.to_uppercase()), ContentHash::of(&s));
            prop_assert_eq!(ContentHash::of(&s.to_lowercase()), ContentHash::of(&s));
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
