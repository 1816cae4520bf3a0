//! Replica mode: the hybrid backend's view of a [`CloudflareStorage`]. Devices hold the
//! memories and compute the vectors; Cloudflare keeps upstream's tables and index in step
//! with the devices' merged state so the Python service and this backend keep reading them.
//!
//! * [`ReplicaModel`]: the devices' local model, recorded in D1 as the store's embedding
//!   model (as the Workers AI model is otherwise); it embeds nothing, so a store in replica
//!   mode never calls Workers AI.
//! * [`CloudflareStorage::put_replicas`]: the projection of merged states into upstream's
//!   rows, tag links, vectors and R2 objects, guarded against a stale projection by the
//!   side table `[ns_]mcp_memory_sync_projection(content_hash, seq)`.
//! * [`CloudflareStorage::live_hashes_page`] and [`CloudflareStorage::fetch_replicas_of`]:
//!   the reads of a full sync's content-hash diff (memories written by the Python service
//!   or this backend have no change log rows).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use cloudflare_d1::{Param, QueryResult, Statement};
use cloudflare_r2::PutObject;
use cloudflare_vectorize::Vector;
use futures::{StreamExt, TryStreamExt};
use memory_core::{ContentHash, Memory};
use memory_embed::{EmbedError, Embedder};
use memory_storage::{StorageError, StorageResult};
use memory_sync::{Fields, Replica};
use serde_json::json;

use super::{CloudflareStorage, DELETE_IDS_CHUNK, GET_EMBEDDINGS_D1_CHUNK, Inner, PARALLEL_CALLS};
use crate::change_log::MAX_PAGE_BYTES;
use crate::config::R2_BUCKET_ENV;
use crate::error_map::{bad_row, r2_error};
use crate::rows::{PREVIEW_CHARS, epoch_text, json_strings, prefix_chars, text};
use crate::sql::now_text;

/// Replicas per projection page at most: Vectorize's per-request upsert cap (5,000), so a
/// page's vectors go in one upsert; pages also stop at [`MAX_PAGE_BYTES`] of row JSON.
pub const PROJECT_PAGE_ITEMS: usize = 5000;

/// Hashes one [`CloudflareStorage::live_hashes_page`] returns at most (about 90 bytes each
/// in D1's answer: under 1 MB).
pub const MAX_HASHES_PAGE: usize = 10_000;

/// The devices' embedding model, standing in for Workers AI in a store in replica mode:
/// [`initialize`](memory_storage::MemoryStorage::initialize) records it in D1 and creates
/// the Vectorize index with its dimensions, and it refuses to embed (the vectors come from
/// the devices), so a search through such a store fails rather than call Workers AI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaModel {
    id: String,
    dimensions: usize,
}

impl ReplicaModel {
    /// The model `id` (as the devices' local store records it) of `dimensions`.
    #[must_use]
    pub fn new(id: impl Into<String>, dimensions: usize) -> Self {
        Self {
            id: id.into(),
            dimensions,
        }
    }
}

#[async_trait]
impl Embedder for ReplicaModel {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Err(EmbedError::Other(format!(
            "this Cloudflare store is the hybrid backend's replica: {} text(s) would need \
             embedding, but its vectors come from the devices (model {}); search through \
             the hybrid backend, which embeds locally",
            texts.len(),
            self.id
        )))
    }
}

/// What one [`CloudflareStorage::put_replicas`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectReport {
    /// D1 requests sent (one batch per page).
    pub d1_requests: u64,
    /// Vectorize requests sent (upserts and deletes).
    pub vectorize_requests: u64,
    /// R2 requests sent (large content written or removed).
    pub r2_requests: u64,
    /// Replicas written (their projection was the newest).
    pub projected: u64,
    /// Replicas left alone because a projection with a greater log position was there.
    pub stale: u64,
}

