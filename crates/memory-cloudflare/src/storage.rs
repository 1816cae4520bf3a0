//! [`CloudflareStorage`]: the [`MemoryStorage`] implementation on D1, Vectorize, R2 and an
//! embedder.
//!
//! Rows and tags live in D1 (upstream's tables, see [`crate::schema`]), one vector per
//! memory in Vectorize, content over the large-content threshold in R2. Every read goes
//! through D1 and excludes soft-deleted rows, so D1 is the source of truth; Vectorize only
//! ranks.
//!
//! # Request budget
//! * `store`: embed (none on a cache hit or with a supplied embedding), then the D1 batch
//!   and the Vectorize upsert in parallel: 2 requests on the critical path. A live
//!   duplicate costs one more upsert (restoring the existing memory's vector metadata).
//! * `search`: embed, one Vectorize query (topK 100), one D1 query. When a filter leaves
//!   fewer than `limit` of the 100 and Vectorize returned a full page, the **exact path**
//!   runs: D1 lists the vector ids of every matching memory, their vectors are fetched
//!   with `get_by_ids` in chunks of [`GET_BY_IDS_CHUNK`], ranked locally by cosine, and the
//!   top rows are read — so a filtered search always returns the true top `limit`.
//! * `list`, `count`, `get_by_hash`, tag and time queries, `get_all_tags`: one D1 query
//!   (plus one R2 GET per large memory returned, in parallel).
//! * `delete`: the D1 update and the vector delete in parallel (+ the R2 delete).
//!
//! # Failures between the writes
//! A store never fails silently half-way: when D1 committed but Vectorize failed, the row
//! is removed again (or re-tombstoned when it was revived) and the Vectorize error is
//! returned; when Vectorize wrote but D1 failed, the vector is deleted unless the memory
//! is live. If the compensation fails too, the error says so and that [`check`] and
//! [`repair`] fix it.
//!
//! [`check`]: CloudflareStorage::check
//! [`repair`]: CloudflareStorage::repair

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use cloudflare_d1::{D1Api, Param, QueryResult, Statement};
use cloudflare_r2::{DeleteObject, GetObject, PutObject, R2Api};
use cloudflare_vectorize::{
    CreateIndex, IndexApi, MAX_METADATA_BYTES, Metric, QueryVectors, ReturnMetadata, Vector,
    VectorizeApi, VectorizeError,
};
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use memory_core::{
    ContentHash, Memory, MemoryQueryResult, QueryDebugInfo, Tags, Timestamp, limits,
};
use memory_embed::Embedder;
use memory_storage::{
    CleanupReport, DeleteReport, DeleteRequest, ListQuery, MemoryFilter, MemoryStorage,
    MemoryUpdate, SemanticQuery, StorageError, StorageResult, StorageStats, StoreOutcome, TagCount,
    validate_limit,
};
use serde_json::{Map, Value, json};

use crate::error_map::{BACKEND, bad_row, d1_error, embed_error, r2_error, vectorize_error};
use crate::namespace::Namespace;
use crate::rows::{
    EMBED_PREFIX_CHARS, PREVIEW_CHARS, StoredRow, count, dot, epoch_text, json_strings,
    prefix_chars, real, row_columns, text, unit_vector, vector_id,
};
use crate::schema::{SCHEMA_VERSION, Tables, meta_keys};
use crate::sql::{Conditions, RowValues, link_statements, now_text, store_statements};

/// Vectors fetched per `get_by_ids` call on the exact search path (Cloudflare's observed
/// cap, and the emulator's).
pub const GET_BY_IDS_CHUNK: usize = 20;

/// Hashes per D1 query of `get_embeddings` (each query's hashes then go to Vectorize in
/// `get_by_ids` calls of [`GET_BY_IDS_CHUNK`]).
pub const GET_EMBEDDINGS_D1_CHUNK: usize = 500;

/// The topK of every semantic query: the most Vectorize returns without values or metadata.
pub const QUERY_TOP_K: u32 = 100;

/// Default large-content threshold: 1 MiB (`CLOUDFLARE_LARGE_CONTENT_THRESHOLD`).
pub const DEFAULT_LARGE_CONTENT_THRESHOLD: usize = 1024 * 1024;

/// Memories per D1 batch in `store_batch` (6 statements each).
pub const STORE_BATCH_CHUNK: usize = 50;

/// Ids per Vectorize `delete_by_ids` call.
pub const DELETE_IDS_CHUNK: usize = 1000;

/// Requests sent at once when many independent calls are needed (R2 reads, vector chunks).
const PARALLEL_CALLS: usize = 6;

/// The vector metadata key carrying the id of the store that wrote the vector (see
/// [`CloudflareStorage::store_id`]).
pub const STORE_ID_METADATA: &str = "store_id";

/// The metadata key marking a memory whose content was in an R2 object that is missing.
///
/// In lists and searches such a memory comes back with the excerpt its row keeps (the
/// first [`PREVIEW_CHARS`] characters) as content and this key in its metadata, holding the
/// R2 key and the hash of the lost content, so one lost object costs one memory, not every
/// read. After `repair` the memory keeps the excerpt for good, re-keyed under its hash, and
/// this key records the original hash and length.
pub const MISSING_CONTENT_METADATA: &str = "content_missing";

/// The vector metadata key set to `true` when some tags were left out of the vector's
/// metadata to stay under Vectorize's [`MAX_METADATA_BYTES`] (D1 keeps them all).
pub const TAGS_TRUNCATED_METADATA: &str = "tags_truncated";

/// The collaborators of a [`CloudflareStorage`], each behind an object-safe trait.
#[derive(Clone)]
pub struct Parts {
    /// The D1 database holding rows and tags.
    pub d1: Arc<dyn D1Api>,
    /// The Vectorize index holding one vector per memory.
    pub vectorize: Arc<dyn IndexApi>,
    /// Index management, used by `initialize` to create the index if missing and check its
    /// dimensions; `None` = the index must exist (its dimensions are checked via `info`).
    pub vectorize_admin: Option<Arc<dyn VectorizeApi>>,
    /// The index's name.
    pub index_name: String,
    /// The R2 bucket for large content; `None` = content over the threshold is refused.
    pub r2: Option<Arc<dyn R2Api>>,
    /// Turns texts into vectors (production: Workers AI behind an LRU cache).
    pub embedder: Arc<dyn Embedder>,
    /// The request accounting of the shared HTTP client, if any.
    pub accounting: Option<cloudflare_http::Accounting>,
}

impl fmt::Debug for Parts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parts")
            .field("index_name", &self.index_name)
            .field("r2", &self.r2.is_some())
            .field("embedder", &self.embedder.model_id())
            .finish_non_exhaustive()
    }
}

/// Settings of a [`CloudflareStorage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Tenant separating this store from others on the same database, index and bucket.
    pub namespace: Option<Namespace>,
    /// Content longer than this many bytes goes to R2 (`CLOUDFLARE_LARGE_CONTENT_THRESHOLD`).
    pub large_content_threshold: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: None,
            large_content_threshold: DEFAULT_LARGE_CONTENT_THRESHOLD,
        }
    }
}

/// The Cloudflare backend. Cheap to clone (clones share the clients).
#[derive(Clone)]
pub struct CloudflareStorage {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) parts: Parts,
    pub(crate) options: Options,
    pub(crate) tables: Tables,
    pub(crate) columns: String,
    pub(crate) model: String,
    pub(crate) dims: usize,
    /// This store's identity, read from (or first recorded in) D1 by `initialize`.
    pub(crate) store_id: OnceLock<String>,
}

impl fmt::Debug for CloudflareStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("CloudflareStorage")
            .field("index", &i.parts.index_name)
            .field("namespace", &i.options.namespace)
            .field("model", &i.model)
            .field("dimensions", &i.dims)
            .field("r2", &i.parts.r2.is_some())
            .finish_non_exhaustive()
    }
}

/// A memory checked for storing, with its vector once known.
struct Prepared {
    memory: Memory,
    vector: Option<Vec<f32>>,
}

/// The state of a row before a store's batch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PreState {
    Absent,
    Tombstone(f64),
    Live,
}

/// Outcome of one memory's statements in a store batch.
struct Written {
    pre: PreState,
    post: Option<StoredRow>,
}

