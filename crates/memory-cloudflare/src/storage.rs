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
//!   with `get_by_ids` in chunks of 20, ranked locally by cosine, and the
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

use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use cloudflare_d1::{D1Api, QueryResult, Statement};
use cloudflare_r2::{DeleteObject, GetObject, R2Api};
use cloudflare_vectorize::{IndexApi, MAX_IDS_PER_CALL, MAX_METADATA_BYTES, Vector, VectorizeApi};
use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt};
use memory_core::{ContentHash, Memory, MemoryQueryResult, Tags, Timestamp};
use memory_embed::Embedder;
use memory_storage::backend;
use memory_storage::{
    CleanupReport, DeleteReport, DeleteRequest, ListQuery, MemoryFilter, MemoryStorage,
    MemoryUpdate, SemanticQuery, StorageError, StorageResult, StorageStats, StoreOutcome, TagCount,
};
use serde_json::{Map, Value, json};

use crate::error_map::{BACKEND, bad_row, d1_error, embed_error, r2_error, vectorize_error};
use crate::namespace::Namespace;
use crate::rows::{
    EMBED_PREFIX_CHARS, PREVIEW_CHARS, StoredRow, prefix_chars, row_columns, vector_id,
};
use crate::schema::Tables;

// One file per concern; each adds `impl Inner` blocks, and the `MemoryStorage` impl below
// only delegates. `check`/`repair` work on this module's private state (`Inner`), so they
// are a child of it rather than a sibling that imports it back.
mod admin;
pub(crate) mod consistency;
mod pending;
pub mod replica;
mod search;
mod setup;
mod write;

/// Vectors fetched per `get_by_ids` call (Cloudflare's observed cap, which the client
/// enforces).
pub(crate) const GET_BY_IDS_CHUNK: usize = MAX_IDS_PER_CALL;

/// Hashes per D1 query of `get_embeddings` (each query's hashes then go to Vectorize in
/// `get_by_ids` calls of [`GET_BY_IDS_CHUNK`]).
pub(crate) const GET_EMBEDDINGS_D1_CHUNK: usize = 500;

/// The topK of every semantic query: the most Vectorize returns without values or metadata.
pub(crate) const QUERY_TOP_K: u32 = 100;

/// Default large-content threshold: 1 MiB (`CLOUDFLARE_LARGE_CONTENT_THRESHOLD`).
pub(crate) const DEFAULT_LARGE_CONTENT_THRESHOLD: usize = 1024 * 1024;

/// Memories per D1 batch of a store (each sends `STATEMENTS_PER_MEMORY` statements, six).
pub(crate) const STORE_BATCH_CHUNK: usize = 50;

/// Ids per Vectorize `delete_by_ids` call: the same observed cap of 20 (undocumented;
/// production answers `400`/`40007` to more).
pub(crate) const DELETE_IDS_CHUNK: usize = MAX_IDS_PER_CALL;

/// How long `check` waits by default for Vectorize to apply the writes made before it:
/// Cloudflare applies them "typically within a few seconds", minutes under heavy load.
pub const DEFAULT_SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Requests sent at once when many independent calls are needed (R2 reads, vector chunks).
const PARALLEL_CALLS: usize = 6;

/// The vector metadata key carrying the id of the store that wrote the vector (see
/// [`CloudflareStorage::store_id`]).
pub const STORE_ID_METADATA: &str = "store_id";

/// The metadata key marking a memory whose content was in an R2 object that is missing.
///
/// In lists and searches such a memory comes back with the excerpt its row keeps (the
/// first 1,000 characters) as content and this key in its metadata, holding the
/// R2 key and the hash of the lost content, so one lost object costs one memory, not every
/// read. After `repair` the memory keeps the excerpt for good, re-keyed under its hash, and
/// this key records the original hash and length.
pub const MISSING_CONTENT_METADATA: &str = "content_missing";