/// One replica ready to project.
struct Item<'a> {
    seq: i64,
    replica: &'a Replica,
    /// For a live replica: the memory (full content) and whether it goes to R2.
    live: Option<(Memory, bool)>,
}

/// A winner of a page, as the guard statement read it before the writes.
struct Won {
    hash: String,
    vector_id: Option<String>,
    r2_key: Option<String>,
    had_row: bool,
    was_live: bool,
}

impl CloudflareStorage {
    /// A store in replica mode over `parts` (whose embedder is replaced by `model`): see
    /// [`ReplicaModel`]. Call [`initialize`](memory_storage::MemoryStorage::initialize)
    /// before use: it refuses a database or index made with another model.
    ///
    /// # Errors
    ///
    /// As [`CloudflareStorage::from_parts`].
    pub fn replica_from_parts(
        mut parts: super::Parts,
        options: super::Options,
        model: ReplicaModel,
    ) -> StorageResult<Self> {
        parts.embedder = std::sync::Arc::new(model);
        let mut store = Self::from_parts(parts, options)?;
        if let Some(inner) = std::sync::Arc::get_mut(&mut store.inner) {
            inner.replica = true;
        }
        Ok(store)
    }

    /// Writes the devices' merged state of each memory into upstream's tables, tag links,
    /// Vectorize and R2, each at its change log position `seq`. A live replica becomes a
    /// live row with exactly its fields (a soft-deleted row is revived), its tag links, and
    /// its vector with the metadata this backend writes; a dead one is soft-deleted as
    /// [`delete`](memory_storage::MemoryStorage::delete) does, its vector and large content
    /// removed. Never embeds.
    ///
    /// Pages of at most [`PROJECT_PAGE_ITEMS`] replicas and [`MAX_PAGE_BYTES`] of row JSON
    /// each cost one D1 batch (one transaction) and one Vectorize upsert, plus deletes of
    /// 20 ids and one R2 call per large memory. Inside the batch every write applies only
    /// where no projection of the memory with a greater `seq` is recorded, and its last
    /// statement records the `seq`s; only the replicas that won get their Vectorize and R2
    /// calls. So two devices projecting one memory at once leave the newer state, whatever
    /// the order they arrive in. The same `seq` again applies again.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] (before anything is sent) for a live replica without
    /// content or a vector of the model's dimensions, or with content over the large-content
    /// threshold and no R2 bucket; the first failing call's error otherwise — the pages
    /// before it are projected, and projecting the same replicas again completes the rest.
    pub async fn put_replicas(&self, replicas: &[(i64, Replica)]) -> StorageResult<ProjectReport> {
        let i = &self.inner;
        // One entry per memory, at its greatest position (a later equal one wins).
        let mut latest: HashMap<&ContentHash, usize> = HashMap::new();
        for (k, (seq, r)) in replicas.iter().enumerate() {
            let e = latest.entry(r.hash()).or_insert(k);
            if replicas[*e].0 <= *seq {
                *e = k;
            }
        }
        let mut chosen: Vec<usize> = latest.into_values().collect();
        chosen.sort_unstable();
        let items: Vec<Item<'_>> = chosen
            .into_iter()
            .map(|k| i.item(replicas[k].0, &replicas[k].1))
            .collect::<StorageResult<_>>()?;
        let mut report = ProjectReport::default();
        let mut page: Vec<Item<'_>> = Vec::new();
        let mut bytes = 0;
        for item in items {
            let size = i.full_json(&item).len() + 200;
            if !page.is_empty()
                && (page.len() == PROJECT_PAGE_ITEMS || bytes + size > MAX_PAGE_BYTES)
            {
                i.project_page(std::mem::take(&mut page), &mut report)
                    .await?;
                bytes = 0;
            }
            bytes += size;
            page.push(item);
        }
        if !page.is_empty() {
            i.project_page(page, &mut report).await?;
        }
        Ok(report)
    }

