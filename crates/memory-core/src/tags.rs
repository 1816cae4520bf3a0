//! Tag normalisation.
//!
//! Tags arrive as a list, a comma-separated string, or a JSON-array string (assistants send
//! all three). Each becomes the same [`Tags`]:
//!
//! * every tag is trimmed and lower-cased; empty tags are dropped;
//! * a comma inside a tag of a list becomes `-` (the stored copy is comma-joined);
//! * a tag longer than [`MAX_TAG_CHARS`] characters is an error, not a silent cut;
//! * duplicates are removed case-insensitively, the first occurrence keeping its place;
//! * more than [`MAX_TAGS`] distinct tags is an error;
//! * empty input gives no tags.
//!
//! ```
//! use memory_core::Tags;
//! assert_eq!(Tags::parse(" Rust, MCP ,rust,")?.as_slice(), ["rust", "mcp"]);
//! assert_eq!(Tags::parse(r#"["a,b", "C"]"#)?.as_slice(), ["a-b", "c"]);
//! assert!(Tags::parse("[not json").is_err());
//! # Ok::<(), memory_core::ValidationError>(())
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::limits::{MAX_TAG_CHARS, MAX_TAGS};

/// Why a JSON value is not tags ([`Tags::from_json`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagJsonError {
    /// An element of the list is not a string.
    #[error("element {index} is {kind}, expected a string")]
    NotAString {
        /// The element's index.
        index: usize,
        /// Its JSON kind (`a number`, ...).
        kind: &'static str,
    },
    /// The value is neither a list nor a string.
    #[error("expected an array of strings or a comma-separated string, found {kind}")]
    WrongType {
        /// Its JSON kind.
        kind: &'static str,
    },
    /// The tags break a tag rule (too long, too many, malformed JSON text).
    #[error(transparent)]
    Rule(#[from] ValidationError),
}

/// Tags as callers send them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TagInput {
    /// A list of tags; a comma inside one becomes `-`.
    List(Vec<String>),
    /// A comma-separated string, or a string holding a JSON array of strings.
    Text(String),
}

impl From<&str> for TagInput {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for TagInput {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<Vec<String>> for TagInput {
    fn from(v: Vec<String>) -> Self {
        Self::List(v)
    }
}

impl From<Vec<&str>> for TagInput {
    fn from(v: Vec<&str>) -> Self {
        Self::List(v.into_iter().map(str::to_owned).collect())
    }
}

impl<const N: usize> From<[&str; N]> for TagInput {
    fn from(v: [&str; N]) -> Self {
        Self::List(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// A normalised, de-duplicated list of tags. From a list, a comma-separated string or a
/// JSON-array string alike:
///
/// * every tag is trimmed and lower-cased; empty tags are dropped;
/// * a comma inside a tag of a list becomes `-` (the stored copy is comma-joined);
/// * a tag longer than [`MAX_TAG_CHARS`] characters is an error, not a silent cut;
/// * duplicates are removed case-insensitively, the first occurrence keeping its place;
/// * more than [`MAX_TAGS`] distinct tags is an error;
/// * empty input gives no tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Tags(Vec<String>);

impl Tags {
    /// No tags.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Normalises any [`TagInput`].
    pub fn parse(input: impl Into<TagInput>) -> Result<Self, ValidationError> {
        match input.into() {
            TagInput::List(list) => Self::from_items(list.iter().map(|t| t.replace(',', "-"))),
            TagInput::Text(text) => {
                let trimmed = text.trim();
                if trimmed.starts_with('[') {
                    let list: Vec<String> = serde_json::from_str(trimmed).map_err(|e| {
                        ValidationError::MalformedTagJson {
                            reason: e.to_string(),
                        }
                    })?;
                    Self::parse(TagInput::List(list))
                } else {
                    Self::from_items(trimmed.split(',').map(str::to_owned))
                }
            }
        }
    }

    /// Tags from a JSON value as import files, metadata and tools carry them: an array of
    /// strings, a comma-separated or JSON-array string, or `null` (no tags).
    ///
    /// ```
    /// use memory_core::Tags;
    /// use serde_json::json;
    /// assert_eq!(Tags::from_json(&json!(["A", "b"])).unwrap().as_slice(), ["a", "b"]);
    /// assert_eq!(Tags::from_json(&json!("a, b")).unwrap().as_slice(), ["a", "b"]);
    /// assert!(Tags::from_json(&json!(42)).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`TagJsonError`], saying which element or what kind of value was wrong.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TagJsonError> {
        use serde_json::Value;
        match value {
            Value::Null => Ok(Self::empty()),
            Value::String(s) => Ok(Self::parse(s.as_str())?),
            Value::Array(items) => {
                let mut list = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => list.push(s.as_str()),
                        other => {
                            return Err(TagJsonError::NotAString {
                                index,
                                kind: crate::error::json_kind(other),
                            });
                        }
                    }
                }
                Ok(Self::from_list(list)?)
            }
            other => Err(TagJsonError::WrongType {
                kind: crate::error::json_kind(other),
            }),
        }
    }

