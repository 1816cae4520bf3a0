//! [`SqliteStorage`]: the [`MemoryStorage`] implementation.
//!
//! Every database call runs on tokio's blocking pool (`spawn_blocking`), never on the async
//! runtime's workers. One writer connection (behind a mutex) does every write in a
//! `BEGIN IMMEDIATE` transaction; a small pool of read-only connections serves reads in
//! parallel with it (WAL mode). Embedding happens before the database is touched, outside
//! any lock.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use memory_core::{ContentHash, Memory, MemoryQueryResult, QueryDebugInfo, Timestamp};
use memory_embed::Embedder;
use memory_storage::backend;
use memory_storage::prepare::{Prepared, prepare_memory};
use memory_storage::{
    CleanupReport, ConsistencyReport, DeleteReport, DeleteRequest, ListQuery, MemoryFilter,
    MemoryStorage, MemoryUpdate, RepairReport, SemanticQuery, StorageError, StorageResult,
    StorageStats, StoreOutcome, TagCount,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};
use tokio::task::JoinError;

use crate::codec::{MEMORY_COLUMNS, decode_stored, json_ids, memory_from_row, unit_vector};
use crate::conditions::Conditions;
use crate::config::SqliteConfig;
use crate::connection::{
    BACKEND, ReaderPool, Role, TxError, db_error, lock, open_connection, write_transaction,
};
use crate::live_index::LiveIndex;
use crate::outbox::{self, ChangeLog, OutboxEntry};
use crate::schema::{META_SEQ, bump_counter, check_model, migrate, user_version};

// `check`/`repair` and the writes work on this module's private state (`Inner`), so they
// are children of it rather than siblings that import it back.
mod consistency;
mod sync;
mod write;

pub use sync::ApplyReport;

use write::{Seq, put_memory};

/// Hashes per query of [`MemoryStorage::get_embeddings`].
pub(crate) const GET_EMBEDDINGS_CHUNK: usize = 500;

/// Microseconds in the 7 days that [`StorageStats::memories_this_week`] counts.
const WEEK_MICROS: i64 = 7 * 24 * 60 * 60 * 1_000_000;

