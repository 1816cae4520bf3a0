//! The [`MemoryStorage`] trait: one interface for every backend, proven by one
//! [conformance suite](crate::conformance) (feature `conformance`).
//!
//! ```no_run
//! use memory_core::{Memory, Tags};
//! use memory_storage::{MemoryStorage, StorageResult};
//!
//! async fn remember(store: &dyn MemoryStorage) -> StorageResult<()> {
//!     store.store(Memory::new("Deploys go out on Tuesdays")?.with_tags(Tags::parse("ops")?)).await?;
//!     for hit in store.retrieve("when do we deploy?", 3).await? {
//!         println!("{:.2} {}", hit.relevance_score, hit.memory.content());
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # From the Python MCP Memory Service
//!
//! Each method of upstream's `MemoryStorage` base class, and its Rust form here. Upstream
//! returns `(bool, str)` pairs for outcomes; here what happened is a typed `Ok` value (a
//! duplicate store is [`StoreOutcome::Duplicate`], not a failure) and failures are a typed
//! [`StorageError`].
//!
//! | upstream (Python) | here (Rust) |
//! |---|---|
//! | `initialize() -> None` | [`initialize(&self) -> StorageResult<()>`](MemoryStorage::initialize) |
//! | `store(memory) -> (bool, str)` | [`store(&self, Memory) -> StorageResult<StoreOutcome>`](MemoryStorage::store); a duplicate is `Ok(StoreOutcome::Duplicate)` |
//! | `store_batch(memories) -> List[(bool, str)]` | [`store_batch(&self, Vec<Memory>) -> StorageResult<Vec<StorageResult<StoreOutcome>>>`](MemoryStorage::store_batch); a duplicate item is `Ok(StoreOutcome::Duplicate)` |
//! | `retrieve(query, n_results=5) -> List[MemoryQueryResult]` | [`retrieve(&self, &str, usize)`](MemoryStorage::retrieve), or [`search(&SemanticQuery)`](MemoryStorage::search) with filters |
//! | `search_by_tag(tags) -> List[Memory]` | [`search_by_tag(&self, &Tags) -> Vec<Memory>`](MemoryStorage::search_by_tag) (any tag) |
//! | `search_by_tags(tags, operation, start, end)` | [`search_by_tags(&self, &TagFilter, Option<TimeRange>)`](MemoryStorage::search_by_tags) |
//! | `get_memories_by_time_range(start, end)` | [`get_memories_by_time_range(&self, Timestamp, Timestamp)`](MemoryStorage::get_memories_by_time_range) |
//! | `get_by_hash(hash) -> Optional[Memory]` | [`get_by_hash(&self, &ContentHash) -> Option<Memory>`](MemoryStorage::get_by_hash) |
//! | `delete(content_hash) -> (bool, str)` | [`delete(&self, &ContentHash) -> StorageResult<()>`](MemoryStorage::delete); unknown is `Err(NotFound)` |
//! | `delete_by_tag(tag) -> (int, str)` | [`delete_by_tag(&self, &str) -> StorageResult<usize>`](MemoryStorage::delete_by_tag) |
//! | `delete_memories(...)` (hash, tags, before/after, dry run) | [`delete_memories(&self, &DeleteRequest) -> DeleteReport`](MemoryStorage::delete_memories) |
//! | `cleanup_duplicates() -> (int, str)` | [`cleanup_duplicates(&self) -> CleanupReport`](MemoryStorage::cleanup_duplicates) |
//! | `update_memory_metadata(hash, updates, preserve_timestamps) -> (bool, str)` | [`update_memory_metadata(&self, &ContentHash, MemoryUpdate, bool) -> Memory`](MemoryStorage::update_memory_metadata) |
//! | `get_stats() -> dict` | [`get_stats(&self) -> StorageStats`](MemoryStorage::get_stats) |
//! | `get_all_tags() -> List[str]` | [`get_all_tags(&self) -> Vec<TagCount>`](MemoryStorage::get_all_tags) |
//! | `get_recent_memories(n) -> List[Memory]` | [`get_recent_memories(&self, usize) -> Vec<Memory>`](MemoryStorage::get_recent_memories) |
//! | `recall_memory(query, n_results) -> List[Memory]` | [`recall_memory(&self, &str, usize) -> Vec<MemoryQueryResult>`](MemoryStorage::recall_memory) |
//! | `get_all_memories(limit, offset, memory_type, tags)` | [`list(&self, &ListQuery) -> Vec<Memory>`](MemoryStorage::list) |
//! | `count_all_memories(memory_type, tags)` | [`count(&self, &MemoryFilter) -> u64`](MemoryStorage::count) |
//! | (none: soft deletes were never purged) | [`purge_deleted(&self, Option<Timestamp>) -> u64`](MemoryStorage::purge_deleted) |
//! | (none) | [`get_embeddings(&self, &[ContentHash]) -> Vec<Option<Vec<f32>>>`](MemoryStorage::get_embeddings) |
//! | (none) | [`check(&self) -> ConsistencyReport`](MemoryStorage::check), [`repair(&self) -> RepairReport`](MemoryStorage::repair) |
//!
//! # Semantics every backend keeps
//! * Deleting is soft: a deleted memory disappears from every read, and storing the same
//!   content again revives it ([`StoreOutcome::Revived`]) with the new fields.
//! * Storing content whose memory is live is [`StoreOutcome::Duplicate`] and changes nothing.
//! * Lists are newest first (`created_at` descending, ties by hash descending).
//! * Time bounds are inclusive at both ends.
//! * Tag filters with an empty tag list match nothing.
//! * Result counts (`n`, `limit`, a list's `limit`) are `1..=MAX_RESULTS`.
//! * Memories returned by reads do not carry their embedding (`embedding: None`): vectors
//!   are the backend's business, and results stay small.