    /// Normalises a list of single tags (commas inside become `-`).
    pub fn from_list<I, S>(items: I) -> Result<Self, ValidationError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::from_items(items.into_iter().map(|t| t.as_ref().replace(',', "-")))
    }

    fn from_items(items: impl Iterator<Item = String>) -> Result<Self, ValidationError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for raw in items {
            let tag = raw.trim().to_lowercase();
            if tag.is_empty() {
                continue;
            }
            let chars = tag.chars().count();
            if chars > MAX_TAG_CHARS {
                return Err(ValidationError::TagTooLong {
                    tag: tag.chars().take(20).collect(),
                    chars,
                    limit: MAX_TAG_CHARS,
                });
            }
            if seen.insert(tag.clone()) {
                out.push(tag);
            }
        }
        if out.len() > MAX_TAGS {
            return Err(ValidationError::TooManyTags {
                count: out.len(),
                limit: MAX_TAGS,
            });
        }
        Ok(Self(out))
    }

    /// The tags, in first-seen order.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `tag` (already normalised) is present.
    pub fn contains(&self, tag: &str) -> bool {
        self.0.iter().any(|t| t == tag)
    }

    /// The comma-joined form stored beside the tag tables (upstream's `tags` column).
    pub fn joined(&self) -> String {
        self.0.join(",")
    }

    /// Iterates over the tags.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    /// Consumes the tags into their vector.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let input = TagInput::deserialize(d)?;
        Tags::parse(input).map_err(serde::de::Error::custom)
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comma_string_is_split_trimmed_and_lowercased() {
        assert_eq!(Tags::parse("A, b ,C").unwrap().as_slice(), ["a", "b", "c"]);
    }

    #[test]
    fn json_array_string_is_parsed() {
        assert_eq!(
            Tags::parse(r#" ["X", "y z"] "#).unwrap().as_slice(),
            ["x", "y z"]
        );
    }

    #[test]
    fn comma_inside_a_list_item_becomes_dash() {
        assert_eq!(Tags::parse(vec!["a,b"]).unwrap().as_slice(), ["a-b"]);
    }

    #[test]
    fn malformed_json_is_an_error_naming_tags() {
        let err = Tags::parse("[\"a\", ").unwrap_err();
        assert_eq!(err.field(), "tags");
        assert!(matches!(err, ValidationError::MalformedTagJson { .. }));
    }

    #[test]
    fn json_array_of_non_strings_is_an_error() {
        assert!(Tags::parse("[1, 2]").is_err());
    }

    #[test]
    fn tag_of_101_chars_is_refused_and_100_accepted() {
        assert!(Tags::parse(vec!["x".repeat(100)]).is_ok());
        let err = Tags::parse(vec!["x".repeat(101)]).unwrap_err();
        assert!(err.to_string().contains("limit is 100"), "{err}");
    }

    #[test]
    fn more_than_100_distinct_tags_is_refused() {
        let ok: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        assert_eq!(Tags::parse(ok).unwrap().len(), 100);
        let too_many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        assert!(matches!(
            Tags::parse(too_many),
            Err(ValidationError::TooManyTags { count: 101, .. })
        ));
    }

    #[test]
    fn empty_inputs_give_no_tags() {
        assert!(Tags::parse("").unwrap().is_empty());
        assert!(Tags::parse(" , ,").unwrap().is_empty());
        assert!(Tags::parse("[]").unwrap().is_empty());
        assert!(Tags::parse(Vec::<String>::new()).unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_removed_case_insensitively_keeping_first_position() {
        assert_eq!(
            Tags::parse("b, A, B, a, c").unwrap().as_slice(),
            ["b", "a", "c"]
        );
    }

    #[test]
    fn deserialises_from_list_or_string() {
        let a: Tags = serde_json::from_str(r#"["A","b"]"#).unwrap();
        let b: Tags = serde_json::from_str(r#""a, B""#).unwrap();
        assert_eq!(a, b);
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(items in proptest::collection::vec("[ a-zA-Z0-9,é_-]{0,30}", 0..20)) {
            let once = Tags::parse(items).unwrap();
            let twice = Tags::parse(once.as_slice().to_vec()).unwrap();
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn every_tag_is_trimmed_lowercase_nonempty_without_commas(items in proptest::collection::vec("\\PC{0,40}", 0..30)) {
            if let Ok(tags) = Tags::parse(items) {
                let mut seen = HashSet::new();
                for t in &tags {
                    prop_assert!(!t.is_empty());
                    prop_assert_eq!(t.trim(), t.as_str());
                    prop_assert_eq!(t.to_lowercase(), t.clone());
                    prop_assert!(!t.contains(','));
                    prop_assert!(t.chars().count() <= MAX_TAG_CHARS);
                    prop_assert!(seen.insert(t.clone()));
                }
            }
        }

        #[test]
        fn comma_string_and_list_agree(items in proptest::collection::vec("[a-zA-Z0-9 ]{1,12}", 0..10)) {
            let joined = items.join(",");
            prop_assert_eq!(Tags::parse(joined).unwrap(), Tags::parse(items).unwrap());
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC*") {
            let _ = Tags::parse(s);
        }
    }
}
