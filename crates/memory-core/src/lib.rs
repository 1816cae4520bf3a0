//! The core model of the memory service. No I/O, no async runtime.
//!
//! ```
//! use memory_core::{ContentHash, Memory, Tags};
//!
//! let memory = Memory::new("  Hello World ")?
//!     .with_tags(Tags::parse("greeting, Example")?)
//!     .with_memory_type("note")?;
//! assert_eq!(memory.content_hash(), &ContentHash::of("hello world"));
//! assert_eq!(memory.tags.as_slice(), ["greeting", "example"]);
//! # Ok::<(), memory_core::ValidationError>(())
//! ```
//!
//! * [`Memory`] — one stored note with its tags, type, metadata and timestamps.
//! * [`ContentHash`] — the id of a memory: SHA-256 of the content stripped as Python's `str.strip()`
//!   strips it, then lower-cased,
//!   the same id the Python MCP Memory Service gives the same text.
//! * [`Tags`] — normalised tags, and the rules they follow.
//! * [`MemoryRecord`] — a memory as JSON: the one shape of export and import lines, the MCP
//!   tools' memory objects and `--json` output (upstream's field names, both time renderings).
//! * [`Timestamp`] — a UTC instant that renders both as epoch seconds and ISO-8601.
//! * [`parse_time_expression`] — natural-language time expressions ("last week") → [`TimeRange`].

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

mod error;
mod hash;
pub mod memory;
pub mod metadata;
mod record;
mod tags;
mod time_expr;
pub mod timestamp;

pub use error::ValidationError;
pub use hash::ContentHash;
pub use memory::{Memory, MemoryQueryResult, QueryDebugInfo};
pub use metadata::{Metadata, Reserved};
pub use record::{HashCheck, MemoryRecord, RecordError};
pub use tags::{TagInput, TagJsonError, Tags};
pub use time_expr::{
    OutOfRange, TimeMatch, TimeRange, extract_time_expression, find_time_expression,
    parse_time_expression, try_extract_time_expression, try_parse_time_expression,
};
pub use timestamp::Timestamp;

/// Limits on what a memory may hold. They are checked before anything is stored.
pub mod limits {
    /// Longest tag, in characters, after normalisation.
    pub const MAX_TAG_CHARS: usize = 100;
    /// Most tags one memory may carry, after de-duplication.
    pub const MAX_TAGS: usize = 100;
    /// Longest memory type, in characters.
    pub(crate) const MAX_MEMORY_TYPE_CHARS: usize = 100;
    /// Largest content accepted, in bytes (16 MiB). Larger notes belong in a file, not a memory.
    pub const MAX_CONTENT_BYTES: usize = 16 * 1024 * 1024;
}
