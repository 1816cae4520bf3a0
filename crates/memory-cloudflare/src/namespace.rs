//! [`Namespace`]: a validated tenant name that separates several stores on one D1
//! database, one Vectorize index and one R2 bucket.

use std::fmt;
use std::str::FromStr;

/// Longest namespace, in characters.
pub(crate) const MAX_NAMESPACE_CHARS: usize = 32;

/// A tenant name: 1 to 32 characters of `a-z`, `0-9` and `_`.
///
/// With a namespace, the D1 tables carry it as a prefix (`team_a_memories`…), every
/// Vectorize write and query carries it as the vector namespace, vector ids are hashed
/// with it, and R2 keys start with `{namespace}/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

/// Why a namespace was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid namespace {given:?}: {reason}; use 1 to {MAX_NAMESPACE_CHARS} characters of \
     a-z, 0-9 and _ (CLOUDFLARE_NAMESPACE)"
)]
pub struct InvalidNamespace {
    /// The text given.
    pub given: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Namespace {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`InvalidNamespace`] when it is empty, too long or holds a character outside
    /// `[a-z0-9_]`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidNamespace> {
        let name = name.into();
        let fail = |reason: String| InvalidNamespace {
            given: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(fail("it is empty".into()));
        }
        let chars = name.chars().count();
        if chars > MAX_NAMESPACE_CHARS {
            return Err(fail(format!("it has {chars} characters")));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(fail(format!("{c:?} is not allowed")));
        }
        Ok(Self(name))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Namespace {
    type Err = InvalidNamespace;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_and_underscores() {
        assert_eq!(Namespace::new("team_a1").unwrap().as_str(), "team_a1");
        assert!(Namespace::new("a".repeat(32)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_other_characters() {
        for bad in ["", "Team", "a-b", "a b", "ü", &"a".repeat(33)] {
            let err = Namespace::new(bad).unwrap_err();
            assert!(err.to_string().contains("CLOUDFLARE_NAMESPACE"), "{err}");
        }
    }
}
