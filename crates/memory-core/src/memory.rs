//! [`Memory`] and [`MemoryQueryResult`].
//!
//! ```
//! use memory_core::{Memory, Metadata, Tags};
//! let m = Memory::new("Use rustls, not openssl")?
//!     .with_tags(Tags::parse("decision,tls")?)
//!     .with_metadata(Metadata::parse(r#"{"project":"mcp"}"#)?);
//! // A memory serialises as its record (see `memory_core::MemoryRecord`).
//! let json = serde_json::to_value(&m).unwrap();
//! assert_eq!(json["created_at_iso"], m.created_at.to_iso());
//! let back: Memory = serde_json::from_value(json).unwrap();
//! assert_eq!(back, m);
//! # Ok::<(), memory_core::ValidationError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_CONTENT_BYTES, MAX_MEMORY_TYPE_CHARS};
use crate::{ContentHash, Metadata, Tags, Timestamp, ValidationError};

/// One stored note.
///
/// `content` and `content_hash` are read through accessors so they cannot drift apart;
/// a memory is built with [`Memory::new`] (which hashes) or, by backends reading rows they
/// wrote, with [`Memory::from_parts`].
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    content: String,
    content_hash: ContentHash,
    /// Normalised tags.
    pub tags: Tags,
    /// Free-form type (`note`, `decision`, ...); `None` when not given.
    pub memory_type: Option<String>,
    /// Caller-defined JSON object.
    pub metadata: Metadata,
    /// The embedding, when the backend returned it or the caller supplied one.
    pub embedding: Option<Vec<f32>>,
    /// When the memory was first stored.
    pub created_at: Timestamp,
    /// When the memory was last changed.
    pub updated_at: Timestamp,
}

impl Memory {
    /// A new memory created now. Empty or white-space content and content over
    /// [`MAX_CONTENT_BYTES`] are refused.
    pub fn new(content: impl Into<String>) -> Result<Self, ValidationError> {
        let content = content.into();
        validate_content(&content)?;
        let now = Timestamp::now();
        Ok(Self {
            content_hash: ContentHash::of(&content),
            content,
            tags: Tags::empty(),
            memory_type: None,
            metadata: Metadata::new(),
            embedding: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// Rebuilds a memory from stored parts without re-hashing (rows written by an older
    /// hashing rule keep the id they were stored under).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        content: String,
        content_hash: ContentHash,
        tags: Tags,
        memory_type: Option<String>,
        metadata: Metadata,
        embedding: Option<Vec<f32>>,
        created_at: Timestamp,
        updated_at: Timestamp,
    ) -> Self {
        Self {
            content,
            content_hash,
            tags,
            memory_type,
            metadata,
            embedding,
            created_at,
            updated_at,
        }
    }

    /// Sets the tags.
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the memory type (trimmed; empty means none; at most 100 characters).
    pub fn with_memory_type(
        mut self,
        memory_type: impl AsRef<str>,
    ) -> Result<Self, ValidationError> {
        self.memory_type = normalise_memory_type(memory_type.as_ref())?;
        Ok(self)
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the embedding.
    pub fn with_embedding(mut self, embedding: Vec<f32>) -> Self {
        self.embedding = Some(embedding);
        self
    }

    /// Sets both timestamps (for imports and tests of time-based recall).
    pub fn with_created_at(mut self, at: Timestamp) -> Self {
        self.created_at = at;
        self.updated_at = at;
        self
    }

    /// Moves `metadata.tags` and `metadata.type` into the memory's own fields, as the
    /// Python service does on store: the tags are added to the memory's (order kept,
    /// duplicates dropped), the type is used when the memory has none, and both keys leave
    /// the metadata. See [`Metadata::take_reserved`].
    ///
    /// # Errors
    ///
    /// As [`Metadata::take_reserved`], and [`ValidationError::TooManyTags`] when the union
    /// holds more than the limit.
    pub fn lift_reserved_metadata(mut self) -> Result<Self, ValidationError> {
        let lifted = self.metadata.take_reserved()?;
        if let Some(extra) = lifted.tags {
            self.tags = Tags::from_list(self.tags.iter().chain(extra.iter()))?;
        }
        if self.memory_type.is_none() {
            self.memory_type = lifted.memory_type.flatten();
        }
        Ok(self)
    }

    /// Whether the hash is the hash of the content (false for a row written under another
    /// rule, or built with [`Memory::from_parts`] from a hash that was not checked).
    #[must_use]
    pub fn hash_matches_content(&self) -> bool {
        self.content_hash == ContentHash::of(&self.content)
    }

    /// The text.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The id.
    pub fn content_hash(&self) -> &ContentHash {
        &self.content_hash
    }

    /// Consumes the memory into its content.
    pub fn into_content(self) -> String {
        self.content
    }
}

/// Checks content against the rules of [`Memory::new`]: content of only white space,
/// control characters (NUL bytes from a binary file, say) and invisible characters
/// (Unicode's default-ignorable code points, such as the zero-width space) carries no text
/// and is empty.
pub fn validate_content(content: &str) -> Result<(), ValidationError> {
    if content.chars().all(is_invisible) {
        return Err(ValidationError::EmptyContent);
    }
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ValidationError::ContentTooLarge {
            bytes: content.len(),
            limit: MAX_CONTENT_BYTES,
        });
    }
    Ok(())
}

/// Whether `c` shows nothing on its own: white space (Unicode's and Python's, see
/// [`crate::hash::is_python_whitespace`]), a control character, or a default-ignorable code
/// point (Unicode's `Default_Ignorable_Code_Point`: zero-width space and joiners, the
/// byte-order mark, soft hyphen, variation selectors, Hangul fillers, tag characters, ...).
#[must_use]
pub(crate) fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || crate::hash::is_python_whitespace(c)
        || DEFAULT_IGNORABLE
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&(c as u32)))
}