impl CloudflareStorage {
    /// A store over `parts`. Call [`initialize`](MemoryStorage::initialize) before use.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] when the embedder reports 0 dimensions or the
    /// threshold is 0.
    pub fn from_parts(parts: Parts, options: Options) -> StorageResult<Self> {
        let dims = parts.embedder.dimensions();
        if dims == 0 {
            return Err(StorageError::invalid(
                "embedder",
                format!("model {} reports 0 dimensions", parts.embedder.model_id()),
            ));
        }
        if options.large_content_threshold == 0 {
            return Err(StorageError::invalid(
                "large_content_threshold",
                "must be at least 1 byte (CLOUDFLARE_LARGE_CONTENT_THRESHOLD)",
            ));
        }
        let tables = Tables::new(options.namespace.as_ref().map(Namespace::as_str));
        let columns = row_columns(&tables.memory_tags, &tables.tags);
        let model = parts.embedder.model_id().to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                parts,
                options,
                tables,
                columns,
                model,
                dims,
                store_id: OnceLock::new(),
            }),
        })
    }

    /// The request accounting of the shared HTTP client (`None` when built without one).
    #[must_use]
    pub fn accounting(&self) -> Option<&cloudflare_http::Accounting> {
        self.inner.parts.accounting.as_ref()
    }

    /// The namespace, if any.
    #[must_use]
    pub fn namespace(&self) -> Option<&Namespace> {
        self.inner.options.namespace.as_ref()
    }

    /// The D1 table names in use.
    #[must_use]
    pub fn tables(&self) -> &Tables {
        &self.inner.tables
    }

    /// The embedder.
    #[must_use]
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.inner.parts.embedder
    }

    /// This store's identity (`None` before [`initialize`](MemoryStorage::initialize)): a
    /// random id recorded in its D1 meta table the first time it is initialised. Every
    /// vector it writes carries it in the metadata key [`STORE_ID_METADATA`], and its R2
    /// keys are `[namespace/]memories/<store id>/<hash>`, so two stores sharing a Vectorize
    /// index and an R2 bucket (different D1 databases, no namespace) can tell their own
    /// leftovers from the other's: `repair` deletes only what this store wrote.
    #[must_use]
    pub fn store_id(&self) -> Option<&str> {
        self.inner.store_id.get().map(String::as_str)
    }
}

impl Inner {
    pub(crate) fn ns(&self) -> Option<&str> {
        self.options.namespace.as_ref().map(Namespace::as_str)
    }

    pub(crate) fn vector_id(&self, hash: &ContentHash) -> String {
        vector_id(self.ns(), hash)
    }

    pub(crate) fn r2_key(&self, hash: &ContentHash) -> String {
        format!("{}{}", self.r2_store_prefix(), hash.as_str())
    }

    /// The prefix of the R2 keys this store writes: [`r2_prefix`](Self::r2_prefix) and the
    /// store id (just the former before `initialize`, and in rows written by older
    /// versions).
    pub(crate) fn r2_store_prefix(&self) -> String {
        match self.store_id.get() {
            Some(id) => format!("{}{id}/", self.r2_prefix()),
            None => self.r2_prefix(),
        }
    }

    pub(crate) fn r2_prefix(&self) -> String {
        match self.ns() {
            Some(ns) => format!("{ns}/memories/"),
            None => "memories/".into(),
        }
    }

    pub(crate) async fn query(&self, action: &str, s: Statement) -> StorageResult<QueryResult> {
        self.parts
            .d1
            .query(s)
            .await
            .map_err(|e| d1_error(action, e))
    }

    pub(crate) async fn batch(
        &self,
        action: &str,
        s: Vec<Statement>,
    ) -> StorageResult<Vec<QueryResult>> {
        self.parts
            .d1
            .batch(s)
            .await
            .map_err(|e| d1_error(action, e))
    }