    /// Up to `limit` (at most [`MAX_HASHES_PAGE`]) hashes of upstream's live memories after
    /// `after`, in hash order: one D1 query. Page on with the last hash until a page is
    /// empty.
    ///
    /// # Errors
    ///
    /// D1's error; a malformed hash in a row.
    pub async fn live_hashes_page(
        &self,
        after: Option<&ContentHash>,
        limit: usize,
    ) -> StorageResult<Vec<ContentHash>> {
        let i = &self.inner;
        let limit = limit.clamp(1, MAX_HASHES_PAGE) as i64;
        let s = Statement::new(format!(
            "SELECT content_hash FROM {} WHERE deleted_at IS NULL AND content_hash > ? \
             ORDER BY content_hash LIMIT CAST(? AS INTEGER)",
            i.tables.memories
        ))
        .bind(after.map(ContentHash::as_str).unwrap_or_default())
        .bind(Param::Integer(limit))
        .idempotent(true);
        let r = i.query("listing live memories", s).await?;
        r.rows
            .iter()
            .map(|row| {
                let h = text(row, "content_hash").unwrap_or_default();
                h.parse::<ContentHash>()
                    .map_err(|e| bad_row(format!("content_hash {h:?}: {e}")))
            })
            .collect()
    }

    /// Upstream's live memory of each hash (full content, from R2 when it is there) and its
    /// vector from Vectorize (`None` when the index has none), in input order; `None` for a
    /// hash with no live row. For memories the Python service or this backend wrote, which
    /// no change log row carries. One D1 query per 500 hashes, `get_by_ids` calls of 20,
    /// one R2 GET per large memory.
    ///
    /// # Errors
    ///
    /// The first failing call's error; a memory whose R2 object is missing is an error
    /// naming it (its excerpt must not be taken for its content).
    pub async fn fetch_replicas_of(
        &self,
        hashes: &[ContentHash],
    ) -> StorageResult<Vec<Option<(Memory, Option<Vec<f32>>)>>> {
        let i = &self.inner;
        let mut found: HashMap<String, (Memory, Option<Vec<f32>>)> = HashMap::new();
        for chunk in hashes.chunks(GET_EMBEDDINGS_D1_CHUNK) {
            let s = Statement::new(i.select(
                "m.deleted_at IS NULL AND m.content_hash IN (SELECT value FROM json_each(?))",
            ))
            .bind(json_strings(chunk.iter().map(ContentHash::as_str)))
            .idempotent(true);
            let r = i.query("reading memories to sync", s).await?;
            let rows = Inner::rows(&r)?;
            let ids: Vec<String> = rows
                .iter()
                .map(|row| {
                    row.vector_id
                        .clone()
                        .unwrap_or_else(|| i.vector_id(row.memory.content_hash()))
                })
                .collect();
            let vectors: HashMap<String, Vec<f32>> = i
                .fetch_vectors(&ids, "reading memories' vectors to sync")
                .await?
                .into_iter()
                .map(|v| (v.id, v.values))
                .collect();
            let memories = i.hydrate_strict(rows).await?;
            for (memory, id) in memories.into_iter().zip(ids) {
                let vector = vectors.get(&id).cloned();
                found.insert(memory.content_hash().as_str().to_owned(), (memory, vector));
            }
        }
        Ok(hashes.iter().map(|h| found.remove(h.as_str())).collect())
    }
}

