//! Writes: `store` and `store_batch`, with the compensation that keeps D1 and Vectorize in
//! step when one of the two writes fails; `delete`, `delete_memories` and metadata updates.

use std::collections::HashSet;

use cloudflare_d1::{Param, QueryResult, Statement};
use cloudflare_r2::PutObject;
use futures::future::try_join_all;
use memory_core::{ContentHash, Memory, Timestamp};
use memory_storage::backend;
use memory_storage::prepare::{Prepared, prepare_memory};
use memory_storage::{
    DeleteReport, DeleteRequest, MemoryUpdate, StorageError, StorageResult, StoreOutcome,
};

use super::{Inner, STORE_BATCH_CHUNK, pending};
use crate::error_map::{BACKEND, bad_row, r2_error};
use crate::rows::{PREVIEW_CHARS, StoredRow, epoch_text, json_strings, prefix_chars, real, text};
use crate::sql::{
    Conditions, RowValues, STATEMENTS_PER_MEMORY, link_statements, now_text, store_statements,
};

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

/// What a write calls its D1 batch, its upsert and the restoring of duplicates' vector
/// metadata in errors and logs: `store` keeps its singular wording, `store_batch` its own.
struct Labels {
    d1: &'static str,
    vectors: &'static str,
    restore: &'static str,
}

/// The wording of `store`.
const ONE: Labels = Labels {
    d1: "storing a memory",
    vectors: "writing a memory's vector",
    restore: "restoring a duplicate's vector metadata",
};

/// The wording of `store_batch`.
const MANY: Labels = Labels {
    d1: "storing a batch of memories",
    vectors: "writing a batch of vectors",
    restore: "restoring duplicates' vector metadata",
};

