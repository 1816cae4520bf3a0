//! Reads: semantic search (with the exact path for filtered searches), lists, counts,
//! reads by hash and stored vectors.

use std::collections::HashMap;

use cloudflare_d1::{Param, Statement};
use cloudflare_vectorize::{QueryVectors, ReturnMetadata, Vector};
use futures::{StreamExt, TryStreamExt};
use memory_core::{ContentHash, Memory, MemoryQueryResult, QueryDebugInfo};
use memory_storage::{ListQuery, MemoryFilter, SemanticQuery, StorageResult};

use super::pending::PendingOp;
use super::{GET_BY_IDS_CHUNK, GET_EMBEDDINGS_D1_CHUNK, Inner, PARALLEL_CALLS, QUERY_TOP_K};
use crate::error_map::vectorize_error;
use crate::rows::{StoredRow, count, dot, json_strings, text};
use crate::sql::Conditions;

impl Inner {
    pub(super) async fn semantic_search(
        &self,
        query: &SemanticQuery,
    ) -> StorageResult<Vec<MemoryQueryResult>> {
        if !query.can_match()? {
            return Ok(Vec::new());
        }
        let vector = self.embed_one(&query.text).await?;
        self.search(query, vector).await
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
        let scores = self.with_pending(result.matches, &vector);
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

    /// The index's matches merged with this process's pending writes (read-your-writes, see
    /// [`super::pending`]), best first: a pending upsert is scored locally by cosine (as
    /// the index scores it) whether or not the index already returns a version of it, and
    /// a pending delete drops the id. At most [`QUERY_TOP_K`] pending upserts are added, so
    /// the D1 query that follows stays as small as without them.
    fn with_pending(
        &self,
        matches: Vec<cloudflare_vectorize::QueryMatch>,
        query: &[f32],
    ) -> Vec<(String, f64)> {
        let upserts = self.pending.upserts();
        let mut scores: Vec<(String, f64)> = matches
            .into_iter()
            .filter(|m| self.pending.get(&m.id).is_none())
            .map(|m| (m.id, m.score))
            .collect();
        let mut local: Vec<(String, f64)> = upserts
            .iter()
            .filter(|v| v.values.len() == query.len())
            .map(|v| (v.id.clone(), cosine(query, &v.values)))
            .collect();
        best_first(&mut local);
        local.truncate(QUERY_TOP_K as usize);
        if local.is_empty() {
            return scores;
        }
        scores.extend(local);
        best_first(&mut scores);
        scores
    }

    /// The stored vectors of `hashes` (see [`MemoryStorage::get_embeddings`]): per
    /// [`GET_EMBEDDINGS_D1_CHUNK`] hashes, one D1 query for which are live and their vector
    /// ids, then `get_by_ids` calls of [`GET_BY_IDS_CHUNK`] ids.
    pub(super) async fn embeddings(
        &self,
        hashes: &[ContentHash],
    ) -> StorageResult<Vec<Option<Vec<f32>>>> {
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
        let mut by_id: HashMap<String, Vector> = vectors
            .into_iter()
            .flatten()
            .map(|v| (v.id.clone(), v))
            .collect();
        // This process's pending writes are newer than what the index shows.
        Ok(ids
            .iter()
            .filter_map(|id| match self.pending.get(id) {
                Some(PendingOp::Upsert(v)) => Some(Vector::clone(&v)),
                Some(PendingOp::Delete) => None,
                None => by_id.remove(id),
            })
            .collect())
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
                let s = cosine(query, &v.values);
                (v.id, s)
            })
            .collect();
        best_first(&mut scored);
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

    pub(super) async fn list(&self, query: &ListQuery) -> StorageResult<Vec<Memory>> {
        query.validate()?;
        let i = self;
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

    pub(super) async fn count(&self, filter: &MemoryFilter) -> StorageResult<u64> {
        let i = self;
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

    pub(super) async fn get_by_hash(&self, hash: &ContentHash) -> StorageResult<Option<Memory>> {
        let i = self;
        let s = Statement::new(i.select("m.content_hash = ? AND m.deleted_at IS NULL"))
            .bind(hash.as_str())
            .idempotent(true);
        let r = i.query("reading a memory", s).await?;
        Ok(i.hydrate_strict(Inner::rows(&r)?).await?.pop())
    }
}

/// The cosine of `query` and `v` (0 when either is all zeros), as Vectorize scores a cosine
/// index.
fn cosine(query: &[f32], v: &[f32]) -> f64 {
    let norms = (dot(query, query) * dot(v, v)).sqrt();
    if norms > 0.0 {
        dot(query, v) / norms
    } else {
        0.0
    }
}

/// Sorts scored ids best first, ties by id, so every ranking of this module is
/// deterministic the same way.
fn best_first(scored: &mut [(String, f64)]) {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}
