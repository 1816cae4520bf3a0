//! Cloudflare Vectorize v2 client: index management, NDJSON insert/upsert (chunked),
//! nearest-neighbour queries with metadata filters, get/delete by ids, id listing with a
//! cursor, and metadata indexes — over [`cloudflare_http`]'s retrying, rate-limited,
//! circuit-broken transport.
//!
//! - [`VectorizeClient`] manages the account's indexes and hands out an [`IndexClient`]
//!   per index. Both are cheap to clone, `Send + Sync`, and are `tower::Service`s over
//!   the typed request structs ([`CreateIndex`], [`QueryVectors`], [`UpsertVectors`], ...).
//! - [`VectorizeApi`] and [`IndexApi`] are the same operations as object-safe traits
//!   (mockall mocks `MockVectorizeApi` / `MockIndexApi` with the `mock` feature).
//! - Every limit below is checked before sending; a broken limit is a
//!   [`VectorizeError`] naming the limit, its maximum, the actual value and what to do.
//!
//! **Mutations are asynchronous.** Insert, upsert, delete-by-ids and metadata-index
//! changes return a mutation id at once; the change becomes visible to queries after a
//! few seconds, once [`IndexInfo::processed_up_to_mutation`] reaches that id.
//!
//! **Chunking.** [`IndexClient::insert`] and [`IndexClient::upsert`] validate and encode
//! the whole input first, then send it in chunks of at most [`MAX_VECTORS_PER_UPSERT`]
//! vectors and [`MAX_UPSERT_BYTES`] bytes, in order, and return every chunk's mutation id
//! ([`MutationBatch::last_mutation_id`] is the one to wait for). A failure after the first
//! chunk is a [`VectorizeError::PartialWrite`] saying how many vectors were accepted.
//! Upsert chunks are idempotent and retried; insert chunks are never retried.
//!
//! ```no_run
//! use cloudflare_http::{ApiToken, ClientBuilder, ClientConfig};
//! use cloudflare_vectorize::{
//!     CreateIndex, Filter, Metric, MetadataIndexType, QueryVectors, ReturnMetadata, Vector,
//!     VectorizeClient,
//! };
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::new("023e105f4ecef8ad9ca31a8372d0c353", ApiToken::new("token"));
//! let client = ClientBuilder::new(config).build()?;
//! let vectorize = VectorizeClient::new(&client);
//! vectorize.create_index(&CreateIndex::new("memories", 384, Metric::Cosine)).await?;
//!
//! let index = vectorize.index("memories").with_dimensions(384);
//! index.create_metadata_index("kind", MetadataIndexType::String).await?;
//! let mut metadata = serde_json::Map::new();
//! metadata.insert("kind".into(), "note".into());
//! let batch = index
//!     .upsert(&[Vector::new("m-1", vec![0.1; 384]).with_metadata(metadata)])
//!     .await?;
//! println!("wait for mutation {:?}", batch.last_mutation_id());
//!
//! let query = QueryVectors::new(vec![0.1; 384])
//!     .top_k(10)
//!     .return_metadata(ReturnMetadata::Indexed)
//!     .filter(Filter::new().eq("kind", "note"));
//! for hit in index.query(&query).await?.matches {
//!     println!("{} {}", hit.id, hit.score);
//! }
//! # Ok(()) }
//! ```
//!
//! # Limits
//!
//! From <https://developers.cloudflare.com/vectorize/platform/limits/> and
//! <https://developers.cloudflare.com/vectorize/reference/metadata-filtering/>:
//!
//! | limit | value | constant |
//! |---|---|---|
//! | dimensions per vector | 1536 | [`MAX_DIMENSIONS`] |
//! | vector id length | 64 bytes | [`MAX_ID_BYTES`] |
//! | metadata per vector | 10 KiB (JSON) | [`MAX_METADATA_BYTES`] |
//! | topK with values or all metadata | 20 | [`MAX_TOP_K_WITH_VALUES_OR_METADATA`] |
//! | topK otherwise | 100 | [`MAX_TOP_K`] |
//! | vectors per HTTP insert/upsert | 5000 | [`MAX_VECTORS_PER_UPSERT`] |
//! | insert/upsert body | 100 MB | [`MAX_UPSERT_BYTES`] |
//! | ids per list-vectors page | 1000 | [`MAX_LIST_COUNT`] |
//! | index name length | 64 bytes | [`MAX_INDEX_NAME_BYTES`] |
//! | namespace name length | 64 bytes | [`MAX_NAMESPACE_BYTES`] |
//! | metadata indexes per index | 10 | [`MAX_METADATA_INDEXES`] (enforced by Cloudflare) |
//! | filter size (compact JSON) | < 2048 bytes | [`MAX_FILTER_BYTES`] |
//! | filter key length | 512 characters | [`MAX_FILTER_KEY_CHARS`] |
//!
//! The API itself: <https://developers.cloudflare.com/api/resources/vectorize/>.

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