impl Inner {
    fn prepare(&self, memory: Memory) -> StorageResult<Prepared> {
        let Prepared { memory, vector } = prepare_memory(memory, self.dims)?;
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

    fn pre_state(result: &QueryResult) -> PreState {
        match result.rows.first() {
            None => PreState::Absent,
            Some(r) => match real(r, "deleted_at") {
                Some(at) => PreState::Tombstone(at),
                None => PreState::Live,
            },
        }
    }

    /// Reads the per-memory outcome from a store batch's [`STATEMENTS_PER_MEMORY`] results
    /// at `offset`: the pre-state is the first statement's, the row as left the last's.
    fn written(results: &[QueryResult], offset: usize) -> StorageResult<Written> {
        let pre = results
            .get(offset)
            .map(Self::pre_state)
            .ok_or_else(|| bad_row("D1 returned fewer results than statements"))?;
        let post = results
            .get(offset + STATEMENTS_PER_MEMORY - 1)
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

    /// `store`: a one-element [`write`](Self::write), under the singular wording.
    pub(super) async fn store(&self, memory: Memory) -> StorageResult<StoreOutcome> {
        self.write(vec![memory], &ONE)
            .await?
            .pop()
            .unwrap_or_else(|| Err(bad_row("a store of one memory produced no outcome")))
    }

    /// `store_batch`: [`write`](Self::write) under the batch wording.
    pub(super) async fn store_batch(
        &self,
        memories: Vec<Memory>,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        self.write(memories, &MANY).await
    }

    /// The one write protocol, for one memory or many; outcomes in input order.
    ///
    /// Each memory is checked (a refusal is its outcome), each distinct text needing a
    /// vector is embedded once, large content goes to R2 first, then the D1 batches (of
    /// [`STORE_BATCH_CHUNK`] memories, [`STATEMENTS_PER_MEMORY`] statements each) run in
    /// parallel with one Vectorize upsert. When one side fails the other is undone:
    ///
    /// * **Vectorize failed**: the rows D1 wrote (new or revived) are removed or
    ///   re-tombstoned and the call fails with the Vectorize error (nothing was stored), or
    ///   says that the undo failed too. When D1 wrote nothing new (every memory a live
    ///   duplicate or a D1 failure) there is nothing to undo and each memory gets its own
    ///   outcome.
    /// * **D1 failed** for some memories: their vectors are deleted unless the memory is
    ///   live, and each such memory's error says whether that worked.
    async fn write(
        &self,
        memories: Vec<Memory>,
        labels: &Labels,
    ) -> StorageResult<Vec<StorageResult<StoreOutcome>>> {
        let (mut outcomes, mut items) = backend::check_each(memories, |m| self.prepare(m));
        if items.is_empty() {
            return Ok(outcomes.finish());
        }
        // One embedding call (the embedder batches) for each distinct text needing a vector.
        let wanted = backend::to_embed(&items, |_| false);
        let texts: Vec<&str> = wanted
            .iter()
            .map(|&k| items[k].1.memory.content())
            .collect();
        let vectors = self.embed(&texts).await?;
        backend::give_vectors(&mut items, &wanted, vectors);
        // Large content first: a row never points to an object not yet written.
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
        // One vector per hash: the first memory of each hash writes it.
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
                out.push(self.batch(labels.d1, chunk).await);
            }
            out
        };
        let (d1_results, vz) = tokio::join!(d1_all, self.upsert(labels.vectors, vectors));

        // Per-memory outcomes of the D1 side; a failed batch fails each of its memories.
        let mut written: Vec<StorageResult<Written>> = Vec::with_capacity(items.len());
        for (c, result) in d1_results.into_iter().enumerate() {
            let n = items
                .len()
                .saturating_sub(c * STORE_BATCH_CHUNK)
                .min(STORE_BATCH_CHUNK);
            match result {
                Ok(results) => {
                    for j in 0..n {
                        written.push(Inner::written(&results, j * STATEMENTS_PER_MEMORY));
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

        if let Err(vz_err) = vz {
            // Undo what D1 wrote (new and revived rows; a live row was never touched).
            let undo: Vec<(&ContentHash, PreState, Option<&str>)> = items
                .iter()
                .zip(&written)
                .zip(&keys)
                .filter_map(|(((_, p), w), key)| match w {
                    Ok(w) if w.pre != PreState::Live => {
                        Some((p.memory.content_hash(), w.pre, key.as_deref()))
                    }
                    _ => None,
                })
                .collect();
            if !undo.is_empty() {
                let rows: Vec<(&ContentHash, PreState)> =
                    undo.iter().map(|(h, pre, _)| (*h, *pre)).collect();
                return match self.compensate(&rows).await {
                    Ok(()) => {
                        // The rows are gone, so their new objects are strays: remove them
                        // now (best effort; `check` finds any left). A revived row's object
                        // predates this call and stays with its tombstone.
                        let objects: Vec<String> = undo
                            .iter()
                            .filter(|(_, pre, _)| *pre == PreState::Absent)
                            .filter_map(|(_, _, key)| key.map(str::to_owned))
                            .collect();
                        let _ = self
                            .delete_r2("removing large content of a failed store", objects)
                            .await;
                        Err(nothing_stored(vz_err))
                    }
                    Err(c) => Err(half_written(vz_err, &c)),
                };
            }
            // Nothing new reached D1 (every row D1 answered for was live already, else it
            // would be undone above): each memory's own outcome (a duplicate, or its D1
            // error) says all there is; the vector error changed nothing stored.
            for ((n, _), w) in items.into_iter().zip(written) {
                outcomes.set(n, w.map(|_| StoreOutcome::Duplicate));
            }
            return Ok(outcomes.finish());
        }

        // Vectors written, some rows not: remove the vectors of memories that are not live.
        let failed_d1: Vec<&ContentHash> = items
            .iter()
            .zip(&written)
            .filter(|(_, w)| w.is_err())
            .map(|((_, p), _)| p.memory.content_hash())
            .collect();
        let vectors_undone = failed_d1.is_empty() || self.undo_vectors(&failed_d1).await;

        // A live duplicate's vector now carries the new memory's metadata: put the existing
        // memory's back (once per hash, and only when it differs).
        let mut restore = Vec::new();
        let mut first_of_hash = HashSet::new();
        for ((n, p), w) in items.into_iter().zip(written) {
            let first = first_of_hash.insert(p.memory.content_hash().clone());
            let result = match w {
                Ok(w) => match w.pre {
                    PreState::Absent => Ok(StoreOutcome::Stored),
                    PreState::Tombstone(_) => Ok(StoreOutcome::Revived),
                    PreState::Live => {
                        if first
                            && let (Some(existing), Some(v)) = (w.post, p.vector)
                            && self.vector_metadata(&existing.memory)
                                != self.vector_metadata(&p.memory)
                        {
                            restore.push(self.vector(&existing.memory, v));
                        }
                        Ok(StoreOutcome::Duplicate)
                    }
                },
                Err(e) if vectors_undone => Err(nothing_stored(e)),
                Err(e) => Err(half_written(
                    e,
                    &StorageError::invalid("vector", "could not be removed"),
                )),
            };
            outcomes.set(n, result);
        }
        if let Err(e) = self.upsert(labels.restore, restore).await {
            tracing::warn!(error = %e, "restoring the vector metadata of duplicates failed; run repair");
        }
        Ok(outcomes.finish())
    }

    pub(super) async fn delete(&self, hash: &ContentHash) -> StorageResult<DeleteReport> {
        let i = self;
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

    pub(super) async fn delete_memories(
        &self,
        request: &DeleteRequest,
    ) -> StorageResult<DeleteReport> {
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

    pub(super) async fn update(
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
        // When the row last changed before this update (see the vector refresh below).
        let changed = row.memory.updated_at.epoch_seconds();
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
            // This process's pending write counts (read-your-writes).
            let existing = self
                .fetch_vectors(std::slice::from_ref(&vid), "reading a memory's vector")
                .await?;
            let values = match existing.into_iter().next() {
                Some(v) => v.values,
                // Another process may have written it a moment ago and Vectorize not show it
                // yet: embedding again would only race that write. Its metadata copy is
                // informational (every filter reads D1), so it can wait for the next update.
                None if pending::changed_recently(changed, pending::now_epoch(), None) => {
                    tracing::debug!(%hash, "vector not visible yet; its metadata is refreshed on the next update");
                    return Ok(());
                }
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