/// The embedded default backend: one SQLite file (WAL) holding memories, tags and
/// embeddings, searched by an in-process vector index.
///
/// Cheap to clone (clones share the connections and the index). Several processes may
/// open the same file: writes wait for each other's locks, and each process's index
/// follows the others' changes before every search.
///
/// Returned [`Memory`] values never carry their embedding (`embedding` is `None`), to keep
/// lists and search results small; [`get_embedding`](Self::get_embedding) reads one.
#[derive(Clone)]
pub struct SqliteStorage {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: SqliteConfig,
    embedder: Arc<dyn Embedder>,
    pub(crate) model: String,
    pub(crate) dims: NonZeroUsize,
    writer: Mutex<Connection>,
    readers: ReaderPool,
    pub(crate) index: LiveIndex,
    /// The change log, when [`SqliteConfig::change_log`] is on.
    pub(crate) log: Option<ChangeLog>,
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.inner.config.path)
            .field("model", &self.inner.model)
            .field("dimensions", &self.inner.dims)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens the database at `path` with default options, creating the file, its parent
    /// directories and the schema as needed, and loads the embeddings into memory.
    ///
    /// Fails with [`StorageError::ModelMismatch`] when the file holds memories embedded by
    /// another model or with other dimensions than `embedder`'s. A live memory whose stored
    /// embedding is unusable (empty, wrong size, NaN...) does not stop the open: it is left
    /// out of semantic search, with a warning, until
    /// [`repair`](MemoryStorage::repair) embeds it again.
    pub async fn open(
        path: impl Into<PathBuf>,
        embedder: Arc<dyn Embedder>,
    ) -> StorageResult<Self> {
        Self::open_with(SqliteConfig::new(path), embedder).await
    }

    /// [`open`](Self::open) with explicit options.
    pub async fn open_with(
        config: SqliteConfig,
        embedder: Arc<dyn Embedder>,
    ) -> StorageResult<Self> {
        config.validate()?;
        let dims = NonZeroUsize::new(embedder.dimensions()).ok_or_else(|| {
            StorageError::invalid(
                "embedder",
                format!("model {} reports 0 dimensions", embedder.model_id()),
            )
        })?;
        let inner = tokio::task::spawn_blocking(move || Inner::open(config, embedder, dims))
            .await
            .map_err(join_error)??;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// The options the store was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// The embedder that turns texts into vectors.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.inner.embedder
    }

    /// Number of vectors in the in-memory index (live memories as of the last refresh).
    pub fn indexed_vectors(&self) -> usize {
        self.inner.index.len()
    }

    /// The stored (unit-length) embedding of the live memory with this hash, if any.
    pub async fn get_embedding(&self, hash: &ContentHash) -> StorageResult<Option<Vec<f32>>> {
        let hash = hash.clone();
        self.run(move |inner| {
            let blob: Option<Vec<u8>> = inner.read("reading an embedding", |c| {
                c.prepare_cached(
                    "SELECT embedding FROM memories WHERE content_hash = ?1 AND deleted_at IS NULL",
                )?
                .query_row([hash.as_str()], |r| r.get(0))
                .optional()
            })?;
            blob.map(|b| {
                let mut v = Vec::new();
                crate::codec::decode_embedding_into(&b, inner.dims.get(), &mut v).map_err(
                    |bytes| {
                        StorageError::backend(
                            BACKEND,
                            format!(
                                "the embedding of {hash} in {} has {bytes} bytes, not {}",
                                inner.config.path.display(),
                                inner.dims.get() * 4
                            ),
                            "embedding size mismatch",
                        )
                    },
                )?;
                Ok(v)
            })
            .transpose()
        })
        .await
    }

    /// Semantic search with a query vector computed elsewhere (no embedder call): the true
    /// top `limit` among live memories matching `filter`, most similar first.
    ///
    /// `vector` must have the store's dimensions; it is scaled to unit length if needed.
    /// This is [`search`](MemoryStorage::search) minus the embedding step, for callers
    /// that already hold an embedding and for benchmarks of retrieval alone.
    pub async fn search_by_vector(
        &self,
        vector: Vec<f32>,
        limit: usize,
        filter: MemoryFilter,
        min_similarity: Option<f32>,
    ) -> StorageResult<Vec<MemoryQueryResult>> {
        let vector = unit_vector(vector, self.inner.dims.get()).map_err(|problem| {
            StorageError::invalid("embedding", format!("the query vector {problem}"))
        })?;
        let query = SemanticQuery {
            text: "(query vector)".into(),
            limit,
            filter,
            min_similarity,
        };
        query.validate()?;
        self.run(move |inner| inner.search(&query, &vector)).await
    }

    /// The device id this database stamps on its changes, when the change log is on
    /// ([`SqliteConfig::change_log`]). Created once per database file and kept in it, so
    /// every process opening the file shares it.
    pub fn device_id(&self) -> Option<memory_sync::DeviceId> {
        self.inner.log.map(ChangeLog::device)
    }

    /// Up to `limit` changes of the change log with a seq greater than `after_seq`, oldest
    /// first: the page a sync engine pushes next. Start with `after_seq = 0`, then pass the
    /// last seq returned. Reads whatever the log holds, also when this store was opened with
    /// the log off (the rows then come from an earlier run with it on).
    ///
    /// A row that does not decode is an error naming its seq (see [`OutboxError`](crate::OutboxError)).
    pub async fn pending_changes(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> StorageResult<Vec<OutboxEntry>> {
        self.run(move |inner| {
            let rows = inner.read("reading the change log", |c| {
                outbox::pending_rows(c, after_seq, limit)
            })?;
            Ok(outbox::decode(rows)?)
        })
        .await
    }

    /// How many changes wait in the change log to be pushed (the hybrid backend's backlog).
    pub async fn outbox_len(&self) -> StorageResult<u64> {
        self.run(move |inner| {
            inner.read("counting the change log", |c| {
                c.query_row("SELECT COUNT(*) FROM sync_outbox", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| u64::try_from(n).unwrap_or(0))
            })
        })
        .await
    }

    /// Removes the changes with a seq up to `up_to_seq` from the change log, once they are
    /// pushed; returns how many were removed. Acking seqs already acked removes nothing, so
    /// a sync engine that crashed between pushing and acking can simply ack again. Safe
    /// with several processes on the file: the delete is one write transaction, and a seq
    /// is never reused, so a row written after the pushed page is never removed by it.
    pub async fn ack_changes(&self, up_to_seq: u64) -> StorageResult<u64> {
        self.run(move |inner| {
            inner.write("acknowledging pushed changes", |tx| {
                Ok(outbox::ack(tx, up_to_seq)?)
            })
        })
        .await
    }

    /// Runs `f` on the blocking pool.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(join_error)?
    }

    /// Embeds `texts` in one call, checking what the model returns.
    pub(crate) async fn embed(&self, texts: Vec<String>) -> StorageResult<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let vectors = inner
            .embedder
            .embed(&texts)
            .await
            .map_err(|e| StorageError::Embedding {
                message: format!(
                    "model {} could not embed {} text(s): {e}",
                    inner.model,
                    texts.len()
                ),
                source: Some(Box::new(e)),
            })?;
        backend::checked_vectors(
            &inner.model,
            inner.dims.get(),
            texts.len(),
            vectors,
            "; check the model files",
        )
    }

    /// Checks a memory before storing and separates its supplied embedding (made unit
    /// length) from it.
    fn prepare(&self, memory: Memory) -> StorageResult<Prepared> {
        prepare_memory(memory, self.inner.dims.get())
    }
}