    /// Embeds `texts` (each cut to its first [`EMBED_PREFIX_CHARS`] characters) in one
    /// call, checking what the model returns.
    pub(crate) async fn embed(&self, texts: &[&str]) -> StorageResult<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let owned: Vec<String> = texts
            .iter()
            .map(|t| prefix_chars(t, EMBED_PREFIX_CHARS).to_owned())
            .collect();
        let vectors = self
            .parts
            .embedder
            .embed(&owned)
            .await
            .map_err(|e| embed_error(&self.model, owned.len(), e))?;
        if vectors.len() != owned.len() {
            return Err(StorageError::Embedding {
                message: format!(
                    "model {} returned {} vectors for {} texts; the embedder is broken",
                    self.model,
                    vectors.len(),
                    owned.len()
                ),
                source: None,
            });
        }
        vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                unit_vector(v, self.dims).map_err(|problem| StorageError::Embedding {
                    message: format!(
                        "model {} returned an unusable vector for text {i}: it {problem}",
                        self.model
                    ),
                    source: None,
                })
            })
            .collect()
    }

    async fn embed_one(&self, text: &str) -> StorageResult<Vec<f32>> {
        self.embed(&[text])
            .await?
            .pop()
            .ok_or_else(|| StorageError::Embedding {
                message: format!("model {} returned no vector", self.model),
                source: None,
            })
    }

    fn prepare(&self, memory: Memory) -> StorageResult<Prepared> {
        let memory_storage::prepare::Prepared { memory, vector } =
            memory_storage::prepare::prepare_memory(memory, self.dims)?;
        if memory.content().len() > self.options.large_content_threshold && self.parts.r2.is_none()
        {
            return Err(StorageError::invalid(
                "content",
                format!(
                    "{} bytes is over the large-content threshold of {} bytes and no R2 \
                     bucket is configured; set CLOUDFLARE_R2_BUCKET, or raise \
                     CLOUDFLARE_LARGE_CONTENT_THRESHOLD (D1 stores at most 2,000,000 bytes \
                     per value)",
                    memory.content().len(),
                    self.options.large_content_threshold
                ),
            ));
        }
        Ok(Prepared { memory, vector })
    }

    fn is_large(&self, memory: &Memory) -> bool {
        memory.content().len() > self.options.large_content_threshold
    }

    /// The Vectorize metadata of a memory: upstream's keys (`content_hash`, `memory_type`,
    /// `tags`, `created_at`) and this store's id, always within [`MAX_METADATA_BYTES`].
    fn vector_metadata(&self, memory: &Memory) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("content_hash".into(), memory.content_hash().as_str().into());
        if let Some(id) = self.store_id.get() {
            m.insert(STORE_ID_METADATA.into(), id.clone().into());
        }
        if let Some(t) = &memory.memory_type {
            m.insert("memory_type".into(), t.clone().into());
        }
        m.insert("tags".into(), memory.tags.joined().into());
        m.insert(
            "created_at".into(),
            json!(memory.created_at.epoch_seconds()),
        );
        fit_metadata(&mut m, &memory.tags);
        m
    }

    pub(crate) fn vector(&self, memory: &Memory, values: Vec<f32>) -> Vector {
        let v = Vector::new(self.vector_id(memory.content_hash()), values)
            .with_metadata(self.vector_metadata(memory));
        match self.ns() {
            Some(ns) => v.with_namespace(ns),
            None => v,
        }
    }

    pub(crate) async fn upsert(&self, action: &str, vectors: Vec<Vector>) -> StorageResult<()> {
        if vectors.is_empty() {
            return Ok(());
        }
        self.parts
            .vectorize
            .upsert(vectors)
            .await
            .map(|_| ())
            .map_err(|e| vectorize_error(action, e))
    }

    pub(crate) async fn delete_vectors(&self, action: &str, ids: Vec<String>) -> StorageResult<()> {
        let chunks: Vec<Vec<String>> = ids
            .chunks(DELETE_IDS_CHUNK)
            .map(<[String]>::to_vec)
            .collect();
        for chunk in chunks {
            self.parts
                .vectorize
                .delete_by_ids(chunk)
                .await
                .map_err(|e| vectorize_error(action, e))?;
        }
        Ok(())
    }

    pub(crate) async fn delete_r2(&self, action: &str, keys: Vec<String>) -> StorageResult<()> {
        let Some(r2) = &self.parts.r2 else {
            return Ok(());
        };
        futures::stream::iter(keys)
            .map(|k| async move {
                r2.delete_object(DeleteObject::new(k))
                    .await
                    .map(|_| ())
                    .map_err(|e| r2_error(action, e))
            })
            .buffer_unordered(PARALLEL_CALLS)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Deletes vectors of memories already deleted in D1, in chunks; returns one entry per
    /// vector left behind, naming it and the error (a [`DeleteReport::cleanup_pending`]
    /// list). Never fails: the memories are gone, and `check` finds what is left.
    pub(crate) async fn delete_vectors_pending(
        &self,
        action: &str,
        ids: Vec<String>,
    ) -> Vec<String> {
        let mut pending = Vec::new();
        for chunk in ids.chunks(DELETE_IDS_CHUNK) {
            if let Err(e) = self.parts.vectorize.delete_by_ids(chunk.to_vec()).await {
                let e = vectorize_error(action, e);
                tracing::warn!(error = %e, vectors = chunk.len(), "deleting vectors failed; `check` reports them and `repair` removes them");
                pending.extend(chunk.iter().map(|id| format!("vector {id}: {e}")));
            }
        }
        pending
    }

    /// Deletes R2 objects of memories already deleted in D1; returns one entry per object
    /// left behind, naming its key and the error. Never fails, as
    /// [`delete_vectors_pending`](Self::delete_vectors_pending).
    pub(crate) async fn delete_r2_pending(&self, action: &str, keys: Vec<String>) -> Vec<String> {
        let Some(r2) = &self.parts.r2 else {
            return Vec::new();
        };
        futures::stream::iter(keys)
            .map(|k| async move {
                match r2.delete_object(DeleteObject::new(k.clone())).await {
                    Ok(_) => None,
                    Err(e) => {
                        let e = r2_error(action, e);
                        tracing::warn!(error = %e, key = %k, "deleting an R2 object failed; `check` reports it and `repair` removes it");
                        Some(format!("R2 object {k}: {e}"))
                    }
                }
            })
            .buffer_unordered(PARALLEL_CALLS)
            .filter_map(|p| async move { p })
            .collect()
            .await
    }

    /// Rows of a query result selected with the row columns.
    fn rows(result: &QueryResult) -> StorageResult<Vec<StoredRow>> {
        result.rows.iter().map(StoredRow::from_row).collect()
    }

    /// Replaces the preview of every row whose content is in R2 by the content. A missing
    /// object does not fail the whole read: that memory keeps its excerpt and is marked
    /// with [`MISSING_CONTENT_METADATA`] (see [`hydrate_strict`](Self::hydrate_strict) for
    /// reads of one memory).
    pub(crate) async fn hydrate(&self, rows: Vec<StoredRow>) -> StorageResult<Vec<Memory>> {
        self.hydrate_with(rows, false).await
    }

    /// As [`hydrate`](Self::hydrate), but a missing object is an error naming the memory
    /// and the key: a caller asking for one memory must not take its excerpt for it.
    pub(crate) async fn hydrate_strict(&self, rows: Vec<StoredRow>) -> StorageResult<Vec<Memory>> {
        self.hydrate_with(rows, true).await
    }

    async fn hydrate_with(&self, rows: Vec<StoredRow>, strict: bool) -> StorageResult<Vec<Memory>> {
        let fetch = rows.into_iter().map(|row| async move {
            let Some(key) = row.r2_key.clone() else {
                return Ok(row.memory);
            };
            let Some(r2) = &self.parts.r2 else {
                return Err(StorageError::Backend {
                    backend: BACKEND.into(),
                    message: format!(
                        "memory {} keeps its content in R2 ({key}) but no R2 bucket is \
                         configured; set CLOUDFLARE_R2_BUCKET",
                        row.memory.content_hash()
                    ),
                    source: None,
                });
            };
            let object = match r2.get_object(GetObject::new(key.clone())).await {
                Ok(o) => o,
                Err(cloudflare_r2::R2Error::NotFound { .. }) if !strict => {
                    let hash = row.memory.content_hash().clone();
                    tracing::warn!(%hash, %key, "a memory's R2 object is missing; returning its stored excerpt; run check and repair");
                    let mut m = row.memory;
                    m.metadata.insert(
                        MISSING_CONTENT_METADATA,
                        json!({
                            "r2_key": key,
                            "original_hash": hash.as_str(),
                            "note": format!(
                                "the full content is lost (its R2 object is missing); this is \
                                 the stored excerpt of its first {PREVIEW_CHARS} characters; \
                                 `repair` keeps it as the memory's content"
                            ),
                        }),
                    );
                    return Ok(m);
                }
                Err(e @ cloudflare_r2::R2Error::NotFound { .. }) => {
                    return Err(StorageError::Backend {
                        backend: BACKEND.into(),
                        message: format!(
                            "memory {} keeps its content in the R2 object {key}, which is \
                             missing; only its first {PREVIEW_CHARS} characters are left (in \
                             D1): run `check` and `repair`, which keeps the memory with that \
                             excerpt",
                            row.memory.content_hash()
                        ),
                        source: Some(Box::new(e)),
                    });
                }
                Err(e) => return Err(r2_error("reading large content", e)),
            };
            let content = String::from_utf8(object.body.to_vec())
                .map_err(|_| bad_row(format!("the R2 object {key} is not UTF-8 text")))?;
            let m = row.memory;
            Ok(Memory::from_parts(
                content,
                m.content_hash().clone(),
                m.tags,
                m.memory_type,
                m.metadata,
                None,
                m.created_at,
                m.updated_at,
            ))
        });
        try_join_all(fetch).await
    }

    fn select(&self, cond: &str) -> String {
        format!(
            "SELECT {} FROM {} m WHERE {cond}",
            self.columns, self.tables.memories
        )
    }

    fn pre_state(result: &QueryResult) -> PreState {
        match result.rows.first() {
            None => PreState::Absent,
            Some(r) => match real(r, "deleted_at") {
                Some(at) => PreState::Tombstone(at),
                None => PreState::Live,
            },
        }
    }

    /// Reads the per-memory outcome from a store batch's 6 results at `offset`.
    fn written(results: &[QueryResult], offset: usize) -> StorageResult<Written> {
        let pre = results
            .get(offset)
            .map(Self::pre_state)
            .ok_or_else(|| bad_row("D1 returned fewer results than statements"))?;
        let post = results
            .get(offset + 5)
            .and_then(|r| r.rows.first())
            .map(StoredRow::from_row)
            .transpose()?;
        Ok(Written { pre, post })
    }

    /// Undoes the D1 side of stores whose vectors could not be written: new rows are
    /// removed, revived rows re-tombstoned.
    async fn compensate(&self, items: &[(&ContentHash, PreState)]) -> StorageResult<()> {
        let (m, mt) = (&self.tables.memories, &self.tables.memory_tags);
        let mut statements = Vec::new();
        for (hash, pre) in items {
            match pre {
                PreState::Absent => {
                    statements.push(
                        Statement::new(format!(
                            "DELETE FROM {mt} WHERE memory_id IN \
                             (SELECT id FROM {m} WHERE content_hash = ?)"
                        ))
                        .bind(hash.as_str())
                        .idempotent(true),
                    );
                    statements.push(
                        Statement::new(format!("DELETE FROM {m} WHERE content_hash = ?"))
                            .bind(hash.as_str())
                            .idempotent(true),
                    );
                }
                PreState::Tombstone(at) => statements.push(
                    Statement::new(format!(
                        "UPDATE {m} SET deleted_at = CAST(? AS REAL) WHERE content_hash = ?"
                    ))
                    .bind(Param::Real(*at))
                    .bind(hash.as_str())
                    .idempotent(true),
                ),
                PreState::Live => {}
            }
        }
        if statements.is_empty() {
            return Ok(());
        }
        self.batch(
            "undoing a store whose vector could not be written",
            statements,
        )
        .await
        .map(|_| ())
    }

    /// Which of `hashes` are live.
    async fn live_hashes(&self, hashes: &[&str]) -> StorageResult<HashSet<String>> {
        if hashes.is_empty() {
            return Ok(HashSet::new());
        }
        let r = self
            .query(
                "looking up memories",
                Statement::new(format!(
                    "SELECT content_hash FROM {} WHERE deleted_at IS NULL AND content_hash IN \
                     (SELECT value FROM json_each(?))",
                    self.tables.memories
                ))
                .bind(json_strings(hashes.iter().copied()))
                .idempotent(true),
            )
            .await?;
        Ok(r.rows
            .iter()
            .filter_map(|r| text(r, "content_hash"))
            .collect())
    }

    /// After a D1 failure with vectors written: deletes the vectors of memories that are
    /// not live. Returns whether that clean-up worked.
    async fn undo_vectors(&self, hashes: &[&ContentHash]) -> bool {
        let refs: Vec<&str> = hashes.iter().map(|h| h.as_str()).collect();
        let live = match self.live_hashes(&refs).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell which vectors to remove after a failed D1 write; run repair");
                return false;
            }
        };
        let ids: Vec<String> = hashes
            .iter()
            .filter(|h| !live.contains(h.as_str()))
            .map(|h| self.vector_id(h))
            .collect();
        if ids.is_empty() {
            return true;
        }
        match self
            .delete_vectors("removing vectors after a failed D1 write", ids)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "removing vectors after a failed D1 write failed; run repair");
                false
            }
        }
    }
}

