//! Writes other than `store`: deleting by selector, metadata updates, the duplicate
//! clean-up and purging tombstones, with the row-level helpers they share with `store`.

use memory_core::{ContentHash, Memory, Tags, Timestamp};
use memory_storage::backend::{self, CleanupPlan};
use memory_storage::{
    CleanupReport, DeleteReport, DeleteRequest, MemoryUpdate, StorageError, StorageResult,
    StoreOutcome,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};

use crate::codec::{MEMORY_COLUMNS, encode_embedding, json_ids, memory_from_row};
use crate::conditions::Conditions;
use crate::connection::{BACKEND, TxError};
use crate::outbox::Recorder;
use crate::schema::{META_PURGE_EPOCH, META_SEQ, bump_counter};

use super::Inner;

impl Inner {
    pub(super) fn delete_memories(&self, request: &DeleteRequest) -> StorageResult<DeleteReport> {
        let empty = || DeleteReport {
            dry_run: request.dry_run,
            ..DeleteReport::default()
        };
        let Some(cond) = Conditions::for_selector(&request.selector) else {
            return Ok(empty());
        };
        let sql = format!(
            "SELECT m.id, m.content_hash FROM memories m WHERE {} \
             ORDER BY m.created_at_us DESC, m.content_hash DESC",
            cond.sql
        );
        let select = |c: &Connection| -> rusqlite::Result<Vec<(i64, String)>> {
            c.prepare_cached(&sql)?
                .query_map(params_from_iter(cond.params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
        };
        let rows = if request.dry_run {
            self.read("selecting memories to delete", select)?
        } else {
            self.write("deleting memories", |tx| {
                let rows = select(tx)?;
                if !rows.is_empty() {
                    let seq = bump_counter(tx, META_SEQ)?;
                    tx.execute(
                        "UPDATE memories SET deleted_at = ?1, seq = ?2 \
                         WHERE id IN (SELECT value FROM json_each(?3))",
                        params![
                            Timestamp::now().epoch_seconds(),
                            seq,
                            json_ids(rows.iter().map(|r| r.0))
                        ],
                    )?;
                    if let Some(rec) = self.recorder(tx)? {
                        for (_, hash) in &rows {
                            rec.delete(&parse_hash(hash)?)?;
                        }
                    }
                }
                Ok(rows)
            })?
        };
        let hashes = rows
            .into_iter()
            .map(|(_, h)| {
                h.parse::<ContentHash>().map_err(|e| {
                    StorageError::backend(
                        BACKEND,
                        format!(
                            "a stored hash in {} is malformed",
                            self.config.path.display()
                        ),
                        e,
                    )
                })
            })
            .collect::<StorageResult<_>>()?;
        Ok(DeleteReport {
            hashes,
            dry_run: request.dry_run,
            ..DeleteReport::default()
        })
    }

    pub(super) fn cleanup_duplicates(&self) -> StorageResult<CleanupReport> {
        self.write("removing duplicate memories", |tx| {
            let rows = duplicate_candidates(tx)?;
            let CleanupPlan { groups, mut report } = CleanupPlan::new(
                rows.iter()
                    .map(|r| [r.stored.as_str(), r.recomputed.as_str()]),
            );
            if groups.is_empty() {
                return Ok(report);
            }
            let seq = bump_counter(tx, META_SEQ)?;
            let now = Timestamp::now();
            let rec = self.recorder(tx)?;
            let mut hard_deleted = false;
            for group in groups {
                let keeper = &rows[group[0]];
                let all = group
                    .iter()
                    .flat_map(|&i| rows[i].tags.split(',').filter(|t| !t.is_empty()));
                let tags = backend::union_tags(all)
                    .map_err(|e| StorageError::backend(BACKEND, "merging tags", e))?;
                let retagged = tags.joined() != keeper.tags;
                if retagged {
                    tx.execute(
                        "UPDATE memories SET tags = ?2, updated_at = ?3, updated_at_iso = ?4, \
                         updated_at_us = ?5, seq = ?6 WHERE id = ?1",
                        params![
                            keeper.id,
                            tags.joined(),
                            now.epoch_seconds(),
                            now.to_iso(),
                            now.epoch_micros(),
                            seq
                        ],
                    )?;
                    set_tags(tx, keeper.id, &tags)?;
                }
                let mut removed: Vec<&str> = Vec::with_capacity(group.len());
                for &i in &group[1..] {
                    tx.execute(
                        "UPDATE memories SET deleted_at = ?2, seq = ?3 WHERE id = ?1",
                        params![rows[i].id, now.epoch_seconds(), seq],
                    )?;
                    removed.push(&rows[i].stored);
                }
                if keeper.stored != keeper.recomputed {
                    // The keeper takes today's hash, so storing the same text again is a
                    // duplicate rather than the revival of a removed row; whichever row held
                    // that hash (a removed duplicate or an old tombstone) goes for good, and
                    // the keeper's old hash is what disappears from the user's view.
                    let freed = tx.execute(
                        "DELETE FROM memories WHERE content_hash = ?1 AND id != ?2",
                        params![keeper.recomputed, keeper.id],
                    )?;
                    hard_deleted |= freed > 0;
                    tx.execute(
                        "UPDATE memories SET content_hash = ?2, seq = ?3 WHERE id = ?1",
                        params![keeper.id, keeper.recomputed, seq],
                    )?;
                    removed.retain(|h| *h != keeper.recomputed);
                    removed.push(&keeper.stored);
                }
                for stored in removed {
                    let hash = parse_hash(stored)?;
                    if let Some(rec) = &rec {
                        rec.delete(&hash)?;
                    }
                    report.removed.push(hash);
                }
                // The keeper after the merge: re-keyed, it is a new memory to the other
                // devices (its old hash was deleted just above), so a Store; only
                // re-tagged, an Update. The Deletes above never name the keeper's new hash
                // (a duplicate that held it was taken out of `removed`), and a Store stamped
                // after them revives it on a device where it was a tombstone.
                if let Some(rec) = &rec
                    && (retagged || keeper.stored != keeper.recomputed)
                {
                    let (_, merged) = tx
                        .prepare_cached(&format!(
                            "SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.id = ?1"
                        ))?
                        .query_row([keeper.id], memory_from_row)?;
                    if keeper.stored == keeper.recomputed {
                        rec.update(&merged)?;
                    } else {
                        rec.store(&merged)?;
                    }
                }
            }
            if hard_deleted {
                bump_counter(tx, META_PURGE_EPOCH)?;
            }
            Ok(report)
        })
    }

    pub(super) fn update(
        &self,
        hash: &ContentHash,
        updates: &MemoryUpdate,
        preserve_timestamps: bool,
    ) -> StorageResult<Memory> {
        let updates = updates.normalised()?;
        self.write("updating a memory", |tx| {
            let found = tx
                .prepare_cached(&format!(
                    "SELECT {MEMORY_COLUMNS} FROM memories m \
                     WHERE m.content_hash = ?1 AND m.deleted_at IS NULL"
                ))?
                .query_row([hash.as_str()], memory_from_row)
                .optional()?;
            let Some((id, mut memory)) = found else {
                return Err(StorageError::NotFound { hash: hash.clone() }.into());
            };
            let now = Timestamp::now();
            updates.apply(&mut memory, preserve_timestamps, now);
            let seq = bump_counter(tx, META_SEQ)?;
            tx.execute(
                "UPDATE memories SET tags = ?2, memory_type = ?3, metadata = ?4, \
                 created_at = ?5, created_at_iso = ?6, created_at_us = ?7, \
                 updated_at = ?8, updated_at_iso = ?9, updated_at_us = ?10, seq = ?11 \
                 WHERE id = ?1",
                params![
                    id,
                    memory.tags.joined(),
                    memory.memory_type,
                    memory.metadata.to_json_string(),
                    memory.created_at.epoch_seconds(),
                    memory.created_at.to_iso(),
                    memory.created_at.epoch_micros(),
                    memory.updated_at.epoch_seconds(),
                    memory.updated_at.to_iso(),
                    memory.updated_at.epoch_micros(),
                    seq
                ],
            )?;
            if updates.tags.is_some() {
                set_tags(tx, id, &memory.tags)?;
            }
            if let Some(rec) = self.recorder(tx)? {
                rec.update(&memory)?;
            }
            Ok(memory)
        })
    }

    pub(super) fn purge(&self, older_than: Option<Timestamp>) -> StorageResult<u64> {
        let cutoff = older_than.map(|t| t.epoch_seconds());
        // Purging records nothing and leaves `sync_outbox` alone: a Delete not yet pushed
        // must still reach the other devices after its local tombstone is gone, and a
        // purge is local housekeeping, not a change the other devices need to hear of.
        // With the log on, each purged row's replicated state moves to `sync_tombstones`,
        // so a late store older than its delete still cannot revive it.
        self.write("purging deleted memories", |tx| {
            if self.log.is_some() {
                keep_tombstones(tx, cutoff)?;
            }
            let n = tx.execute(
                "DELETE FROM memories WHERE deleted_at IS NOT NULL \
                 AND (?1 IS NULL OR deleted_at <= ?1)",
                [cutoff],
            )?;
            if n > 0 {
                bump_counter(tx, META_PURGE_EPOCH)?;
            }
            Ok(n as u64)
        })
    }
}

/// Copies the replicated state of the rows a purge removes to `sync_tombstones`.
fn keep_tombstones(tx: &Transaction<'_>, cutoff: Option<f64>) -> Result<(), TxError> {
    let rows: Vec<(Memory, Option<String>, Option<String>)> = tx
        .prepare(&format!(
            "SELECT {MEMORY_COLUMNS}, m.sync_fields_hlc, m.sync_life_hlc FROM memories m \
             WHERE m.deleted_at IS NOT NULL AND (?1 IS NULL OR m.deleted_at <= ?1) \
             AND m.sync_life_hlc IS NOT NULL"
        ))?
        .query_map([cutoff], |r| {
            Ok((memory_from_row(r)?.1, r.get(8)?, r.get(9)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (memory, fields_at, life_at) in rows {
        super::sync::keep_purged(tx, &memory, fields_at.as_deref(), life_at.as_deref())?;
    }
    Ok(())
}

/// The change sequence number a write transaction stamps on the rows it changes. The
/// counter is bumped when the first row changes, so a transaction that changes none (only
/// duplicates) leaves it, and every reader's view, alone.
#[derive(Debug, Default)]
pub(super) struct Seq(Option<i64>);

impl Seq {
    /// This transaction's sequence number, bumping the counter on first use.
    pub(super) fn get(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<i64> {
        if let Some(seq) = self.0 {
            return Ok(seq);
        }
        let seq = bump_counter(tx, META_SEQ)?;
        self.0 = Some(seq);
        Ok(seq)
    }
}

/// Writes one memory in the current transaction: inserts it, revives a soft-deleted row
/// with the same hash, or leaves a live one with the same hash as it is
/// ([`StoreOutcome::Duplicate`]).
pub(super) fn put_memory(
    tx: &Transaction<'_>,
    memory: &Memory,
    vector: Option<&[f32]>,
    seq: &mut Seq,
    rec: Option<&Recorder<'_>>,
) -> Result<StoreOutcome, TxError> {
    let hash = memory.content_hash();
    let existing: Option<(i64, bool)> = tx
        .prepare_cached("SELECT id, deleted_at IS NOT NULL FROM memories WHERE content_hash = ?1")?
        .query_row([hash.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((_, false)) = existing {
        return Ok(StoreOutcome::Duplicate);
    }
    let Some(vector) = vector else {
        // Only memories found live before embedding come without a vector.
        return Err(StorageError::Unavailable {
            backend: BACKEND.into(),
            message: format!(
                "memory {hash} was deleted by another process while this batch was being \
                 stored; store it again"
            ),
            source: None,
        }
        .into());
    };
    let blob = encode_embedding(vector);
    let (c, u) = (memory.created_at, memory.updated_at);
    // One statement for both cases: a new row, or the soft-deleted row with this hash
    // revived with every field of the new memory (a live one was left alone above).
    let seq = seq.get(tx)?;
    // With the change log on, the row carries its stamps from the insert (no second write
    // of the row); with it off they are NULL, so a revive made with the log off is
    // stamped and recorded by the next open with the log on (`outbox::seed`).
    let at = rec.map(Recorder::tick).transpose()?;
    let stamp = at.map(|a| a.to_string());
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO memories (content_hash, content, tags, memory_type, metadata, \
             created_at, created_at_iso, created_at_us, updated_at, updated_at_iso, \
             updated_at_us, embedding, seq, sync_fields_hlc, sync_life_hlc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14) \
             ON CONFLICT (content_hash) DO UPDATE SET content = excluded.content, \
             tags = excluded.tags, memory_type = excluded.memory_type, \
             metadata = excluded.metadata, created_at = excluded.created_at, \
             created_at_iso = excluded.created_at_iso, created_at_us = excluded.created_at_us, \
             updated_at = excluded.updated_at, updated_at_iso = excluded.updated_at_iso, \
             updated_at_us = excluded.updated_at_us, deleted_at = NULL, \
             embedding = excluded.embedding, seq = excluded.seq, \
             sync_fields_hlc = excluded.sync_fields_hlc, \
             sync_life_hlc = excluded.sync_life_hlc \
             RETURNING id",
        )?
        .query_row(
            params![
                hash.as_str(),
                memory.content(),
                memory.tags.joined(),
                memory.memory_type,
                memory.metadata.to_json_string(),
                c.epoch_seconds(),
                c.to_iso(),
                c.epoch_micros(),
                u.epoch_seconds(),
                u.to_iso(),
                u.epoch_micros(),
                blob,
                seq,
                stamp
            ],
            |r| r.get(0),
        )?;
    set_tags(tx, id, &memory.tags)?;
    if let (Some(rec), Some(at)) = (rec, at) {
        rec.store_at(memory, at)?;
    }
    let outcome = if existing.is_some() {
        StoreOutcome::Revived
    } else {
        StoreOutcome::Stored
    };
    Ok(outcome)
}

/// A hash read from the `memories` table.
pub(super) fn parse_hash(stored: &str) -> Result<ContentHash, StorageError> {
    stored
        .parse::<ContentHash>()
        .map_err(|e| StorageError::backend(BACKEND, "a stored hash is malformed", e))
}

/// Replaces the `memory_tags` rows of a memory.
pub(super) fn set_tags(tx: &Transaction<'_>, id: i64, tags: &Tags) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM memory_tags WHERE memory_id = ?1")?
        .execute([id])?;
    let mut insert =
        tx.prepare_cached("INSERT INTO memory_tags (memory_id, tag) VALUES (?1, ?2)")?;
    for tag in tags {
        insert.execute(params![id, tag])?;
    }
    Ok(())
}

/// What duplicate clean-up needs of a live row (not its content: that is hashed as it
/// streams by).
#[derive(Debug)]
struct DupRow {
    id: i64,
    stored: String,
    recomputed: String,
    tags: String,
}

/// Live rows, oldest first, with their content re-hashed by the current rule.
fn duplicate_candidates(tx: &Transaction<'_>) -> rusqlite::Result<Vec<DupRow>> {
    let mut stmt = tx.prepare(
        "SELECT id, content_hash, content, tags FROM memories \
         WHERE deleted_at IS NULL ORDER BY created_at_us, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let content = row.get_ref(2)?.as_str()?;
        out.push(DupRow {
            id: row.get(0)?,
            stored: row.get(1)?,
            recomputed: ContentHash::of(content).as_str().to_owned(),
            tags: row.get(3)?,
        });
    }
    Ok(out)
}