/// A `spawn_blocking` task that did not finish.
fn join_error(e: JoinError) -> StorageError {
    if e.is_panic() {
        StorageError::backend(
            BACKEND,
            "a database task panicked; this is a bug, please report it with the log",
            e,
        )
    } else {
        StorageError::Unavailable {
            backend: BACKEND.into(),
            message: "the database task was cancelled (the runtime is shutting down)".into(),
            source: Some(Box::new(e)),
        }
    }
}

/// `usize` → SQLite integer, saturating (SQLite integers are `i64`).
pub(crate) fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// SQLite count → `u64` (counts are never negative).
fn count_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Inner {
    /// Opens the connections, migrates, checks the model and loads the index.
    fn open(
        config: SqliteConfig,
        embedder: Arc<dyn Embedder>,
        dims: NonZeroUsize,
    ) -> StorageResult<Self> {
        let path = config.path.clone();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StorageError::Unavailable {
                backend: BACKEND.into(),
                message: format!(
                    "cannot create the directory {} for the database: {e}; \
                     check its permissions or choose another path",
                    parent.display()
                ),
                source: Some(Box::new(e)),
            })?;
        }
        let model = embedder.model_id().to_owned();
        let mut writer = open_connection(&config, Role::Writer)
            .map_err(|e| db_error("opening the database", &path, e))?;
        let log = write_transaction(&mut writer, &config, "preparing the database", |tx| {
            migrate(tx, &path)?;
            check_model(tx, &model, dims.get())?;
            let log = config.change_log.then(|| ChangeLog::open(tx)).transpose()?;
            if let Some(log) = log {
                let seeded = outbox::seed(tx, log)?;
                if seeded > 0 {
                    tracing::info!(
                        memories = seeded,
                        "recorded the memories written before the change log was on"
                    );
                }
            }
            Ok(log)
        })?;
        let follower = open_connection(&config, Role::Reader)
            .map_err(|e| db_error("opening the database", &path, e))?;
        let index = LiveIndex::load(follower, dims)
            .map_err(|e| db_error("loading the embeddings", &path, e))?;
        tracing::info!(
            path = %path.display(),
            memories = index.len(),
            model,
            dims = dims.get(),
            "opened the memory database"
        );
        Ok(Self {
            readers: ReaderPool::new(config.clone()),
            config,
            embedder,
            model,
            dims,
            writer: Mutex::new(writer),
            index,
            log,
        })
    }

    pub(crate) fn db_err(&self, action: &str, e: rusqlite::Error) -> StorageError {
        db_error(action, &self.config.path, e)
    }

    /// The change log's recorder for this write transaction, when the log is on.
    pub(crate) fn recorder<'t>(
        &self,
        tx: &'t Transaction<'t>,
    ) -> Result<Option<outbox::Recorder<'t>>, TxError> {
        self.log.map(|log| log.recorder(tx)).transpose()
    }

    /// Runs `f` on a pooled reader.
    pub(crate) fn read<T>(
        &self,
        action: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> StorageResult<T> {
        let conn = self.readers.get().map_err(|e| self.db_err(action, e))?;
        f(&conn).map_err(|e| self.db_err(action, e))
    }

    /// Runs `body` in a write transaction, then brings the vector index up to date.
    pub(crate) fn write<T>(
        &self,
        action: &str,
        body: impl FnMut(&Transaction<'_>) -> Result<T, TxError>,
    ) -> StorageResult<T> {
        let result = {
            let mut writer = lock(&self.writer);
            write_transaction(&mut writer, &self.config, action, body)
        };
        if result.is_ok()
            && let Err(e) = self.index.refresh()
        {
            // The write is committed; the next search refreshes again.
            tracing::warn!(error = %e, "refreshing the vector index after {action} failed");
        }
        result
    }

    /// The stored vectors of `hashes` (see [`MemoryStorage::get_embeddings`]): one query
    /// per [`GET_EMBEDDINGS_CHUNK`] hashes on one pooled reader.
    fn embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        let dims = self.dims.get();
        let mut found: HashMap<String, Vec<f32>> = HashMap::with_capacity(hashes.len());
        self.read("reading embeddings", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT content_hash, embedding FROM memories \
                 WHERE content_hash IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL",
            )?;
            for chunk in hashes.chunks(GET_EMBEDDINGS_CHUNK) {
                let list = crate::codec::json_strings(chunk.iter().map(ContentHash::as_str));
                let mut rows = stmt.query([list])?;
                while let Some(row) = rows.next()? {
                    let hash: String = row.get(0)?;
                    let mut v = Vec::with_capacity(dims);
                    match decode_stored(row.get_ref(1)?, dims, &mut v) {
                        Ok(()) => {
                            found.insert(hash, v);
                        }
                        Err(problem) => tracing::warn!(
                            %hash,
                            problem = %problem.detail,
                            "not handing out an unusable embedding; run `mcp-memory repair`"
                        ),
                    }
                }
            }
            Ok(())
        })?;
        Ok(hashes
            .iter()
            .map(|h| found.get(h.as_str()).cloned())
            .collect())
    }

    /// Whether a live memory has this hash.
    fn is_live(&self, hash: &ContentHash) -> StorageResult<bool> {
        self.read("looking up a memory", |c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM memories WHERE content_hash = ?1 AND deleted_at IS NULL)",
            )?
            .query_row([hash.as_str()], |r| r.get(0))
        })
    }

    /// Which of `hashes` belong to live memories.
    fn live_hashes(&self, hashes: &[&str]) -> StorageResult<HashSet<String>> {
        if hashes.is_empty() {
            return Ok(HashSet::new());
        }
        let list = crate::codec::json_strings(hashes.iter().copied());
        self.read("looking up memories", |c| {
            c.prepare_cached(
                "SELECT content_hash FROM memories \
                 WHERE content_hash IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL",
            )?
            .query_map([list], |r| r.get(0))?
            .collect()
        })
    }

    /// Live memories by row id.
    fn memories_by_id(&self, ids: &[i64]) -> StorageResult<HashMap<i64, Memory>> {
        let list = json_ids(ids.iter().copied());
        self.read("reading memories", |c| {
            c.prepare_cached(&format!(
                "SELECT {MEMORY_COLUMNS} FROM memories m \
                 WHERE m.id IN (SELECT value FROM json_each(?1)) AND m.deleted_at IS NULL"
            ))?
            .query_map([list], memory_from_row)?
            .collect()
        })
    }

    fn search(
        &self,
        query: &SemanticQuery,
        vector: &[f32],
    ) -> StorageResult<Vec<MemoryQueryResult>> {
        let refresh = || {
            self.index
                .refresh()
                .map_err(|e| self.db_err("refreshing the vector index", e))
        };
        refresh()?;
        let mut attempt = 0;
        loop {
            let hits = self
                .index
                .search(vector, query.limit, query.min_similarity, &query.filter)
                .map_err(|e| StorageError::backend(BACKEND, "searching the vector index", e))?;
            if hits.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<i64> = hits.iter().map(|h| h.id).collect();
            let mut rows = self.memories_by_id(&ids)?;
            // A row missing (or changed so that it no longer matches) was written by another
            // connection after the index's last refresh: refresh once and rank again.
            let stale = hits
                .iter()
                .any(|h| rows.get(&h.id).is_none_or(|m| !query.filter.matches(m)));
            if stale && attempt == 0 {
                attempt += 1;
                refresh()?;
                continue;
            }
            return Ok(hits
                .iter()
                .filter_map(|h| {
                    let memory = rows.remove(&h.id)?;
                    query.filter.matches(&memory).then(|| MemoryQueryResult {
                        memory,
                        relevance_score: h.score.clamp(-1.0, 1.0),
                        debug_info: Some(QueryDebugInfo {
                            method: "semantic".into(),
                            raw_score: Some(h.score),
                            model: Some(self.model.clone()),
                            note: None,
                        }),
                    })
                })
                .collect());
        }
    }

    fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>> {
        let Some(cond) = Conditions::for_filter(&query.filter) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m WHERE {} \
             ORDER BY m.created_at_us DESC, m.content_hash DESC LIMIT ? OFFSET ?",
            cond.sql
        );
        let mut params = cond.params;
        params.push(Value::Integer(query.limit.map_or(-1, sql_int)));
        params.push(Value::Integer(sql_int(query.offset)));
        self.read("listing memories", |c| {
            c.prepare_cached(&sql)?
                .query_map(params_from_iter(params.iter()), |r| {
                    memory_from_row(r).map(|(_, m)| m)
                })?
                .collect()
        })
    }

    fn count(&self, filter: &MemoryFilter) -> StorageResult<u64> {
        let Some(cond) = Conditions::for_filter(filter) else {
            return Ok(0);
        };
        let sql = format!("SELECT COUNT(*) FROM memories m WHERE {}", cond.sql);
        let n: i64 = self.read("counting memories", |c| {
            c.prepare_cached(&sql)?
                .query_row(params_from_iter(cond.params.iter()), |r| r.get(0))
        })?;
        Ok(count_u64(n))
    }

    fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>> {
        self.read("reading a memory", |c| {
            c.prepare_cached(&format!(
                "SELECT {MEMORY_COLUMNS} FROM memories m \
                 WHERE m.content_hash = ?1 AND m.deleted_at IS NULL"
            ))?
            .query_row([hash.as_str()], |r| memory_from_row(r).map(|(_, m)| m))
            .optional()
        })
    }

    fn stats(&self) -> StorageResult<StorageStats> {
        let week_ago = Timestamp::now().epoch_micros().saturating_sub(WEEK_MICROS);
        let (total, tombstones, this_week, content_bytes, unique_tags, version) =
            self.read("computing statistics", |c| {
                let counts = c.query_row(
                    "SELECT \
                       (SELECT COUNT(*) FROM memories WHERE deleted_at IS NULL), \
                       (SELECT COUNT(*) FROM memories WHERE deleted_at IS NOT NULL), \
                       (SELECT COUNT(*) FROM memories WHERE deleted_at IS NULL AND created_at_us >= ?1), \
                       (SELECT COALESCE(SUM(octet_length(content)), 0) FROM memories WHERE deleted_at IS NULL), \
                       (SELECT COUNT(DISTINCT t.tag) FROM memory_tags t \
                          JOIN memories m ON m.id = t.memory_id WHERE m.deleted_at IS NULL)",
                    [week_ago],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                        ))
                    },
                )?;
                Ok((counts.0, counts.1, counts.2, counts.3, counts.4, user_version(c)?))
            })?;
        let file_bytes = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        let mut wal = self.config.path.clone().into_os_string();
        wal.push("-wal");
        let db_bytes = file_bytes(&self.config.path);
        let wal_bytes = file_bytes(Path::new(&wal)).unwrap_or(0);
        let mut extra = serde_json::Map::new();
        extra.insert("path".into(), self.config.path.display().to_string().into());
        extra.insert("schema_version".into(), version.into());
        extra.insert("indexed_vectors".into(), self.index.len().into());
        extra.insert("wal_bytes".into(), wal_bytes.into());
        Ok(StorageStats {
            backend: BACKEND.into(),
            total_memories: count_u64(total),
            unique_tags: count_u64(unique_tags),
            memories_this_week: count_u64(this_week),
            content_bytes: count_u64(content_bytes),
            tombstones: count_u64(tombstones),
            embedding_model: self.model.clone(),
            embedding_dimensions: self.dims.get(),
            storage_bytes: db_bytes.map(|b| b + wal_bytes),
            extra,
        })
    }

    fn all_tags(&self) -> StorageResult<Vec<TagCount>> {
        self.read("counting tags", |c| {
            c.prepare_cached(
                "SELECT t.tag, COUNT(*) AS n FROM memory_tags t \
                 JOIN memories m ON m.id = t.memory_id WHERE m.deleted_at IS NULL \
                 GROUP BY t.tag ORDER BY n DESC, t.tag ASC",
            )?
            .query_map([], |r| {
                Ok(TagCount {
                    tag: r.get(0)?,
                    count: count_u64(r.get(1)?),
                })
            })?
            .collect()
        })
    }
}