/// Size of metadata as Vectorize counts it (compact JSON).
fn metadata_bytes(m: &Map<String, Value>) -> usize {
    serde_json::to_vec(m).map_or(usize::MAX, |v| v.len())
}

/// Keeps vector metadata within Vectorize's [`MAX_METADATA_BYTES`]: the core accepts 100
/// tags of 100 characters (up to 40 KB of UTF-8), more than a vector may carry. D1 is the
/// truth and every tag filter runs there, so the vector only needs what fits: tags are
/// dropped from the end until it does, and [`TAGS_TRUNCATED_METADATA`] says so. (Whole
/// tags, so no half tag is ever mistaken for a real one; the memory type goes last, and
/// only if the rest is somehow still too big.)
fn fit_metadata(m: &mut Map<String, Value>, tags: &Tags) {
    if metadata_bytes(m) <= MAX_METADATA_BYTES {
        return;
    }
    m.insert(TAGS_TRUNCATED_METADATA.into(), Value::Bool(true));
    let all: Vec<&str> = tags.iter().map(String::as_str).collect();
    for keep in (0..all.len()).rev() {
        m.insert("tags".into(), all[..keep].join(",").into());
        if metadata_bytes(m) <= MAX_METADATA_BYTES {
            return;
        }
    }
    m.remove("memory_type");
}

/// The error returned when both a write and its compensation failed.
fn half_written(original: StorageError, compensation: &StorageError) -> StorageError {
    tracing::warn!(error = %original, compensation = %compensation, "a store failed half-way and could not be undone");
    let message = format!(
        "{original}; undoing the other half also failed ({compensation}), so D1 and \
         Vectorize may disagree about this memory: run `check` and `repair` \
         (CloudflareStorage::check / repair) to fix it"
    );
    StorageError::Unavailable {
        backend: BACKEND.into(),
        message,
        source: Some(Box::new(original)),
    }
}

/// The error returned after a successful compensation: nothing was stored.
fn nothing_stored(original: StorageError) -> StorageError {
    match original {
        StorageError::Unavailable {
            backend,
            message,
            source,
        } => StorageError::Unavailable {
            backend,
            message: format!("{message}; nothing was stored"),
            source,
        },
        StorageError::Backend {
            backend,
            message,
            source,
        } => StorageError::Backend {
            backend,
            message: format!("{message}; nothing was stored"),
            source,
        },
        other => other,
    }
}

#[async_trait]
impl MemoryStorage for CloudflareStorage {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn initialize(&self) -> StorageResult<()> {
        self.inner.initialize().await
    }

    async fn store(&self, memory: Memory) -> StorageResult<StoreOutcome> {
        let i = &*self.inner;
        let Prepared { memory, vector } = i.prepare(memory)?;
        let values = match vector {
            Some(v) => v,
            None => i.embed_one(memory.content()).await?,
        };
        let hash = memory.content_hash().clone();
        let large = i.is_large(&memory);
        let r2_key = large.then(|| i.r2_key(&hash));
        if let (Some(key), Some(r2)) = (&r2_key, &i.parts.r2) {
            r2.put_object(PutObject::new(
                key.clone(),
                memory.content().as_bytes().to_vec(),
            ))
            .await
            .map_err(|e| r2_error("uploading large content (nothing was stored)", e))?;
        }
        let vid = i.vector_id(&hash);
        let content = if large {
            prefix_chars(memory.content(), PREVIEW_CHARS)
        } else {
            memory.content()
        };
        let statements = store_statements(
            &i.tables,
            &RowValues {
                memory: &memory,
                content,
                vector_id: &vid,
                r2_key: r2_key.as_deref(),
            },
            &i.columns,
        );
        let vector = i.vector(&memory, values.clone());
        let (d1, vz) = tokio::join!(
            i.batch("storing a memory", statements),
            i.upsert("writing a memory's vector", vec![vector])
        );
        let d1 = d1.and_then(|r| Inner::written(&r, 0));
        match (d1, vz) {
            (Ok(w), Ok(())) => match w.pre {
                PreState::Live => {
                    if let Some(existing) = w.post
                        && i.vector_metadata(&existing.memory) != i.vector_metadata(&memory)
                    {
                        let v = i.vector(&existing.memory, values);
                        if let Err(e) = i
                            .upsert("restoring a duplicate's vector metadata", vec![v])
                            .await
                        {
                            tracing::warn!(error = %e, hash = %hash, "restoring the vector metadata of a duplicate failed; run repair");
                        }
                    }
                    Err(StorageError::Duplicate { hash })
                }
                PreState::Absent => Ok(StoreOutcome::Stored),
                PreState::Tombstone(_) => Ok(StoreOutcome::Revived),
            },
            (Ok(w), Err(vz_err)) => {
                if w.pre == PreState::Live {
                    return Err(StorageError::Duplicate { hash });
                }
                match i.compensate(&[(&hash, w.pre)]).await {
                    Ok(()) => {
                        if let Some(k) = r2_key
                            && w.pre == PreState::Absent
                        {
                            let _ = i
                                .delete_r2("removing large content of a failed store", vec![k])
                                .await;
                        }
                        Err(nothing_stored(vz_err))
                    }
                    Err(c) => Err(half_written(vz_err, &c)),
                }
            }
            (Err(d1_err), Ok(())) => {
                if i.undo_vectors(&[&hash]).await {
                    Err(nothing_stored(d1_err))
                } else {
                    let c = StorageError::invalid("vector", "could not be removed");
                    Err(half_written(d1_err, &c))
                }
            }
            (Err(d1_err), Err(_)) => Err(d1_err),
        }
    }

    async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        self.inner.store_batch(memories).await
    }

    async fn search(&self, query: &SemanticQuery) -> StorageResult<Vec<MemoryQueryResult>> {
        query.validate()?;
        if query
            .filter
            .tags
            .as_ref()
            .is_some_and(|t| t.tags.is_empty())
        {
            return Ok(Vec::new());
        }
        let vector = self.inner.embed_one(&query.text).await?;
        self.inner.search(query, vector).await
    }

    async fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>> {
        if let Some(limit) = query.limit {
            validate_limit("limit", limit)?;
        }
        let i = &*self.inner;
        let Some(cond) = Conditions::for_filter(&i.tables, &query.filter) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "{} ORDER BY m.created_at DESC, m.content_hash DESC \
             LIMIT CAST(? AS INTEGER) OFFSET CAST(? AS INTEGER)",
            i.select(&cond.sql)
        );
        let limit = query.limit.map_or(-1, |l| l as i64);
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let s = Statement::new(sql)
            .bind_all(cond.params)
            .bind(Param::Integer(limit))
            .bind(Param::Integer(offset))
            .idempotent(true);
        let r = i.query("listing memories", s).await?;
        i.hydrate(Inner::rows(&r)?).await
    }

    async fn count(&self, filter: &MemoryFilter) -> StorageResult<u64> {
        let i = &*self.inner;
        let Some(cond) = Conditions::for_filter(&i.tables, filter) else {
            return Ok(0);
        };
        let s = Statement::new(format!(
            "SELECT COUNT(*) AS n FROM {} m WHERE {}",
            i.tables.memories, cond.sql
        ))
        .bind_all(cond.params)
        .idempotent(true);
        let r = i.query("counting memories", s).await?;
        Ok(r.rows.first().map_or(0, |row| count(row, "n")))
    }

    async fn get_embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        self.inner.embeddings(hashes).await
    }

    async fn check(&self) -> StorageResult<memory_storage::ConsistencyReport> {
        crate::consistency::generic_check(self).await
    }

    async fn repair(&self) -> StorageResult<memory_storage::RepairReport> {
        crate::consistency::generic_repair(self).await
    }

    async fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>> {
        let i = &*self.inner;
        let s = Statement::new(i.select("m.content_hash = ? AND m.deleted_at IS NULL"))
            .bind(hash.as_str())
            .idempotent(true);
        let r = i.query("reading a memory", s).await?;
        Ok(i.hydrate_strict(Inner::rows(&r)?).await?.pop())
    }

    async fn delete(&self, hash: &ContentHash) -> StorageResult<DeleteReport> {
        let i = &*self.inner;
        let vid = i.vector_id(hash);
        let s = Statement::new(format!(
            "UPDATE {} SET deleted_at = CAST(? AS REAL) WHERE content_hash = ? \
             AND deleted_at IS NULL RETURNING r2_key, vector_id",
            i.tables.memories
        ))
        .bind(now_text())
        .bind(hash.as_str())
        .idempotent(true);
        let (d1, mut pending) = tokio::join!(
            i.query("deleting a memory", s),
            i.delete_vectors_pending("deleting a memory's vector", vec![vid.clone()])
        );
        let r = d1?;
        let Some(row) = r.rows.first() else {
            return Err(StorageError::NotFound { hash: hash.clone() });
        };
        // From here on the memory is deleted (no read sees the row): a failed clean-up is
        // reported as pending, never as an error, so a retry is not told "not found" about
        // a delete that did happen. `check` finds the leftovers (the row keeps its vector id
        // and R2 key as a tombstone) and `repair` removes them.
        if let Some(other) = text(row, "vector_id").filter(|v| *v != vid) {
            pending.extend(
                i.delete_vectors_pending("deleting a memory's vector", vec![other])
                    .await,
            );
        }
        if let Some(key) = text(row, "r2_key").filter(|k| !k.is_empty()) {
            pending.extend(
                i.delete_r2_pending("deleting a memory's large content", vec![key])
                    .await,
            );
        }
        Ok(DeleteReport {
            hashes: vec![hash.clone()],
            dry_run: false,
            cleanup_pending: pending,
        })
    }

    async fn delete_memories(&self, request: &DeleteRequest) -> StorageResult<DeleteReport> {
        request.selector.validate()?;
        self.inner.delete_memories(request).await
    }

    async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
        self.inner.cleanup_duplicates().await
    }

    async fn update_memory_metadata(
        &self,
        hash: &ContentHash,
        updates: MemoryUpdate,
        preserve_timestamps: bool,
    ) -> StorageResult<Memory> {
        self.inner.update(hash, &updates, preserve_timestamps).await
    }

    async fn get_stats(&self) -> StorageResult<StorageStats> {
        self.inner.stats().await
    }

    async fn get_all_tags(&self) -> StorageResult<Vec<TagCount>> {
        let i = &*self.inner;
        let s = Statement::new(format!(
            "SELECT t.name AS tag, COUNT(*) AS n FROM {mt} mt JOIN {t} t ON t.id = mt.tag_id \
             JOIN {m} m ON m.id = mt.memory_id WHERE m.deleted_at IS NULL \
             GROUP BY t.name ORDER BY n DESC, t.name ASC",
            mt = i.tables.memory_tags,
            t = i.tables.tags,
            m = i.tables.memories
        ))
        .idempotent(true);
        let r = i.query("counting tags", s).await?;
        Ok(r.rows
            .iter()
            .filter_map(|row| {
                Some(TagCount {
                    tag: text(row, "tag")?,
                    count: count(row, "n"),
                })
            })
            .collect())
    }

    async fn purge_deleted(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        self.inner.purge(older_than).await
    }
}