// `pub` is for other crates: an item no other crate can reach is `pub(crate)`.
#![warn(unreachable_pub)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use memory_core::{
    ContentHash, Memory, MemoryQueryResult, QueryDebugInfo, Tags, TimeRange, Timestamp,
    try_extract_time_expression,
};

pub mod backend;
mod error;
pub mod prepare;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{BoxError, StorageError, StorageResult};
use types::validate_limit;
pub use types::{
    CleanupReport, ConsistencyIssue, ConsistencyReport, DeleteReport, DeleteRequest,
    DeleteSelector, IssueKind, ListQuery, MAX_RESULTS, MemoryFilter, MemoryUpdate, RepairReport,
    SemanticQuery, StorageStats, StoreOutcome, TagCount, TagFilter, TagMatch,
};

/// A place to keep memories. Object-safe: servers hold an `Arc<dyn MemoryStorage>`.
#[async_trait]
pub trait MemoryStorage: Send + Sync + std::fmt::Debug {
    /// Short backend name for stats and logs (`sqlite`, `cloudflare`).
    fn backend_name(&self) -> &'static str;

    /// Prepares the backend (schema, model check). Idempotent; backends may also do it on open.
    async fn initialize(&self) -> StorageResult<()>;

    /// Stores one memory, embedding its content unless it carries an embedding.
    ///
    /// A carried embedding must have the store's dimensions and finite values, else
    /// [`StorageError::InvalidInput`] naming `embedding` (to import vectors of another model,
    /// drop them and let the store embed). A live memory with the same hash gives
    /// `Ok(`[`StoreOutcome::Duplicate`]`)` and changes nothing; a soft-deleted one is revived
    /// with every field of the new memory (content, tags, type, metadata, both timestamps)
    /// and gives [`StoreOutcome::Revived`]. Tags keep their order.
    async fn store(&self, memory: Memory) -> StorageResult<StoreOutcome>;