#[async_trait]
impl MemoryStorage for SqliteStorage {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn initialize(&self) -> StorageResult<()> {
        self.run(|inner| {
            let model = inner.model.clone();
            let dims = inner.dims.get();
            let path = inner.config.path.clone();
            inner.write("preparing the database", |tx| {
                migrate(tx, &path)?;
                check_model(tx, &model, dims)
            })
        })
        .await
    }

    async fn store(&self, memory: Memory) -> StorageResult<StoreOutcome> {
        let Prepared { memory, vector } = self.prepare(memory)?;
        let vector = match vector {
            Some(v) => v,
            None => {
                let hash = memory.content_hash().clone();
                if self.run(move |inner| inner.is_live(&hash)).await? {
                    // Skip the embedding: the write would leave the live memory alone anyway.
                    return Ok(StoreOutcome::Duplicate);
                }
                let mut vectors = self.embed(vec![memory.content().to_owned()]).await?;
                vectors.pop().ok_or_else(|| StorageError::Embedding {
                    message: format!("model {} returned no vector", self.inner.model),
                    source: None,
                })?
            }
        };
        self.run(move |inner| {
            inner.write("storing a memory", |tx| {
                // Another process may have given an empty file another model since open.
                check_model(tx, &inner.model, inner.dims.get())?;
                let rec = inner.recorder(tx)?;
                put_memory(
                    tx,
                    &memory,
                    Some(&vector),
                    &mut Seq::default(),
                    rec.as_ref(),
                )
            })
        })
        .await
    }