impl Inner {
    async fn initialize(&self) -> StorageResult<()> {
        let t = &self.tables;
        let mut statements: Vec<Statement> = t
            .create_statements()
            .into_iter()
            .map(|s| Statement::new(s).idempotent(true))
            .collect();
        statements.push(Statement::new(t.table_info()).idempotent(true));
        let results = self.batch("creating the D1 tables", statements).await?;
        let columns: Vec<String> = results
            .last()
            .map(|r| r.rows.iter().filter_map(|row| text(row, "name")).collect())
            .unwrap_or_default();
        let alters = t.missing_column_statements(&columns);
        if !alters.is_empty() {
            let alters = alters
                .into_iter()
                .map(|s| Statement::new(s).idempotent(true));
            if let Err(e) = self
                .batch("adding columns to the D1 tables", alters.collect())
                .await
            {
                // Another process may have added them at the same moment.
                tracing::warn!(error = %e, "adding missing columns failed; checking again");
                let again = self
                    .query(
                        "reading the D1 columns",
                        Statement::new(t.table_info()).idempotent(true),
                    )
                    .await?;
                let cols: Vec<String> = again
                    .rows
                    .iter()
                    .filter_map(|row| text(row, "name"))
                    .collect();
                if !t.missing_column_statements(&cols).is_empty() {
                    return Err(e);
                }
            }
        }
        let meta = &t.meta;
        let results = self
            .batch(
                "reading the schema metadata",
                vec![
                    Statement::new(t.deleted_at_index()).idempotent(true),
                    Statement::new(format!("SELECT key, value FROM {meta}")).idempotent(true),
                    Statement::new(format!("SELECT COUNT(*) AS n FROM {}", t.memories))
                        .idempotent(true),
                ],
            )
            .await?;
        let recorded: HashMap<String, String> = results
            .get(1)
            .map(|r| {
                r.rows
                    .iter()
                    .filter_map(|row| Some((text(row, "key")?, text(row, "value")?)))
                    .collect()
            })
            .unwrap_or_default();
        let rows = results
            .get(2)
            .and_then(|r| r.rows.first())
            .map_or(0, |r| count(r, "n"));
        let rec_model = recorded.get(meta_keys::EMBEDDING_MODEL);
        let rec_dims = recorded.get(meta_keys::EMBEDDING_DIMENSIONS);
        let matches = rec_model.is_some_and(|m| *m == self.model)
            && rec_dims.is_some_and(|d| *d == self.dims.to_string());
        if !matches
            && rows > 0
            && let (Some(m), Some(d)) = (rec_model, rec_dims)
        {
            return Err(StorageError::ModelMismatch {
                recorded: format!("{m} ({d} dims)"),
                configured: format!("{} ({} dims)", self.model, self.dims),
            });
        }
        if !matches || recorded.get(meta_keys::SCHEMA_VERSION) != Some(&SCHEMA_VERSION.to_string())
        {
            self.query(
                "recording the schema metadata",
                Statement::new(format!(
                    "INSERT INTO {meta} (key, value) VALUES (?, ?), (?, ?), (?, ?) \
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                ))
                .bind(meta_keys::SCHEMA_VERSION)
                .bind(SCHEMA_VERSION.to_string())
                .bind(meta_keys::EMBEDDING_MODEL)
                .bind(self.model.clone())
                .bind(meta_keys::EMBEDDING_DIMENSIONS)
                .bind(self.dims.to_string())
                .idempotent(true),
            )
            .await?;
        }
        let id = match recorded.get(meta_keys::STORE_ID) {
            Some(id) => id.clone(),
            None => self.record_store_id().await?,
        };
        // A second `initialize` reads the same id back; the first one set wins either way.
        let _ = self.store_id.set(id);
        self.check_index().await
    }

    /// Records a new random store id unless one is there (two processes initialising a
    /// new database at once both end up with the one that was written first), and returns
    /// the recorded one.
    async fn record_store_id(&self) -> StorageResult<String> {
        let meta = &self.tables.meta;
        let new = format!("{:032x}", rand::random::<u128>());
        let results = self
            .batch(
                "recording this store's id",
                vec![
                    Statement::new(format!(
                        "INSERT INTO {meta} (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING"
                    ))
                    .bind(meta_keys::STORE_ID)
                    .bind(new)
                    .idempotent(true),
                    Statement::new(format!("SELECT value FROM {meta} WHERE key = ?"))
                        .bind(meta_keys::STORE_ID)
                        .idempotent(true),
                ],
            )
            .await?;
        results
            .get(1)
            .and_then(|r| r.rows.first())
            .and_then(|row| text(row, "value"))
            .ok_or_else(|| {
                bad_row(format!(
                    "{meta} has no {} after writing it",
                    meta_keys::STORE_ID
                ))
            })
    }

    /// Creates the Vectorize index if missing (with an admin client) and checks its
    /// dimensions.
    async fn check_index(&self) -> StorageResult<()> {
        let name = &self.parts.index_name;
        let dims = if let Some(admin) = &self.parts.vectorize_admin {
            match admin.get_index(name.clone()).await {
                Ok(d) => d.config.map(|c| c.dimensions),
                Err(e) if is_not_found(&e) => {
                    let dims = u32::try_from(self.dims).unwrap_or(u32::MAX);
                    let created = admin
                        .create_index(CreateIndex::new(name.clone(), dims, Metric::Cosine))
                        .await;
                    match created {
                        Ok(d) => d.config.map(|c| c.dimensions),
                        Err(e) => {
                            // Another process may have created it meanwhile.
                            match admin.get_index(name.clone()).await {
                                Ok(d) => d.config.map(|c| c.dimensions),
                                Err(_) => {
                                    return Err(vectorize_error(
                                        &format!("creating the Vectorize index {name}"),
                                        e,
                                    ));
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    return Err(vectorize_error(
                        &format!("reading the Vectorize index {name}"),
                        e,
                    ));
                }
            }
        } else {
            self.parts
                .vectorize
                .info()
                .await
                .map_err(|e| {
                    vectorize_error(
                        &format!("reading the Vectorize index {name} (CLOUDFLARE_VECTORIZE_INDEX)"),
                        e,
                    )
                })?
                .dimensions
        };
        if let Some(d) = dims
            && d as usize != self.dims
        {
            return Err(StorageError::ModelMismatch {
                recorded: format!("the Vectorize index {name} ({d} dims)"),
                configured: format!("{} ({} dims)", self.model, self.dims),
            });
        }
        Ok(())
    }

    async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        let mut outcomes: Vec<Option<StorageResult<StoreOutcome>>> =
            Vec::with_capacity(memories.len());
        let mut items: Vec<(usize, Prepared)> = Vec::new();
        for (n, m) in memories.into_iter().enumerate() {
            match self.prepare(m) {
                Ok(p) => {
                    outcomes.push(None);
                    items.push((n, p));
                }
                Err(e) => outcomes.push(Some(Err(e))),
            }
        }
        if items.is_empty() {
            return Ok(outcomes.into_iter().flatten().collect());
        }
        // One embedding call (the embedder batches) for the first of each hash needing it.
        let mut seen = HashSet::new();
        let to_embed: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, (_, p))| p.vector.is_none())
            .filter(|(_, (_, p))| seen.insert(p.memory.content_hash().clone()))
            .map(|(k, _)| k)
            .collect();
        let texts: Vec<&str> = to_embed
            .iter()
            .map(|&k| items[k].1.memory.content())
            .collect();
        let vectors = self.embed(&texts).await?;
        let mut by_hash: HashMap<ContentHash, Vec<f32>> = HashMap::new();
        for (k, v) in to_embed.into_iter().zip(vectors) {
            by_hash.insert(items[k].1.memory.content_hash().clone(), v);
        }
        for (_, p) in &mut items {
            if p.vector.is_none() {
                p.vector = by_hash.get(p.memory.content_hash()).cloned();
            }
        }
        // Large content first.
        let puts =
            items
                .iter()
                .filter(|(_, p)| self.is_large(&p.memory))
                .map(|(_, p)| async move {
                    let Some(r2) = &self.parts.r2 else {
                        return Ok(());
                    };
                    r2.put_object(PutObject::new(
                        self.r2_key(p.memory.content_hash()),
                        p.memory.content().as_bytes().to_vec(),
                    ))
                    .await
                    .map(|_| ())
                    .map_err(|e| r2_error("uploading large content (nothing was stored)", e))
                });
        try_join_all(puts).await?;

        let vids: Vec<String> = items
            .iter()
            .map(|(_, p)| self.vector_id(p.memory.content_hash()))
            .collect();
        let keys: Vec<Option<String>> = items
            .iter()
            .map(|(_, p)| {
                self.is_large(&p.memory)
                    .then(|| self.r2_key(p.memory.content_hash()))
            })
            .collect();
        let mut vectors = Vec::new();
        let mut vector_seen = HashSet::new();
        for (_, p) in &items {
            if let Some(v) = &p.vector
                && vector_seen.insert(p.memory.content_hash().clone())
            {
                vectors.push(self.vector(&p.memory, v.clone()));
            }
        }
        let chunks: Vec<Vec<Statement>> = items
            .chunks(STORE_BATCH_CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                chunk
                    .iter()
                    .enumerate()
                    .flat_map(|(j, (_, p))| {
                        let k = c * STORE_BATCH_CHUNK + j;
                        let content = if self.is_large(&p.memory) {
                            prefix_chars(p.memory.content(), PREVIEW_CHARS)
                        } else {
                            p.memory.content()
                        };
                        store_statements(
                            &self.tables,
                            &RowValues {
                                memory: &p.memory,
                                content,
                                vector_id: &vids[k],
                                r2_key: keys[k].as_deref(),
                            },
                            &self.columns,
                        )
                    })
                    .collect()
            })
            .collect();
        let d1_all = async {
            let mut out = Vec::new();
            for chunk in chunks {
                out.push(self.batch("storing a batch of memories", chunk).await);
            }
            out
        };
        let (d1_results, vz) =
            tokio::join!(d1_all, self.upsert("writing a batch of vectors", vectors));

        // Per-item outcomes.
        let mut written: Vec<StorageResult<Written>> = Vec::with_capacity(items.len());
        for (c, result) in d1_results.into_iter().enumerate() {
            let n = items
                .len()
                .saturating_sub(c * STORE_BATCH_CHUNK)
                .min(STORE_BATCH_CHUNK);
            match result {
                Ok(results) => {
                    for j in 0..n {
                        written.push(Inner::written(&results, j * 6));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    written.push(Err(e));
                    for _ in 1..n {
                        written.push(Err(StorageError::Unavailable {
                            backend: BACKEND.into(),
                            message: text.clone(),
                            source: None,
                        }));
                    }
                }
            }
        }
        let failed_d1: Vec<&ContentHash> = items
            .iter()
            .zip(&written)
            .filter(|(_, w)| w.is_err())
            .map(|((_, p), _)| p.memory.content_hash())
            .collect();
        if let Err(vz_err) = vz {
            let undo: Vec<(&ContentHash, PreState)> = items
                .iter()
                .zip(&written)
                .filter_map(|((_, p), w)| match w {
                    Ok(w) if w.pre != PreState::Live => Some((p.memory.content_hash(), w.pre)),
                    _ => None,
                })
                .collect();
            return match self.compensate(&undo).await {
                Ok(()) => Err(nothing_stored(vz_err)),
                Err(c) => Err(half_written(vz_err, &c)),
            };
        }
        if !failed_d1.is_empty() {
            self.undo_vectors(&failed_d1).await;
        }
        // Duplicates: put back the existing memories' metadata on their vectors.
        let mut restore = Vec::new();
        let mut first_of_hash = HashSet::new();
        for ((n, p), w) in items.into_iter().zip(written) {
            let first = first_of_hash.insert(p.memory.content_hash().clone());
            let result = match w {
                Ok(w) => match w.pre {
                    PreState::Absent => Ok(StoreOutcome::Stored),
                    PreState::Tombstone(_) => Ok(StoreOutcome::Revived),
                    PreState::Live => {
                        if first && let (Some(existing), Some(v)) = (w.post, p.vector.clone()) {
                            restore.push(self.vector(&existing.memory, v));
                        }
                        Err(StorageError::Duplicate {
                            hash: p.memory.content_hash().clone(),
                        })
                    }
                },
                Err(e) => Err(e),
            };
            outcomes[n] = Some(result);
        }
        if let Err(e) = self
            .upsert("restoring duplicates' vector metadata", restore)
            .await
        {
            tracing::warn!(error = %e, "restoring the vector metadata of duplicates failed; run repair");
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    async fn search(
        &self,
        query: &SemanticQuery,
        vector: Vec<f32>,
    ) -> StorageResult<Vec<MemoryQueryResult>> {
        let Some(cond) = Conditions::for_filter(&self.tables, &query.filter) else {
            return Ok(Vec::new());
        };
        let mut q = QueryVectors::new(vector.clone())
            .top_k(QUERY_TOP_K)
            .return_metadata(ReturnMetadata::None);
        if let Some(ns) = self.ns() {
            q = q.namespace(ns);
        }
        let result = self
            .parts
            .vectorize
            .query(q)
            .await
            .map_err(|e| vectorize_error("searching the Vectorize index", e))?;
        let full_page = result.matches.len() >= QUERY_TOP_K as usize;
        let scores: Vec<(String, f64)> = result
            .matches
            .into_iter()
            .map(|m| (m.id, m.score))
            .collect();
        let ids = json_strings(scores.iter().map(|(id, _)| id.as_str()));
        let s = Statement::new(format!(
            "{} AND m.vector_id IN (SELECT value FROM json_each(?))",
            self.select(&cond.sql)
        ))
        .bind_all(cond.params.clone())
        .bind(ids)
        .idempotent(true);
        let rows = Inner::rows(&self.query("reading search results", s).await?)?;
        let mut by_vid: HashMap<String, StoredRow> = rows
            .into_iter()
            .filter_map(|r| Some((r.vector_id.clone()?, r)))
            .collect();
        let mut ranked: Vec<(StoredRow, f64)> = scores
            .iter()
            .filter_map(|(id, score)| Some((by_vid.remove(id)?, *score)))
            .collect();
        let mut method = "semantic";
        if ranked.len() < query.limit && full_page {
            ranked = self.exact_search(&cond, &vector, query.limit).await?;
            method = "semantic_exact";
        }
        let ranked: Vec<(StoredRow, f64)> = ranked
            .into_iter()
            .filter(|(_, s)| query.min_similarity.is_none_or(|m| *s >= f64::from(m)))
            .take(query.limit)
            .collect();
        let scores: Vec<f64> = ranked.iter().map(|(_, s)| *s).collect();
        let memories = self
            .hydrate(ranked.into_iter().map(|(r, _)| r).collect())
            .await?;
        Ok(memories
            .into_iter()
            .zip(scores)
            .map(|(memory, score)| {
                let s = score as f32;
                MemoryQueryResult {
                    memory,
                    relevance_score: s.clamp(-1.0, 1.0),
                    debug_info: Some(QueryDebugInfo {
                        method: method.into(),
                        raw_score: Some(s),
                        model: Some(self.model.clone()),
                        note: None,
                    }),
                }
            })
            .collect())
    }

    /// The stored vectors of `hashes` (see [`MemoryStorage::get_embeddings`]): per
    /// [`GET_EMBEDDINGS_D1_CHUNK`] hashes, one D1 query for which are live and their vector
    /// ids, then `get_by_ids` calls of [`GET_BY_IDS_CHUNK`] ids.
    async fn embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        let mut found: HashMap<String, Vec<f32>> = HashMap::new();
        for chunk in hashes.chunks(GET_EMBEDDINGS_D1_CHUNK) {
            let s = Statement::new(format!(
                "SELECT content_hash, vector_id FROM {} WHERE deleted_at IS NULL AND \
                 content_hash IN (SELECT value FROM json_each(?))",
                self.tables.memories
            ))
            .bind(json_strings(chunk.iter().map(ContentHash::as_str)))
            .idempotent(true);
            let r = self
                .query("looking up memories to read their vectors", s)
                .await?;
            let mut hash_of: HashMap<String, String> = HashMap::with_capacity(r.rows.len());
            for row in &r.rows {
                let Some(hash) = text(row, "content_hash") else {
                    continue;
                };
                let vid = match text(row, "vector_id") {
                    Some(v) => v,
                    None => match hash.parse::<ContentHash>() {
                        Ok(h) => self.vector_id(&h),
                        Err(_) => continue,
                    },
                };
                hash_of.insert(vid, hash);
            }
            let ids: Vec<String> = hash_of.keys().cloned().collect();
            let vectors = self.fetch_vectors(&ids, "reading stored vectors").await?;
            for v in vectors {
                let Some(hash) = hash_of.get(&v.id) else {
                    continue;
                };
                if v.values.len() == self.dims && v.values.iter().all(|x| x.is_finite()) {
                    found.insert(hash.clone(), v.values);
                } else {
                    tracing::warn!(
                        %hash,
                        values = v.values.len(),
                        "not handing out an unusable vector; run `mcp-memory repair`"
                    );
                }
            }
        }
        Ok(hashes
            .iter()
            .map(|h| found.get(h.as_str()).cloned())
            .collect())
    }

    /// The vectors of `ids` from Vectorize, `get_by_ids` in chunks of [`GET_BY_IDS_CHUNK`],
    /// [`PARALLEL_CALLS`] at a time; ids Vectorize does not hold are simply absent. `what`
    /// names the work in the error.
    pub(crate) async fn fetch_vectors(
        &self,
        ids: &[String],
        what: &'static str,
    ) -> StorageResult<Vec<Vector>> {
        let chunks: Vec<Vec<String>> = ids
            .chunks(GET_BY_IDS_CHUNK)
            .map(<[String]>::to_vec)
            .collect();
        let vectors: Vec<Vec<Vector>> = futures::stream::iter(chunks)
            .map(|chunk| async move {
                self.parts
                    .vectorize
                    .get_by_ids(chunk)
                    .await
                    .map_err(|e| vectorize_error(what, e))
            })
            .buffer_unordered(PARALLEL_CALLS)
            .try_collect()
            .await?;
        Ok(vectors.into_iter().flatten().collect())
    }

    /// The exact path of a filtered search: every matching memory's vector, ranked locally.
    async fn exact_search(
        &self,
        cond: &Conditions,
        query: &[f32],
        limit: usize,
    ) -> StorageResult<Vec<(StoredRow, f64)>> {
        let s = Statement::new(format!(
            "SELECT m.vector_id AS vector_id FROM {} m WHERE {} AND m.vector_id IS NOT NULL",
            self.tables.memories, cond.sql
        ))
        .bind_all(cond.params.clone())
        .idempotent(true);
        let r = self
            .query("listing the memories a search may return", s)
            .await?;
        let ids: Vec<String> = r
            .rows
            .iter()
            .filter_map(|row| text(row, "vector_id"))
            .collect();
        let vectors = self
            .fetch_vectors(&ids, "reading vectors for an exact search")
            .await?;
        let mut scored: Vec<(String, f64)> = vectors
            .into_iter()
            .filter(|v| v.values.len() == query.len())
            .map(|v| {
                let norm = dot(&v.values, &v.values).sqrt();
                let s = if norm > 0.0 {
                    dot(&v.values, query) / norm
                } else {
                    0.0
                };
                (v.id, s)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scored.truncate(limit);
        if scored.is_empty() {
            return Ok(Vec::new());
        }
        let s = Statement::new(format!(
            "{} AND m.vector_id IN (SELECT value FROM json_each(?))",
            self.select(&cond.sql)
        ))
        .bind_all(cond.params.clone())
        .bind(json_strings(scored.iter().map(|(id, _)| id.as_str())))
        .idempotent(true);
        let rows = Inner::rows(&self.query("reading search results", s).await?)?;
        let mut by_vid: HashMap<String, StoredRow> = rows
            .into_iter()
            .filter_map(|r| Some((r.vector_id.clone()?, r)))
            .collect();
        Ok(scored
            .into_iter()
            .filter_map(|(id, s)| Some((by_vid.remove(&id)?, s)))
            .collect())
    }

    async fn delete_memories(&self, request: &DeleteRequest) -> StorageResult<DeleteReport> {
        let empty = DeleteReport {
            dry_run: request.dry_run,
            ..DeleteReport::default()
        };
        let Some(cond) = Conditions::for_selector(&self.tables, &request.selector) else {
            return Ok(empty);
        };
        let m = &self.tables.memories;
        let select = Statement::new(format!(
            "SELECT m.content_hash AS content_hash, m.vector_id AS vector_id, m.r2_key AS r2_key \
             FROM {m} m WHERE {} ORDER BY m.created_at DESC, m.content_hash DESC",
            cond.sql
        ))
        .bind_all(cond.params.clone())
        .idempotent(true);
        let result = if request.dry_run {
            self.query("selecting memories to delete", select).await?
        } else {
            let update = Statement::new(format!(
                "UPDATE {m} SET deleted_at = CAST(? AS REAL) WHERE id IN \
                 (SELECT m.id FROM {m} m WHERE {})",
                cond.sql
            ))
            .bind(now_text())
            .bind_all(cond.params)
            .idempotent(true);
            self.batch("deleting memories", vec![select, update])
                .await?
                .into_iter()
                .next()
                .unwrap_or_default()
        };
        let mut hashes = Vec::new();
        let mut vids = Vec::new();
        let mut keys = Vec::new();
        for row in &result.rows {
            let h = text(row, "content_hash").unwrap_or_default();
            let hash = h
                .parse::<ContentHash>()
                .map_err(|e| bad_row(format!("content_hash {h:?}: {e}")))?;
            if let Some(v) = text(row, "vector_id") {
                vids.push(v);
            }
            if let Some(k) = text(row, "r2_key").filter(|k| !k.is_empty()) {
                keys.push(k);
            }
            hashes.push(hash);
        }
        let mut cleanup_pending = Vec::new();
        if !request.dry_run {
            // The rows are deleted: failed clean-up is reported, not an error (see `delete`).
            cleanup_pending = self
                .delete_vectors_pending("deleting memories' vectors", vids)
                .await;
            cleanup_pending.extend(
                self.delete_r2_pending("deleting memories' large content", keys)
                    .await,
            );
        }
        Ok(DeleteReport {
            hashes,
            dry_run: request.dry_run,
            cleanup_pending,
        })
    }

    async fn update(
        &self,
        hash: &ContentHash,
        updates: &MemoryUpdate,
        preserve_timestamps: bool,
    ) -> StorageResult<Memory> {
        let updates = updates.normalised()?;
        let s = Statement::new(self.select("m.content_hash = ? AND m.deleted_at IS NULL"))
            .bind(hash.as_str())
            .idempotent(true);
        let r = self.query("reading a memory to update", s).await?;
        let Some(row) = Inner::rows(&r)?.pop() else {
            return Err(StorageError::NotFound { hash: hash.clone() });
        };
        let mut memory = row.memory;
        let now = Timestamp::now();
        updates.apply(&mut memory, preserve_timestamps, now);
        let m = &self.tables.memories;
        let mut statements = vec![
            Statement::new(format!(
                "UPDATE {m} SET tags = ?, memory_type = NULLIF(?, ''), metadata_json = ?, \
                 created_at = ?, created_at_iso = ?, updated_at = ?, updated_at_iso = ? \
                 WHERE id = CAST(? AS INTEGER) AND deleted_at IS NULL"
            ))
            .bind(memory.tags.joined())
            .bind(memory.memory_type.clone().unwrap_or_default())
            .bind(memory.metadata.to_json_string())
            .bind(epoch_text(memory.created_at))
            .bind(memory.created_at.to_iso())
            .bind(epoch_text(memory.updated_at))
            .bind(memory.updated_at.to_iso())
            .bind(Param::Integer(row.id))
            .idempotent(true),
        ];
        statements.extend(link_statements(&self.tables, hash.as_str(), &memory.tags));
        let results = self.batch("updating a memory", statements).await?;
        if results.first().and_then(|r| r.meta.changes) == Some(0) {
            return Err(StorageError::NotFound { hash: hash.clone() });
        }
        // Refresh the vector's metadata (Vectorize has no metadata-only update).
        let vid = row.vector_id.unwrap_or_else(|| self.vector_id(hash));
        let refreshed = async {
            let existing = self
                .parts
                .vectorize
                .get_by_ids(vec![vid.clone()])
                .await
                .map_err(|e| vectorize_error("reading a memory's vector", e))?;
            let values = match existing.into_iter().next() {
                Some(v) => v.values,
                None => {
                    let full = self.hydrate(vec![StoredRow {
                        id: row.id,
                        memory: memory.clone(),
                        vector_id: Some(vid.clone()),
                        r2_key: row.r2_key.clone(),
                        deleted_at: None,
                    }]);
                    let content = full
                        .await?
                        .pop()
                        .map(Memory::into_content)
                        .unwrap_or_default();
                    self.embed_one(&content).await?
                }
            };
            let mut v = self.vector(&memory, values);
            v.id = vid.clone();
            self.upsert("updating a memory's vector metadata", vec![v])
                .await
        };
        if let Err(e) = refreshed.await {
            // D1 holds the update and every read goes through D1; only the informational
            // copy on the vector is stale until the next update or `repair`.
            tracing::warn!(error = %e, %hash, "updating a memory's vector metadata failed");
        }
        let full = self
            .hydrate(vec![StoredRow {
                id: row.id,
                memory,
                vector_id: None,
                r2_key: row.r2_key,
                deleted_at: None,
            }])
            .await?;
        full.into_iter()
            .next()
            .ok_or_else(|| StorageError::NotFound { hash: hash.clone() })
    }

    async fn purge(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        let (m, mt) = (&self.tables.memories, &self.tables.memory_tags);
        let (cond, params): (&str, Vec<Param>) = match older_than {
            Some(t) => (
                "deleted_at IS NOT NULL AND deleted_at <= CAST(? AS REAL)",
                vec![Param::Text(epoch_text(t))],
            ),
            None => ("deleted_at IS NOT NULL", Vec::new()),
        };
        let results = self
            .batch(
                "purging deleted memories",
                vec![
                    Statement::new(format!("SELECT vector_id, r2_key FROM {m} WHERE {cond}"))
                        .bind_all(params.clone())
                        .idempotent(true),
                    Statement::new(format!(
                        "DELETE FROM {mt} WHERE memory_id IN (SELECT id FROM {m} WHERE {cond})"
                    ))
                    .bind_all(params.clone())
                    .idempotent(true),
                    Statement::new(format!("DELETE FROM {m} WHERE {cond}"))
                        .bind_all(params)
                        .idempotent(true),
                ],
            )
            .await?;
        let selected = results.first().cloned().unwrap_or_default();
        let n = results
            .get(2)
            .and_then(|r| r.meta.changes)
            .unwrap_or(selected.rows.len() as u64);
        let vids: Vec<String> = selected
            .rows
            .iter()
            .filter_map(|r| text(r, "vector_id"))
            .collect();
        let keys: Vec<String> = selected
            .rows
            .iter()
            .filter_map(|r| text(r, "r2_key"))
            .filter(|k| !k.is_empty())
            .collect();
        if let Err(e) = self
            .delete_vectors("deleting purged memories' vectors", vids)
            .await
        {
            tracing::warn!(error = %e, "deleting vectors of purged memories failed; `repair` removes them");
        }
        // The rows are gone either way: failing here would report a purge that happened as
        // one that did not. A left-over object is this store's and `check` finds it.
        if let Err(e) = self
            .delete_r2("deleting purged memories' large content", keys)
            .await
        {
            tracing::warn!(error = %e, "deleting R2 objects of purged memories failed; `repair` removes them");
        }
        Ok(n)
    }

    async fn stats(&self) -> StorageResult<StorageStats> {
        let (m, mt, t) = (
            &self.tables.memories,
            &self.tables.memory_tags,
            &self.tables.tags,
        );
        let week_ago = Timestamp::from_epoch_micros(
            Timestamp::now()
                .epoch_micros()
                .saturating_sub(7 * 24 * 3600 * 1_000_000),
        )
        .unwrap_or_else(Timestamp::now);
        let s = Statement::new(format!(
            "SELECT \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NULL) AS total, \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NOT NULL) AS tombstones, \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NULL AND created_at >= CAST(? AS REAL)) AS week, \
               (SELECT COALESCE(SUM(CASE WHEN content_size > 0 THEN content_size \
                  ELSE length(CAST(content AS BLOB)) END), 0) FROM {m} WHERE deleted_at IS NULL) AS bytes, \
               (SELECT COUNT(DISTINCT t.name) FROM {mt} x JOIN {t} t ON t.id = x.tag_id \
                  JOIN {m} mm ON mm.id = x.memory_id WHERE mm.deleted_at IS NULL) AS tags, \
               (SELECT COUNT(*) FROM {m} WHERE deleted_at IS NULL AND r2_key IS NOT NULL) AS r2"
        ))
        .bind(epoch_text(week_ago))
        .idempotent(true);
        let (d1, info) = tokio::join!(
            self.query("computing statistics", s),
            self.parts.vectorize.info()
        );
        let r = d1?;
        let row = r.rows.first().cloned().unwrap_or_default();
        let mut extra = Map::new();
        match info {
            Ok(info) => {
                extra.insert("vectors".into(), json!(info.vector_count));
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the Vectorize index info failed");
                extra.insert("vectors".into(), Value::Null);
            }
        }
        extra.insert("r2_objects".into(), json!(count(&row, "r2")));
        extra.insert("namespace".into(), json!(self.ns()));
        extra.insert("index".into(), json!(self.parts.index_name));
        extra.insert("schema_version".into(), json!(SCHEMA_VERSION));
        Ok(StorageStats {
            backend: BACKEND.into(),
            total_memories: count(&row, "total"),
            unique_tags: count(&row, "tags"),
            memories_this_week: count(&row, "week"),
            content_bytes: count(&row, "bytes"),
            tombstones: count(&row, "tombstones"),
            embedding_model: self.model.clone(),
            embedding_dimensions: self.dims,
            storage_bytes: r.meta.size_after,
            extra,
        })
    }

    async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
        crate::consistency::cleanup_duplicates(self).await
    }
}

/// Whether a Vectorize error says the index does not exist.
///
/// Cloudflare answers a missing index with 400 and code 3000
/// (`vectorize.index.not_found`), some paths with 404.
fn is_not_found(e: &VectorizeError) -> bool {
    let Some(c) = e.cloudflare() else {
        return false;
    };
    c.status()
        .is_some_and(|s| s.as_u16() == 404 || s.as_u16() == 410)
        || c.errors()
            .iter()
            .any(|m| m.code == 3000 || m.message.contains("index.not_found"))
}

/// Merges tag lists, keeping first occurrences and the tag limit.
pub(crate) fn union_tags<'a>(lists: impl IntoIterator<Item = &'a Tags>) -> StorageResult<Tags> {
    let mut union: Vec<String> = Vec::new();
    for list in lists {
        for tag in list.iter() {
            if !union.iter().any(|u| u == tag) {
                union.push(tag.clone());
            }
        }
    }
    union.truncate(limits::MAX_TAGS);
    Tags::parse(union).map_err(|e| StorageError::backend(BACKEND, "merging tags", e))
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