    /// Stores many memories, one outcome each in input order, with the outcomes of
    /// [`store`](Self::store): a memory whose hash is live already, or came earlier in the
    /// batch, is `Ok(`[`StoreOutcome::Duplicate`]`)`. The outer error is for the whole batch
    /// failing (backend down); an inner error is that memory's own failure (invalid input,
    /// or a write of it that failed).
    async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        let mut out = Vec::with_capacity(memories.len());
        for m in memories {
            out.push(self.store(m).await);
        }
        Ok(out)
    }

    /// Semantic search: the true top `query.limit` among memories matching `query.filter`,
    /// most similar first.
    async fn search(&self, query: &SemanticQuery) -> StorageResult<Vec<MemoryQueryResult>>;

    /// Upstream's `retrieve(query, n_results)`: the `n` memories closest in meaning.
    async fn retrieve(&self, query: &str, n: usize) -> StorageResult<Vec<MemoryQueryResult>> {
        self.search(&SemanticQuery::new(query, n)).await
    }

    /// Live memories matching `query.filter`, newest first, paged by offset and limit.
    async fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>>;

    /// Number of live memories matching `filter`.
    async fn count(&self, filter: &MemoryFilter) -> StorageResult<u64>;

    /// The live memory with this hash, if any.
    async fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>>;

    /// The stored embeddings of `hashes`, one entry per hash in input order (a hash given
    /// twice gets its vector twice; an empty input gives an empty output): `None` for a
    /// hash with no live memory (unknown or deleted), for a live memory whose stored vector
    /// is unusable (see [`check`](Self::check)), or when the backend cannot hand out its
    /// vectors (the default). `migrate` and `export --embeddings` use it to carry vectors to
    /// another store of the same model instead of embedding again.
    ///
    /// Vectors come back as the store keeps them: both backends keep unit-length vectors
    /// (cosine similarity is a dot product), so a carried embedding whose squared norm is
    /// within 1e-4 of 1 comes back bit for bit, and any other carried embedding comes back
    /// scaled to unit length. Model outputs are stored scaled the same way.
    ///
    /// * SQLite reads the embedding blobs in one query per 500 hashes.
    /// * Cloudflare checks which hashes are live in one D1 query per 500 hashes, then reads
    ///   their vectors with Vectorize `get_by_ids`, 20 ids per call.
    async fn get_embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        Ok(vec![None; hashes.len()])
    }

    /// Memories carrying any of `tags`, newest first (upstream's OR semantics).
    async fn search_by_tag(&self, tags: &Tags) -> StorageResult<Vec<Memory>> {
        self.search_by_tags(&TagFilter::any(tags.clone()), None)
            .await
    }

    /// Memories matching a tag condition (any/all), optionally created within `time`.
    async fn search_by_tags(
        &self,
        tags: &TagFilter,
        time: Option<TimeRange>,
    ) -> StorageResult<Vec<Memory>> {
        let filter = MemoryFilter {
            tags: Some(tags.clone()),
            memory_type: None,
            time,
        };
        self.list(&ListQuery::all(filter)).await
    }

    /// Memories created within `[start, end]` (inclusive), newest first.
    async fn get_memories_by_time_range(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> StorageResult<Vec<Memory>> {
        if start > end {
            return Err(StorageError::invalid(
                "start",
                format!("start ({start}) is later than end ({end})"),
            ));
        }
        self.list(&ListQuery::all(
            MemoryFilter::all().with_time(TimeRange { start, end }),
        ))
        .await
    }

    /// The `n` newest memories.
    async fn get_recent_memories(&self, n: usize) -> StorageResult<Vec<Memory>> {
        validate_limit("n", n)?;
        self.list(&ListQuery {
            filter: MemoryFilter::all(),
            offset: 0,
            limit: Some(n),
        })
        .await
    }

    /// Soft-deletes one memory. Unknown or already deleted: [`StorageError::NotFound`].
    ///
    /// Once the memory is deleted this returns `Ok` with `hashes = [hash]`, even when some
    /// clean-up behind it failed (a backend's vector or object delete): those leftovers are
    /// listed in [`DeleteReport::cleanup_pending`], and `check` / `repair` find and remove
    /// them. An `Err` means the memory was not deleted.
    async fn delete(&self, hash: &ContentHash) -> StorageResult<DeleteReport>;

    /// Soft-deletes every memory carrying `tag`; returns how many.
    async fn delete_by_tag(&self, tag: &str) -> StorageResult<usize> {
        let tags = Tags::parse(vec![tag.to_owned()])?;
        if tags.is_empty() {
            return Err(StorageError::invalid("tag", "must not be empty"));
        }
        let report = self
            .delete_memories(&DeleteRequest {
                selector: DeleteSelector {
                    tags: Some(TagFilter::any(tags)),
                    ..DeleteSelector::default()
                },
                dry_run: false,
            })
            .await?;
        Ok(report.hashes.len())
    }

    /// Soft-deletes every memory the selector matches (or only reports them on a dry run).
    async fn delete_memories(&self, request: &DeleteRequest) -> StorageResult<DeleteReport>;

    /// Finds live memories whose content normalises to the same text (rows stored under an
    /// older hashing rule), keeps the oldest of each group with the union of their tags, and
    /// deletes the rest.
    async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport>;

    /// Changes tags, type or metadata (merged) of a live memory and returns it as stored.
    ///
    /// `updated_at` becomes now. With `preserve_timestamps`, `created_at` is kept; without,
    /// `created_at` becomes `updates.created_at` if given, else now.
    async fn update_memory_metadata(
        &self,
        hash: &ContentHash,
        updates: MemoryUpdate,
        preserve_timestamps: bool,
    ) -> StorageResult<Memory>;

    /// Figures about the store.
    async fn get_stats(&self) -> StorageResult<StorageStats>;

    /// Every tag on a live memory with its count, most used first, then alphabetically.
    async fn get_all_tags(&self) -> StorageResult<Vec<TagCount>>;

    /// Permanently removes soft-deleted memories deleted at or before `older_than`
    /// (all of them when `None`); returns how many.
    async fn purge_deleted(&self, older_than: Option<Timestamp>) -> StorageResult<u64>;

    /// Compares the parts of the store that must agree (rows and vectors, tag links, the
    /// search index, objects kept elsewhere) and reports every disagreement. Changes
    /// nothing. Required of every backend: none may claim consistency it did not check.
    ///
    /// Costs one pass over every live memory (SQLite: plus `PRAGMA integrity_check`;
    /// Cloudflare: one D1 query, Vectorize list calls, R2 list calls).
    async fn check(&self) -> StorageResult<ConsistencyReport>;

    /// Fixes what [`check`](Self::check) finds, as far as the backend can (re-embedding
    /// memories whose vector is missing or unusable, deleting strays, rebuilding tag links
    /// and indexes), then checks again: [`RepairReport::remaining`] is what that second
    /// check still finds. On a consistent store it changes nothing and fixes 0.
    ///
    /// # Errors
    ///
    /// The first failing call's error; what was repaired before it stays repaired.
    async fn repair(&self) -> StorageResult<RepairReport>;

    /// Waits until every write this store made is visible to every reader, other processes
    /// included, for at most the backend's own bound; returns whether it is. Readers in the
    /// same process see a store's writes at once on every backend; a backend whose search
    /// index applies writes later (Cloudflare's Vectorize: "typically within a few
    /// seconds") waits here, so a one-shot command can end with its writes searchable.
    /// Default: nothing to wait for.
    async fn settle(&self) -> StorageResult<bool> {
        Ok(true)
    }

    /// Gets ready to serve at full speed, e.g. loads and runs a local embedding model, so
    /// the first search does not pay for it. A server calls it in the background right after
    /// it starts; nothing waits for it. Default: nothing to do.
    async fn warm_up(&self) -> StorageResult<()> {
        Ok(())
    }

    /// Upstream's `recall_memory`: a query that may hold a time expression ("what did I
    /// note about the release last week"). See [`recall_memory_at`](Self::recall_memory_at).
    async fn recall_memory(&self, query: &str, n: usize) -> StorageResult<Vec<MemoryQueryResult>> {
        self.recall_memory_at(query, n, Utc::now()).await
    }

    /// [`recall_memory`](Self::recall_memory) relative to `now`.
    ///
    /// The time expression restricts `created_at`; the rest of the query, if any, ranks by
    /// meaning. A query that is only a time expression returns the newest memories of that
    /// range with relevance `1.0`. A query with no time expression is a plain semantic search.
    async fn recall_memory_at(
        &self,
        query: &str,
        n: usize,
        now: DateTime<Utc>,
    ) -> StorageResult<Vec<MemoryQueryResult>> {
        validate_limit("n", n)?;
        if query.trim().is_empty() {
            return Err(StorageError::invalid("query", "must not be empty"));
        }
        // A time the words name but the calendar cannot hold is refused, not searched for
        // as text: the caller asked for a time and would silently get none.
        let (rest, range) = try_extract_time_expression(query, now)
            .map_err(|e| StorageError::invalid("query", e.to_string()))?;
        let Some(range) = range else {
            return self.search(&SemanticQuery::new(query, n)).await;
        };
        if rest.trim().is_empty() {
            let memories = self
                .list(&ListQuery {
                    filter: MemoryFilter::all().with_time(range),
                    offset: 0,
                    limit: Some(n),
                })
                .await?;
            return Ok(memories
                .into_iter()
                .map(|memory| MemoryQueryResult {
                    memory,
                    relevance_score: 1.0,
                    debug_info: Some(QueryDebugInfo {
                        method: "time".into(),
                        ..QueryDebugInfo::default()
                    }),
                })
                .collect());
        }
        self.search(&SemanticQuery::new(rest, n).with_filter(MemoryFilter::all().with_time(range)))
            .await
    }
}