/// Unicode's `Default_Ignorable_Code_Point` ranges (DerivedCoreProperties.txt, Unicode 16),
/// written out by hand: no small, maintained crate exposes this one property.
const DEFAULT_IGNORABLE: [(u32, u32); 17] = [
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// Trims a memory type; empty gives `None`; longer than 100 characters is refused.
pub fn normalise_memory_type(t: &str) -> Result<Option<String>, ValidationError> {
    let t = t.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let chars = t.chars().count();
    if chars > MAX_MEMORY_TYPE_CHARS {
        return Err(ValidationError::InvalidMemoryType {
            reason: format!("{chars} characters exceeds the limit of {MAX_MEMORY_TYPE_CHARS}"),
        });
    }
    Ok(Some(t.to_owned()))
}

/// One hit of a search: the memory, how relevant it is, and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryQueryResult {
    /// The memory found.
    pub memory: Memory,
    /// Cosine similarity of the query and the memory, in `[-1, 1]` (higher is closer);
    /// `1.0` for exact-text matches and for time-only recalls.
    pub relevance_score: f32,
    /// How the result was produced, for people debugging a ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug_info: Option<QueryDebugInfo>,
}

/// Diagnostic details of a query result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryDebugInfo {
    /// `semantic`, `exact`, `time`, ...
    pub method: String,
    /// Raw similarity or distance reported by the backend, before clamping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_score: Option<f32>,
    /// The embedding model that produced the query vector, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Backend-specific notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_whitespace_content_are_refused() {
        assert_eq!(Memory::new("").unwrap_err(), ValidationError::EmptyContent);
        assert_eq!(Memory::new(" \n\t ").unwrap_err().field(), "content");
        assert_eq!(
            Memory::new("\0 \0\u{1b}").unwrap_err(),
            ValidationError::EmptyContent
        );
        assert!(Memory::new("a\0b").is_ok(), "a NUL inside text is kept");
    }

    #[test]
    fn content_of_only_invisible_characters_is_refused() {
        for blank in [
            "\u{200b}",
            "\u{200d}",
            "\u{feff}",
            " \u{200b}\u{200c}\u{2060} \u{feff}\n",
            "\u{1c}\u{1f}",
            "\u{3164}\u{ad}\u{fe0f}",
            "\u{e0041}\u{e007f}",
        ] {
            assert_eq!(
                Memory::new(blank).unwrap_err(),
                ValidationError::EmptyContent,
                "{blank:?}"
            );
        }
        // Invisible characters around or inside visible text are kept.
        for kept in ["\u{200b}x", "a\u{200d}b", "👩\u{200d}💻", "\u{feff}note"] {
            assert_eq!(Memory::new(kept).unwrap().content(), kept);
        }
    }

    #[test]
    fn reserved_metadata_moves_into_tags_and_type() {
        let m = Memory::new("x")
            .unwrap()
            .with_tags(Tags::parse("a,b").unwrap())
            .with_metadata(
                Metadata::parse(r#"{"tags": ["B", "c"], "type": "decision", "k": 1}"#).unwrap(),
            )
            .lift_reserved_metadata()
            .unwrap();
        assert_eq!(m.tags.as_slice(), ["a", "b", "c"]);
        assert_eq!(m.memory_type.as_deref(), Some("decision"));
        assert_eq!(m.metadata.to_json_string(), r#"{"k":1}"#);
        // An explicit type wins over metadata.type, which still leaves the metadata.
        let m = Memory::new("x")
            .unwrap()
            .with_memory_type("note")
            .unwrap()
            .with_metadata(Metadata::parse(r#"{"type": "decision"}"#).unwrap())
            .lift_reserved_metadata()
            .unwrap();
        assert_eq!(m.memory_type.as_deref(), Some("note"));
        assert!(m.metadata.is_empty());
        let err = Memory::new("x")
            .unwrap()
            .with_metadata(Metadata::parse(r#"{"tags": 42}"#).unwrap())
            .lift_reserved_metadata()
            .unwrap_err();
        assert!(err.to_string().contains("metadata.tags"), "{err}");
    }

    #[test]
    fn memory_type_is_trimmed_and_empty_means_none() {
        let m = Memory::new("x")
            .unwrap()
            .with_memory_type("  note ")
            .unwrap();
        assert_eq!(m.memory_type.as_deref(), Some("note"));
        let m = m.with_memory_type("  ").unwrap();
        assert_eq!(m.memory_type, None);
    }

    #[test]
    fn deserialising_without_hash_computes_it() {
        let m: Memory = serde_json::from_str(r#"{"content":"Hi"}"#).unwrap();
        assert_eq!(m.content_hash(), &ContentHash::of("hi"));
        assert_eq!(m.updated_at, m.created_at);
    }

    #[test]
    fn deserialising_iso_only_times_works() {
        let m: Memory =
            serde_json::from_str(r#"{"content":"Hi","created_at_iso":"2024-01-02T03:04:05Z"}"#)
                .unwrap();
        assert_eq!(m.created_at.to_iso(), "2024-01-02T03:04:05.000000Z");
    }

    #[test]
    fn deserialising_empty_content_fails() {
        assert!(serde_json::from_str::<Memory>(r#"{"content":"  "}"#).is_err());
    }

    #[test]
    fn deserialising_refuses_a_hash_of_other_content() {
        let other = ContentHash::of("other text");
        let json = format!(r#"{{"content":"buy milk","content_hash":"{other}"}}"#);
        let err = serde_json::from_str::<Memory>(&json)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("content_hash") && err.contains(other.as_str()),
            "{err}"
        );
        let right = ContentHash::of("buy milk");
        let json = format!(r#"{{"content":"Buy milk ","content_hash":"{right}"}}"#);
        let m: Memory = serde_json::from_str(&json).unwrap();
        assert_eq!(m.content_hash(), &right);
    }
}