    async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        let (mut outcomes, mut items) = backend::check_each(memories, |m| self.prepare(m));
        if items.is_empty() {
            return Ok(outcomes.finish());
        }

        // Embed, in one call, each memory that needs it and can be stored: not live
        // already, and the first of its hash in the batch.
        let live = {
            let hashes: Vec<String> = items
                .iter()
                .filter(|(_, p)| p.vector.is_none())
                .map(|(_, p)| p.memory.content_hash().as_str().to_owned())
                .collect();
            self.run(move |inner| {
                let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
                inner.live_hashes(&refs)
            })
            .await?
        };
        let wanted = backend::to_embed(&items, |hash| live.contains(hash.as_str()));
        let texts = wanted
            .iter()
            .map(|&k| items[k].1.memory.content().to_owned())
            .collect();
        let vectors = self.embed(texts).await?;
        backend::give_vectors(&mut items, &wanted, vectors);

        let written = self
            .run(move |inner| {
                inner.write("storing a batch of memories", |tx| {
                    check_model(tx, &inner.model, inner.dims.get())?;
                    let mut seq = Seq::default();
                    let rec = inner.recorder(tx)?;
                    let mut out = Vec::with_capacity(items.len());
                    for (i, p) in &items {
                        let put =
                            put_memory(tx, &p.memory, p.vector.as_deref(), &mut seq, rec.as_ref());
                        let result = match put {
                            Ok(outcome) => Ok(outcome),
                            Err(TxError::Storage(e)) => Err(e),
                            Err(db) => return Err(db),
                        };
                        out.push((*i, result));
                    }
                    Ok(out)
                })
            })
            .await?;
        for (i, result) in written {
            outcomes.set(i, result);
        }
        Ok(outcomes.finish())
    }

    async fn search(&self, query: &SemanticQuery) -> StorageResult<Vec<MemoryQueryResult>> {
        if !query.can_match()? {
            return Ok(Vec::new());
        }
        let vector = self
            .embed(vec![query.text.clone()])
            .await?
            .pop()
            .ok_or_else(|| StorageError::Embedding {
                message: format!("model {} returned no vector", self.inner.model),
                source: None,
            })?;
        let query = query.clone();
        self.run(move |inner| inner.search(&query, &vector)).await
    }

    async fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>> {
        query.validate()?;
        let query = query.clone();
        self.run(move |inner| inner.list(&query)).await
    }

    async fn count(&self, filter: &MemoryFilter) -> StorageResult<u64> {
        let filter = filter.clone();
        self.run(move |inner| inner.count(&filter)).await
    }

    async fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>> {
        let hash = hash.clone();
        self.run(move |inner| inner.get_by_hash(&hash)).await
    }

    async fn get_embeddings(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Vec<f32>>>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let hashes = hashes.to_vec();
        self.run(move |inner| inner.embeddings(&hashes)).await
    }

    async fn delete(&self, hash: &ContentHash) -> StorageResult<DeleteReport> {
        let deleted = hash.clone();
        let hash = hash.clone();
        self.run(move |inner| {
            inner.write("deleting a memory", |tx| {
                let seq = bump_counter(tx, META_SEQ)?;
                let n = tx
                    .prepare_cached(
                        "UPDATE memories SET deleted_at = ?1, seq = ?2 \
                         WHERE content_hash = ?3 AND deleted_at IS NULL",
                    )?
                    .execute(params![
                        Timestamp::now().epoch_seconds(),
                        seq,
                        hash.as_str()
                    ])?;
                if n == 0 {
                    return Err(StorageError::NotFound { hash: hash.clone() }.into());
                }
                if let Some(rec) = inner.recorder(tx)? {
                    rec.delete(&hash)?;
                }
                Ok(())
            })
        })
        .await?;
        // One SQLite transaction: nothing is left to clean up once it committed.
        Ok(DeleteReport {
            hashes: vec![deleted],
            ..DeleteReport::default()
        })
    }

    async fn delete_memories(&self, request: &DeleteRequest) -> StorageResult<DeleteReport> {
        request.selector.validate()?;
        let request = request.clone();
        self.run(move |inner| inner.delete_memories(&request)).await
    }

    async fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
        self.run(|inner| inner.cleanup_duplicates()).await
    }

    async fn update_memory_metadata(
        &self,
        hash: &ContentHash,
        updates: MemoryUpdate,
        preserve_timestamps: bool,
    ) -> StorageResult<Memory> {
        let hash = hash.clone();
        self.run(move |inner| inner.update(&hash, &updates, preserve_timestamps))
            .await
    }

    async fn warm_up(&self) -> StorageResult<()> {
        let inner = &self.inner;
        inner
            .embedder
            .warm_up()
            .await
            .map_err(|e| StorageError::Embedding {
                message: format!("model {} could not be warmed up: {e}", inner.model),
                source: Some(Box::new(e)),
            })
    }

    async fn get_stats(&self) -> StorageResult<StorageStats> {
        self.run(|inner| inner.stats()).await
    }

    async fn get_all_tags(&self) -> StorageResult<Vec<TagCount>> {
        self.run(|inner| inner.all_tags()).await
    }

    async fn purge_deleted(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        self.run(move |inner| inner.purge(older_than)).await
    }

    async fn check(&self) -> StorageResult<ConsistencyReport> {
        consistency::check(self).await
    }

    async fn repair(&self) -> StorageResult<RepairReport> {
        consistency::repair(self).await
    }
}
