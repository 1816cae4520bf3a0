//! [`Memory`] and [`MemoryQueryResult`].
//!
//! ```
//! use memory_core::{Memory, Metadata, Tags};
//! let m = Memory::new("Use rustls, not openssl")?
//!     .with_tags(Tags::parse("decision,tls")?)
//!     .with_metadata(Metadata::parse(r#"{"project":"mcp"}"#)?);
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

/// Checks content against the rules of [`Memory::new`]: content of only white space and
/// control characters (NUL bytes from a binary file, say) carries no text and is empty.
pub fn validate_content(content: &str) -> Result<(), ValidationError> {
    if content
        .trim_matches(|c: char| c.is_whitespace() || c.is_control())
        .is_empty()
    {
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

/// Trims a memory type; empty gives `None`; longer than [`MAX_MEMORY_TYPE_CHARS`] is refused.
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

/// The wire form: upstream's field names, both time renderings.
#[derive(Serialize, Deserialize)]
struct MemoryRecord {
    content: String,
    content_hash: Option<ContentHash>,
    #[serde(default)]
    tags: Tags,
    #[serde(default)]
    memory_type: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
    #[serde(default)]
    created_at: Option<Timestamp>,
    #[serde(default)]
    created_at_iso: Option<String>,
    #[serde(default)]
    updated_at: Option<Timestamp>,
    #[serde(default)]
    updated_at_iso: Option<String>,
}

impl Serialize for Memory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MemoryRecord {
            content: self.content.clone(),
            content_hash: Some(self.content_hash.clone()),
            tags: self.tags.clone(),
            memory_type: self.memory_type.clone(),
            metadata: Some(self.metadata.clone()),
            embedding: self.embedding.clone(),
            created_at: Some(self.created_at),
            created_at_iso: Some(self.created_at.to_iso()),
            updated_at: Some(self.updated_at),
            updated_at_iso: Some(self.updated_at.to_iso()),
        }
        .serialize(s)
    }
}

/// Reads upstream's record shape. The hash is recomputed when absent; when present it is
/// kept (so exports from older hashing rules keep their ids). Times come from the epoch
/// field, else the ISO field, else now; `updated_at` defaults to `created_at`.
impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let r = MemoryRecord::deserialize(d)?;
        validate_content(&r.content).map_err(D::Error::custom)?;
        let pick =
            |secs: Option<Timestamp>, iso: Option<String>| -> Result<Option<Timestamp>, D::Error> {
                match (secs, iso) {
                    (Some(t), _) => Ok(Some(t)),
                    (None, Some(iso)) => Timestamp::parse_iso(&iso)
                        .map(Some)
                        .map_err(D::Error::custom),
                    (None, None) => Ok(None),
                }
            };
        let created_at = pick(r.created_at, r.created_at_iso)?.unwrap_or_else(Timestamp::now);
        let updated_at = pick(r.updated_at, r.updated_at_iso)?.unwrap_or(created_at);
        let memory_type = match r.memory_type {
            Some(t) => normalise_memory_type(&t).map_err(D::Error::custom)?,
            None => None,
        };
        Ok(Memory {
            content_hash: r
                .content_hash
                .unwrap_or_else(|| ContentHash::of(&r.content)),
            content: r.content,
            tags: r.tags,
            memory_type,
            metadata: r.metadata.unwrap_or_default(),
            embedding: r.embedding,
            created_at,
            updated_at,
        })
    }
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
}
