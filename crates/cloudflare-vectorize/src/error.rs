//! [`VectorizeError`]: every way a Vectorize call can fail. Validation errors are raised
//! before anything is sent and name the limit, its maximum, the actual value and what to do.

use cloudflare_http::CloudflareError;

use crate::{
    MAX_DIMENSIONS, MAX_FILTER_BYTES, MAX_FILTER_KEY_CHARS, MAX_ID_BYTES, MAX_IDS_PER_CALL,
    MAX_INDEX_NAME_BYTES, MAX_LIST_COUNT, MAX_METADATA_BYTES, MAX_NAMESPACE_BYTES,
    MAX_UPSERT_BYTES,
};

/// A failed Vectorize call: a request refused by validation (nothing was sent), an
/// API or transport error, or a chunked write that stopped part-way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorizeError {
    /// The Cloudflare API or the transport failed.
    #[error(transparent)]
    Cloudflare(#[from] CloudflareError),

    /// An index name is empty or longer than [`MAX_INDEX_NAME_BYTES`].
    #[error(
        "index name {name:?} is {actual} bytes; Vectorize index names must be 1 to \
         {MAX_INDEX_NAME_BYTES} bytes (MAX_INDEX_NAME_BYTES): use a shorter name"
    )]
    InvalidIndexName {
        /// The name.
        name: String,
        /// Its length in bytes.
        actual: usize,
    },

    /// An index's dimensions are 0 or above [`MAX_DIMENSIONS`].
    #[error(
        "an index of {actual} dimensions is not allowed: Vectorize indexes have 1 to \
         {MAX_DIMENSIONS} dimensions (MAX_DIMENSIONS); use an embedding model with fewer dimensions"
    )]
    DimensionsOutOfRange {
        /// The requested dimensions.
        actual: u32,
    },

    /// A vector id is empty or longer than [`MAX_ID_BYTES`].
    #[error(
        "vector id {id:?} is {actual} bytes; vector ids must be 1 to {MAX_ID_BYTES} bytes \
         (MAX_ID_BYTES): shorten it, e.g. replace it by a hash"
    )]
    InvalidId {
        /// The id.
        id: String,
        /// Its length in bytes.
        actual: usize,
    },

    /// More ids than one call takes ([`MAX_IDS_PER_CALL`]).
    #[error(
        "{operation} was given {actual} ids; Vectorize takes at most {MAX_IDS_PER_CALL} per call \
         (MAX_IDS_PER_CALL, observed as error 40007): send them in chunks"
    )]
    TooManyIds {
        /// `get_by_ids` or `delete_by_ids`.
        operation: &'static str,
        /// How many ids were given.
        actual: usize,
    },

    /// A vector has no values.
    #[error("vector {id:?} has no values; send one value per index dimension")]
    EmptyValues {
        /// The vector id (`"query"` for a query vector).
        id: String,
    },

    /// A vector has more values than [`MAX_DIMENSIONS`].
    #[error(
        "vector {id:?} has {actual} values, over Vectorize's maximum of {MAX_DIMENSIONS} \
         dimensions (MAX_DIMENSIONS); use an embedding model with fewer dimensions"
    )]
    TooManyValues {
        /// The vector id (`"query"` for a query vector).
        id: String,
        /// Its number of values.
        actual: usize,
    },

    /// A vector's length differs from the index's dimensions.
    #[error(
        "vector {id:?} has {actual} values but the index has {expected} dimensions; \
         embed it with the index's model"
    )]
    DimensionMismatch {
        /// The vector id (`"query"` for a query vector).
        id: String,
        /// The index's dimensions.
        expected: u32,
        /// The vector's number of values.
        actual: usize,
    },

    /// A vector value is NaN or infinite.
    #[error(
        "vector {id:?} has a non-finite value ({value}) at position {position}; \
         Vectorize stores finite float32 values only: fix the embedding"
    )]
    NonFiniteValue {
        /// The vector id (`"query"` for a query vector).
        id: String,
        /// 0-based position of the value.
        position: usize,
        /// The value (NaN or ±inf).
        value: f32,
    },

    /// A vector's metadata serialises to more than [`MAX_METADATA_BYTES`].
    #[error(
        "metadata of vector {id:?} is {actual} bytes as JSON, over Vectorize's maximum of \
         {MAX_METADATA_BYTES} bytes per vector (MAX_METADATA_BYTES): store large fields elsewhere \
         (e.g. D1 or R2) and keep a reference in the metadata"
    )]
    MetadataTooLarge {
        /// The vector id.
        id: String,
        /// The serialised size in bytes.
        actual: usize,
    },

    /// A namespace is empty or longer than [`MAX_NAMESPACE_BYTES`].
    #[error(
        "namespace {namespace:?} is {actual} bytes; namespaces must be 1 to \
         {MAX_NAMESPACE_BYTES} bytes (MAX_NAMESPACE_BYTES): use a shorter namespace"
    )]
    InvalidNamespace {
        /// The namespace.
        namespace: String,
        /// Its length in bytes.
        actual: usize,
    },

    /// One vector's NDJSON line alone is larger than the request body limit, so no chunk
    /// can carry it.
    #[error(
        "vector {id:?} is {actual} bytes as an NDJSON line, over the {max}-byte request body \
         limit (MAX_UPSERT_BYTES is {MAX_UPSERT_BYTES}); shrink its metadata"
    )]
    VectorTooLarge {
        /// The vector id.
        id: String,
        /// The line's size in bytes (with its newline).
        actual: usize,
        /// The body limit in force.
        max: usize,
    },

    /// `topK` is 0 or above the cap that applies.
    #[error(
        "topK {actual} is out of range: Vectorize returns 1 to {max} results {when} \
         ({constant}); {advice}"
    )]
    TopKOutOfRange {
        /// The requested topK.
        actual: u32,
        /// The cap that applies.
        max: u32,
        /// When that cap applies.
        when: &'static str,
        /// The constant holding the cap.
        constant: &'static str,
        /// What to do.
        advice: &'static str,
    },

    /// A metadata filter is malformed (unknown operator, bad key or value).
    #[error(
        "invalid metadata filter: {reason}; see \
         https://developers.cloudflare.com/vectorize/reference/metadata-filtering/"
    )]
    InvalidFilter {
        /// What is wrong with it.
        reason: String,
    },

    /// A metadata filter's compact JSON is [`MAX_FILTER_BYTES`] or more.
    #[error(
        "the metadata filter is {actual} bytes as JSON; Vectorize requires less than \
         {MAX_FILTER_BYTES} bytes (MAX_FILTER_BYTES): simplify it or split the query"
    )]
    FilterTooLarge {
        /// The compact JSON size in bytes.
        actual: usize,
    },

    /// A filter key is longer than [`MAX_FILTER_KEY_CHARS`].
    #[error(
        "metadata filter key is {actual} characters, over the maximum of \
         {MAX_FILTER_KEY_CHARS} (MAX_FILTER_KEY_CHARS): use a shorter property name"
    )]
    FilterKeyTooLong {
        /// The key's length in characters.
        actual: usize,
    },

    /// A list-vectors `count` is 0 or above [`MAX_LIST_COUNT`].
    #[error(
        "list count {actual} is out of range: Vectorize lists 1 to {MAX_LIST_COUNT} vector ids \
         per page (MAX_LIST_COUNT); follow the cursor for more"
    )]
    ListCountOutOfRange {
        /// The requested count.
        actual: u32,
    },

    /// A required list (e.g. the ids to delete) is empty.
    #[error("no {what} given; pass at least one")]
    Empty {
        /// What is missing, e.g. `"vector ids"`.
        what: &'static str,
    },

    /// A metadata property name is empty.
    #[error("the metadata property name is empty; name the metadata property to index")]
    EmptyPropertyName,

    /// A chunked insert or upsert failed on a chunk after earlier chunks were accepted.
    ///
    /// The first `vectors_written` vectors (in input order) were accepted, under
    /// `mutation_ids`; the rest were not sent.
    #[error(
        "chunk {chunk} of {chunks} failed after {vectors_written} vectors were accepted in \
         {accepted} earlier chunks: {source}; resend the vectors from position {vectors_written} on",
        accepted = .mutation_ids.len()
    )]
    PartialWrite {
        /// 1-based number of the failed chunk.
        chunk: usize,
        /// Number of chunks the input was split into.
        chunks: usize,
        /// Vectors accepted before the failure (they are the first ones of the input).
        vectors_written: usize,
        /// Mutation ids of the accepted chunks.
        mutation_ids: Vec<String>,
        /// Why the chunk failed.
        #[source]
        source: Box<VectorizeError>,
    },
}

impl VectorizeError {
    /// Whether the request was refused before sending (a validation error).
    #[must_use]
    pub fn is_validation(&self) -> bool {
        !matches!(self, Self::Cloudflare(_) | Self::PartialWrite { .. })
    }

    /// The underlying Cloudflare error, if any (also inside a [`Self::PartialWrite`]).
    #[must_use]
    pub fn cloudflare(&self) -> Option<&CloudflareError> {
        match self {
            Self::Cloudflare(e) => Some(e),
            Self::PartialWrite { source, .. } => source.cloudflare(),
            _ => None,
        }
    }
}