impl Inner {
    /// Checks a replica and builds what its projection writes.
    fn item<'a>(&self, seq: i64, replica: &'a Replica) -> StorageResult<Item<'a>> {
        let hash = replica.hash();
        let Some(fields) = replica.state.live_fields() else {
            return Ok(Item {
                seq,
                replica,
                live: None,
            });
        };
        let invalid =
            |why: String| StorageError::invalid("replica", format!("memory {hash}: {why}"));
        let content = replica
            .content
            .clone()
            .ok_or_else(|| invalid("a live replica without its content".into()))?;
        match &replica.vector {
            Some(v) if v.len() == self.dims => {}
            Some(v) => {
                return Err(invalid(format!(
                    "its vector has {} dimensions, the store's model {} has {}",
                    v.len(),
                    self.model,
                    self.dims
                )));
            }
            None => return Err(invalid("a live replica without its vector".into())),
        }
        let large = content.len() > self.options.large_content_threshold;
        if large && self.parts.r2.is_none() {
            return Err(invalid(format!(
                "{} bytes of content is over the large-content threshold of {} bytes and no \
                 R2 bucket is configured; set {R2_BUCKET_ENV}",
                content.len(),
                self.options.large_content_threshold
            )));
        }
        let Fields {
            tags,
            memory_type,
            metadata,
            created_at,
            updated_at,
        } = fields.clone();
        let memory = Memory::from_parts(
            content,
            hash.clone(),
            tags,
            memory_type,
            metadata,
            None,
            created_at,
            updated_at,
        );
        Ok(Item {
            seq,
            replica,
            live: Some((memory, large)),
        })
    }

    /// What the guard, link and record statements read of an item.
    fn slim_json(item: &Item<'_>) -> serde_json::Value {
        let tags: Vec<&str> = item
            .live
            .as_ref()
            .map(|(m, _)| m.tags.iter().map(String::as_str).collect())
            .unwrap_or_default();
        json!({
            "hash": item.replica.hash().as_str(),
            "seq": item.seq,
            "live": i64::from(item.live.is_some()),
            "tags": tags,
        })
    }

    /// The row the upsert writes for a live item (empty for a dead one), with the same
    /// encodings as a store ([`crate::sql::store_statements`]).
    fn full_json(&self, item: &Item<'_>) -> String {
        let Some((m, large)) = &item.live else {
            return String::new();
        };
        let hash = m.content_hash();
        let content = if *large {
            prefix_chars(m.content(), PREVIEW_CHARS)
        } else {
            m.content()
        };
        json!({
            "hash": hash.as_str(),
            "seq": item.seq,
            "content": content,
            "type": m.memory_type.clone().unwrap_or_default(),
            "created": epoch_text(m.created_at),
            "created_iso": m.created_at.to_iso(),
            "updated": epoch_text(m.updated_at),
            "updated_iso": m.updated_at.to_iso(),
            "meta": m.metadata.to_json_string(),
            "vid": self.vector_id(hash),
            "size": m.content().len(),
            "r2": if *large { self.r2_key(hash) } else { String::new() },
            "tags_csv": m.tags.joined(),
        })
        .to_string()
    }

    /// One page: the guarded D1 batch, then the winners' Vectorize and R2 calls.
    async fn project_page(
        &self,
        page: Vec<Item<'_>>,
        report: &mut ProjectReport,
    ) -> StorageResult<()> {
        let slim = serde_json::Value::Array(page.iter().map(Self::slim_json).collect()).to_string();
        let full = format!(
            "[{}]",
            page.iter()
                .filter(|it| it.live.is_some())
                .map(|it| self.full_json(it))
                .collect::<Vec<_>>()
                .join(",")
        );
        let statements = self.projection_statements(slim, full);
        let results = self.batch("projecting merged memories", statements).await?;
        report.d1_requests += 1;
        let won = winners(results.get(1))?;
        let by_hash: HashMap<&str, &Item<'_>> = page
            .iter()
            .map(|it| (it.replica.hash().as_str(), it))
            .collect();
        report.projected += won.len() as u64;
        report.stale += (page.len() - won.len()) as u64;

        let mut vectors: Vec<Vector> = Vec::new();
        let mut puts: Vec<(String, &Memory)> = Vec::new();
        let mut dead_vectors: Vec<String> = Vec::new();
        let mut dead_objects: Vec<String> = Vec::new();
        for w in &won {
            let Some(item) = by_hash.get(w.hash.as_str()) else {
                continue;
            };
            match (&item.live, &item.replica.vector) {
                (Some((memory, large)), Some(values)) => {
                    vectors.push(self.vector(memory, values.clone()));
                    if *large {
                        puts.push((self.r2_key(memory.content_hash()), memory));
                    }
                }
                (Some(_), None) => {}
                (None, _) => {
                    // As `delete`: the row's vector and, if it was live, its large content.
                    if w.had_row {
                        let hash = item.replica.hash();
                        dead_vectors
                            .push(w.vector_id.clone().unwrap_or_else(|| self.vector_id(hash)));
                        if w.was_live
                            && let Some(key) = &w.r2_key
                        {
                            dead_objects.push(key.clone());
                        }
                    }
                }
            }
        }
        // Why the objects are written after the rows, not first as a store does: only the
        // winners may write (a loser's object could outlive the newer dead state). The log's
        // append wrote the same bytes under the same key before any projection (content is
        // the memory's identity), so the row normally finds its object already there; this
        // write puts it back where a projected delete removed it before a revival.
        if let Some(r2) = &self.parts.r2 {
            let n = puts.len() as u64;
            // Owned bytes, not `&Memory`: a closure over a borrowed argument makes the
            // future not provably `Send` for every lifetime, and the sync engine spawns it.
            let puts: Vec<(String, Vec<u8>)> = puts
                .into_iter()
                .map(|(key, memory)| (key, memory.content().as_bytes().to_vec()))
                .collect();
            futures::stream::iter(puts)
                .map(|(key, bytes)| async move {
                    r2.put_object(PutObject::new(key, bytes))
                        .await
                        .map(|_| ())
                        .map_err(|e| r2_error("writing a projected memory's large content", e))
                })
                .buffer_unordered(PARALLEL_CALLS)
                .try_collect::<Vec<()>>()
                .await?;
            report.r2_requests += n;
        }
        report.vectorize_requests += self
            .upsert_counted("writing projected memories' vectors", vectors)
            .await?;
        report.vectorize_requests += dead_vectors.len().div_ceil(DELETE_IDS_CHUNK) as u64;
        self.delete_vectors("deleting projected memories' vectors", dead_vectors)
            .await?;
        if self.parts.r2.is_some() {
            report.r2_requests += dead_objects.len() as u64;
            self.delete_r2("deleting projected memories' large content", dead_objects)
                .await?;
        }
        Ok(())
    }

    /// The D1 batch of one page (one transaction): the side table if missing, the guard
    /// (which items win, and their rows as they were), the upsert, tag links, soft deletes,
    /// and last the positions recorded.
    fn projection_statements(&self, slim: String, full: String) -> Vec<Statement> {
        let (m, tg, mt) = (
            &self.tables.memories,
            &self.tables.tags,
            &self.tables.memory_tags,
        );
        let p = self.tables.sync_projection();
        let h = "json_extract(j.value, '$.hash')";
        let f = |key: &str| format!("json_extract(j.value, '$.{key}')");
        // Why every statement repeats the guard instead of reading the winners once: the
        // batch is one transaction, and the positions are recorded only by its last
        // statement, so the guard gives the same answer in each statement — and a data
        // statement can never apply where the guard said no.
        let win = format!(
            "NOT EXISTS (SELECT 1 FROM {p} p WHERE p.content_hash = {h} AND p.seq > {seq})",
            seq = f("seq")
        );
        let live = format!("{} = 1 AND {win}", f("live"));
        let dead = format!("{} = 0 AND {win}", f("live"));
        let s = |sql: String| Statement::new(sql).idempotent(true);
        vec![
            s(format!(
                "CREATE TABLE IF NOT EXISTS {p} (content_hash TEXT PRIMARY KEY, seq INTEGER NOT NULL)"
            )),
            s(format!(
                "SELECT {h} AS content_hash, m.vector_id AS vector_id, m.r2_key AS r2_key, \
                 m.id AS id, m.deleted_at AS deleted_at FROM json_each(?) j \
                 LEFT JOIN {m} m ON m.content_hash = {h} WHERE {win}"
            ))
            .bind(slim.clone()),
            s(format!(
                "INSERT INTO {m} (content_hash, content, memory_type, created_at, created_at_iso, \
                 updated_at, updated_at_iso, metadata_json, vector_id, content_size, r2_key, tags, \
                 deleted_at) SELECT {h}, {content}, NULLIF({ty}, ''), CAST({c} AS REAL), {ci}, \
                 CAST({u} AS REAL), {ui}, {meta}, {vid}, {size}, NULLIF({r2}, ''), {tags}, NULL \
                 FROM json_each(?) j WHERE {win} \
                 ON CONFLICT(content_hash) DO UPDATE SET content = excluded.content, \
                 memory_type = excluded.memory_type, created_at = excluded.created_at, \
                 created_at_iso = excluded.created_at_iso, updated_at = excluded.updated_at, \
                 updated_at_iso = excluded.updated_at_iso, metadata_json = excluded.metadata_json, \
                 vector_id = excluded.vector_id, content_size = excluded.content_size, \
                 r2_key = excluded.r2_key, tags = excluded.tags, deleted_at = NULL",
                content = f("content"),
                ty = f("type"),
                c = f("created"),
                ci = f("created_iso"),
                u = f("updated"),
                ui = f("updated_iso"),
                meta = f("meta"),
                vid = f("vid"),
                size = f("size"),
                r2 = f("r2"),
                tags = f("tags_csv"),
            ))
            .bind(full),
            s(format!(
                "INSERT OR IGNORE INTO {tg}(name) SELECT DISTINCT t.value FROM json_each(?) j, \
                 json_each({tl}) t WHERE {live}",
                tl = f("tags")
            ))
            .bind(slim.clone()),
            s(format!(
                "DELETE FROM {mt} WHERE memory_id IN (SELECT m.id FROM json_each(?) j \
                 JOIN {m} m ON m.content_hash = {h} WHERE {live})"
            ))
            .bind(slim.clone()),
            s(format!(
                "INSERT OR IGNORE INTO {mt}(memory_id, tag_id) SELECT m.id, tg.id \
                 FROM json_each(?) j JOIN {m} m ON m.content_hash = {h} \
                 JOIN json_each({tl}) t JOIN {tg} tg ON tg.name = t.value WHERE {live}",
                tl = f("tags")
            ))
            .bind(slim.clone()),
            s(format!(
                "UPDATE {m} SET deleted_at = CAST(? AS REAL) WHERE deleted_at IS NULL AND \
                 content_hash IN (SELECT {h} FROM json_each(?) j WHERE {dead})"
            ))
            .bind(now_text())
            .bind(slim.clone()),
            s(format!(
                "INSERT INTO {p} (content_hash, seq) SELECT {h}, {seq} FROM json_each(?) j \
                 WHERE 1 ON CONFLICT(content_hash) DO UPDATE SET seq = excluded.seq \
                 WHERE excluded.seq > {p}.seq",
                seq = f("seq")
            ))
            .bind(slim),
        ]
    }
}

/// The winners the guard statement returned.
fn winners(result: Option<&QueryResult>) -> StorageResult<Vec<Won>> {
    let Some(result) = result else {
        return Err(bad_row("D1 returned fewer results than statements"));
    };
    let mut seen = HashSet::new();
    Ok(result
        .rows
        .iter()
        .filter_map(|row| {
            let hash = text(row, "content_hash")?;
            seen.insert(hash.clone()).then(|| Won {
                vector_id: text(row, "vector_id"),
                r2_key: text(row, "r2_key").filter(|k| !k.is_empty()),
                had_row: text(row, "id").is_some(),
                was_live: text(row, "id").is_some() && text(row, "deleted_at").is_none(),
                hash,
            })
        })
        .collect())
}