mod client;
mod error;
mod filter;
mod ndjson;
pub mod types;

pub use client::{IndexApi, IndexClient, VectorizeApi, VectorizeClient};
#[cfg(any(test, feature = "mock"))]
pub use client::{MockIndexApi, MockVectorizeApi};
pub use error::VectorizeError;
pub use filter::Filter;
pub use ndjson::{Chunk, ChunkLimits, encode_line, encode_ndjson, plan_chunks};
pub use types::{
    CreateIndex, CreateMetadataIndex, IndexConfig, IndexDescription, IndexDimensionConfig,
    IndexInfo, ListVectors, Metadata, MetadataIndex, MetadataIndexType, Metric, Mutation,
    MutationBatch, Preset, QueryMatch, QueryResult, QueryVectors, ReturnMetadata, Vector, VectorId,
    VectorIdPage, validate_index_name,
};

/// Most dimensions of an index (and values of a vector).
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub const MAX_DIMENSIONS: u32 = 1536;

/// Longest vector id, in bytes.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub(crate) const MAX_ID_BYTES: usize = 64;

/// Largest metadata of one vector, in bytes of compact JSON (10 KiB).
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub const MAX_METADATA_BYTES: usize = 10 * 1024;

/// Largest topK when a query returns values or all metadata.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub(crate) const MAX_TOP_K_WITH_VALUES_OR_METADATA: u32 = 20;

/// Largest topK when a query returns neither values nor all metadata.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub(crate) const MAX_TOP_K: u32 = 100;

/// Most vectors in one HTTP insert or upsert; larger writes are chunked.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub(crate) const MAX_VECTORS_PER_UPSERT: usize = 5000;

/// Largest insert or upsert body, in bytes (100 MB); larger writes are chunked.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub(crate) const MAX_UPSERT_BYTES: usize = 100 * 1000 * 1000;

/// Most ids in one `get_by_ids` or `delete_by_ids` call. Not in Cloudflare's limits page:
/// observed in production as `400` with code `40007`, "too many ids in payload; max id count
/// is 20", for both operations. [`IndexClient`] refuses more before sending; callers chunk.
pub const MAX_IDS_PER_CALL: usize = 20;

/// Most ids in one list-vectors page (the spec's maximum `count`).
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub const MAX_LIST_COUNT: u32 = 1000;

/// Longest index name, in bytes.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub const MAX_INDEX_NAME_BYTES: usize = 64;

/// Longest namespace name, in bytes.
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub(crate) const MAX_NAMESPACE_BYTES: usize = 64;

/// Most metadata indexes per Vectorize index (Cloudflare refuses more; this client does
/// not list them before creating one).
///
/// See <https://developers.cloudflare.com/vectorize/platform/limits/>.
pub const MAX_METADATA_INDEXES: usize = 10;

/// A filter's compact JSON must be shorter than this many bytes.
///
/// See <https://developers.cloudflare.com/vectorize/reference/metadata-filtering/>.
pub(crate) const MAX_FILTER_BYTES: usize = 2048;

/// Longest filter key, in characters.
///
/// See <https://developers.cloudflare.com/vectorize/reference/metadata-filtering/>.
pub(crate) const MAX_FILTER_KEY_CHARS: usize = 512;