/// The vector metadata key set to `true` when some tags were left out of the vector's
/// metadata to stay under Vectorize's [`MAX_METADATA_BYTES`] (D1 keeps them all).
pub(crate) const TAGS_TRUNCATED_METADATA: &str = "tags_truncated";

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
    /// Vector writes Vectorize may not show yet (read-your-writes, see [`pending`]).
    pub(crate) pending: pending::PendingWrites,
    /// How long `check` waits for Vectorize to apply the writes made before it.
    pub(crate) settle_timeout: std::time::Duration,
    /// Replica mode (see [`replica`]): the model is the devices', so `initialize` refuses
    /// any other recorded model, even over an empty table (the change log may hold its
    /// vectors).
    pub(crate) replica: bool,
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
                pending: pending::PendingWrites::default(),
                settle_timeout: DEFAULT_SETTLE_TIMEOUT,
                replica: false,
            }),
        })
    }

    /// How long [`check`](Self::check) waits for Vectorize to apply the writes made before
    /// it (default [`DEFAULT_SETTLE_TIMEOUT`]); past it, disagreements about rows changed in
    /// the last minutes are listed as pending instead of being reported. Call before the
    /// store is cloned or shared.
    ///
    /// # Panics
    ///
    /// When the store has been cloned already.
    #[must_use]
    pub fn with_settle_timeout(mut self, timeout: std::time::Duration) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_settle_timeout is called on a store not yet cloned")
            .settle_timeout = timeout;
        self
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

    /// The hybrid backend's change log on this store's D1 database and namespace, with its
    /// R2 bucket, large-content threshold and R2 key scheme (content above the threshold is
    /// kept in the object the store would write for that memory). Call after
    /// [`initialize`](MemoryStorage::initialize): the keys carry the store id it reads.
    #[must_use]
    pub fn change_log(&self) -> crate::change_log::ChangeLog {
        let i = &self.inner;
        crate::change_log::ChangeLog::with_large_content(
            i.parts.d1.clone(),
            i.options.namespace.as_ref(),
            i.parts.r2.clone(),
            i.options.large_content_threshold,
            i.r2_store_prefix(),
        )
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
        backend::checked_vectors(&self.model, self.dims, owned.len(), vectors, "")
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
        self.upsert_counted(action, vectors).await.map(|_| ())
    }

    /// [`upsert`](Self::upsert), returning the requests it took (the client sends at most
    /// 5,000 vectors per request).
    pub(crate) async fn upsert_counted(
        &self,
        action: &str,
        vectors: Vec<Vector>,
    ) -> StorageResult<u64> {
        if vectors.is_empty() {
            return Ok(0);
        }
        let batch = match self.parts.vectorize.upsert(vectors.clone()).await {
            Ok(b) => b,
            Err(e) => {
                let ids: Vec<String> = vectors.iter().map(|v| v.id.clone()).collect();
                self.pending.record_failed(&ids);
                return Err(vectorize_error(action, e));
            }
        };
        // Accepted, not yet visible: reads of this process see it from now on.
        self.pending
            .record_upserts(&vectors, batch.last_mutation_id());
        Ok(batch.mutation_ids.len() as u64)
    }

    pub(crate) async fn delete_vectors(&self, action: &str, ids: Vec<String>) -> StorageResult<()> {
        let chunks: Vec<Vec<String>> = ids
            .chunks(DELETE_IDS_CHUNK)
            .map(<[String]>::to_vec)
            .collect();
        for chunk in chunks {
            let mutation = match self.parts.vectorize.delete_by_ids(chunk.clone()).await {
                Ok(m) => m,
                Err(e) => {
                    self.pending.record_failed(&chunk);
                    return Err(vectorize_error(action, e));
                }
            };
            self.pending
                .record_deletes(&chunk, Some(&mutation.mutation_id));
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
            match self.parts.vectorize.delete_by_ids(chunk.to_vec()).await {
                Ok(mutation) => {
                    self.pending
                        .record_deletes(chunk, Some(&mutation.mutation_id));
                }
                Err(e) => {
                    self.pending.record_failed(chunk);
                    let e = vectorize_error(action, e);
                    tracing::warn!(error = %e, vectors = chunk.len(), "deleting vectors failed; `check` reports them and `repair` removes them");
                    pending.extend(chunk.iter().map(|id| format!("vector {id}: {e}")));
                }
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

#[async_trait]
impl MemoryStorage for CloudflareStorage {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn initialize(&self) -> StorageResult<()> {
        self.inner.initialize().await
    }

    async fn store(&self, memory: Memory) -> StorageResult<StoreOutcome> {
        self.inner.store(memory).await
    }

    async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        self.inner.store_batch(memories).await
    }

    async fn search(&self, query: &SemanticQuery) -> StorageResult<Vec<MemoryQueryResult>> {
        self.inner.semantic_search(query).await
    }

    async fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>> {
        self.inner.list(query).await
    }

    async fn count(&self, filter: &MemoryFilter) -> StorageResult<u64> {
        self.inner.count(filter).await
    }

    async fn get_embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        self.inner.embeddings(hashes).await
    }

    async fn check(&self) -> StorageResult<memory_storage::ConsistencyReport> {
        consistency::generic_check(self).await
    }

    async fn repair(&self) -> StorageResult<memory_storage::RepairReport> {
        consistency::generic_repair(self).await
    }

    async fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>> {
        self.inner.get_by_hash(hash).await
    }

    async fn settle(&self) -> StorageResult<bool> {
        self.wait_for_vectors(self.inner.settle_timeout).await
    }

    async fn delete(&self, hash: &ContentHash) -> StorageResult<DeleteReport> {
        self.inner.delete(hash).await
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
        self.inner.all_tags().await
    }

    async fn purge_deleted(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        self.inner.purge(older_than).await
    }
}

/// Merges tag lists, keeping first occurrences and the tag limit
/// ([`backend::union_tags`]).
pub(crate) fn union_tags<'a>(lists: impl IntoIterator<Item = &'a Tags>) -> StorageResult<Tags> {
    backend::union_tags(lists.into_iter().flat_map(|t| t.iter().map(String::as_str)))
        .map_err(|e| StorageError::backend(BACKEND, "merging tags", e))
}

#[cfg(test)]
mod tests;
