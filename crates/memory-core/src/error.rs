//! Validation errors for the core model.

use serde_json::Value;
use thiserror::Error;

/// Input that the core model refuses, naming the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The content is empty or only white space, control characters (such as NUL) and
    /// characters that render as nothing (zero-width spaces and joiners, a BOM, ...).
    #[error(
        "content: must not be empty or only white space, control characters and invisible \
         characters (zero-width spaces, joiners, byte-order marks)"
    )]
    EmptyContent,
    /// The content is larger than [`crate::limits::MAX_CONTENT_BYTES`].
    #[error("content: {bytes} bytes exceeds the limit of {limit} bytes")]
    ContentTooLarge {
        /// Size of the rejected content.
        bytes: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// A tag is longer than [`crate::limits::MAX_TAG_CHARS`].
    #[error("tags: tag {tag:?}… is {chars} characters long; the limit is {limit}")]
    TagTooLong {
        /// The first 20 characters of the tag.
        tag: String,
        /// Its length in characters.
        chars: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// More tags than [`crate::limits::MAX_TAGS`].
    #[error("tags: {count} tags exceeds the limit of {limit} per memory")]
    TooManyTags {
        /// How many distinct tags were given.
        count: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// A tag string that starts like a JSON array but is not valid JSON (or not an array of strings).
    #[error("tags: malformed JSON array of tags: {reason}")]
    MalformedTagJson {
        /// What the JSON parser said.
        reason: String,
    },
    /// A string that is not a 64-character lowercase SHA-256 hex digest.
    #[error("content_hash: {value:?} is not a SHA-256 hex digest (64 characters 0-9a-f)")]
    InvalidHash {
        /// The rejected value (at most 80 characters of it).
        value: String,
    },
    /// A supplied content hash that is not the hash of the content it came with.
    #[error(
        "content_hash: {supplied} is not the hash of the content ({computed}); leave \
         content_hash out and it is computed from the content"
    )]
    HashMismatch {
        /// The hash supplied.
        supplied: crate::ContentHash,
        /// The hash of the content.
        computed: crate::ContentHash,
    },
    /// The memory type is empty after trimming or too long.
    #[error("memory_type: {reason}")]
    InvalidMemoryType {
        /// Why it was refused.
        reason: String,
    },
    /// Metadata that is not a JSON object, does not parse, or holds a non-finite number.
    #[error("metadata: {reason}")]
    InvalidMetadata {
        /// Why it was refused.
        reason: String,
    },
    /// A timestamp outside the representable range or not finite.
    #[error("{field}: {reason}")]
    InvalidTimestamp {
        /// The field that held it (`created_at`, `before`, ...).
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

impl ValidationError {
    /// The name of the input field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::EmptyContent | Self::ContentTooLarge { .. } => "content",
            Self::TagTooLong { .. } | Self::TooManyTags { .. } | Self::MalformedTagJson { .. } => {
                "tags"
            }
            Self::InvalidHash { .. } | Self::HashMismatch { .. } => "content_hash",
            Self::InvalidMemoryType { .. } => "memory_type",
            Self::InvalidMetadata { .. } => "metadata",
            Self::InvalidTimestamp { field, .. } => field,
        }
    }
}

/// The kind of a JSON value as error messages name it (`null`, `a number`, `an array`, ...).
#[must_use]
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
