//! Keeping D1, Vectorize and R2 in step: [`CloudflareStorage::check`] finds rows without
//! vectors, vectors without rows and R2 objects without rows; [`CloudflareStorage::repair`]
//! fixes them. Also the duplicate clean-up, which has to move vectors when a row takes
//! today's hash.

use std::collections::{HashMap, HashSet};

use cloudflare_d1::{Param, Statement};
use cloudflare_r2::{ListObjects, list_all_pages};
use cloudflare_vectorize::{ListVectors, MAX_LIST_COUNT};
use memory_core::{ContentHash, Timestamp};
use memory_storage::{
    CleanupReport, ConsistencyIssue, ConsistencyReport as GenericReport, IssueKind,
    RepairReport as GenericRepair, StorageResult,
};
use serde::{Deserialize, Serialize};

use crate::error_map::{BACKEND, bad_row, r2_error, vectorize_error};
use crate::rows::{StoredRow, epoch_text, text};
use crate::sql::link_statements;
use crate::storage::{CloudflareStorage, Inner, union_tags};

/// Texts embedded per call while repairing.
const REPAIR_EMBED_BATCH: usize = 100;

/// What [`CloudflareStorage::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyReport {
    /// Live memories whose vector is missing from Vectorize (invisible to semantic search).
    pub rows_without_vectors: Vec<ContentHash>,
    /// Vector ids (of this store's namespace) with no live row.
    pub vectors_without_rows: Vec<String>,
    /// R2 keys (under this store's prefix) that no live row points to.
    pub r2_objects_without_rows: Vec<String>,
    /// Live rows examined.
    #[serde(default)]
    pub live_rows: u64,
}

impl ConsistencyReport {
    /// True when the three stores agree.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.rows_without_vectors.is_empty()
            && self.vectors_without_rows.is_empty()
            && self.r2_objects_without_rows.is_empty()
    }
}

impl ConsistencyReport {
    /// The backend-neutral form ([`memory_storage::ConsistencyReport`]): rows without
    /// vectors are [`IssueKind::MissingVector`], vectors without rows
    /// [`IssueKind::StrayVector`], R2 objects without rows [`IssueKind::StrayObject`].
    #[must_use]
    pub fn to_generic(&self) -> GenericReport {
        let mut issues = Vec::new();
        for hash in &self.rows_without_vectors {
            issues.push(ConsistencyIssue::new(
                IssueKind::MissingVector,
                hash.as_str(),
                "the memory's row is in D1 but its vector is not in Vectorize, so semantic \
                 search cannot find it; `repair` embeds it again and writes the vector",
            ));
        }
        for id in &self.vectors_without_rows {
            issues.push(ConsistencyIssue::new(
                IssueKind::StrayVector,
                id.clone(),
                "a vector of this store's namespace with no live row in D1 (a write or \
                 delete failed half-way); it takes places in search results; `repair` \
                 deletes it",
            ));
        }
        for key in &self.r2_objects_without_rows {
            issues.push(ConsistencyIssue::new(
                IssueKind::StrayObject,
                key.clone(),
                "an R2 object under this store's prefix that no live row points to; it \
                 only costs storage; `repair` deletes it",
            ));
        }
        let mut report = GenericReport {
            backend: BACKEND.into(),
            memories_checked: self.live_rows,
            issues,
        };
        report.sort();
        report
    }
}

/// What [`CloudflareStorage::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// The problems found before repairing.
    pub found: ConsistencyReport,
    /// Vectors re-embedded and written.
    pub vectors_written: u64,
    /// Stray vectors deleted.
    pub vectors_deleted: u64,
    /// Orphan R2 objects deleted.
    pub r2_objects_deleted: u64,
}

impl RepairReport {
    /// Issues fixed: vectors written, vectors deleted and objects deleted.
    #[must_use]
    pub fn fixed(&self) -> u64 {
        self.vectors_written + self.vectors_deleted + self.r2_objects_deleted
    }

    /// One line per kind of fix done, with its count.
    #[must_use]
    pub fn actions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.vectors_written > 0 {
            out.push(format!(
                "re-embedded {} memor{} and wrote the missing vector{}",
                self.vectors_written,
                if self.vectors_written == 1 {
                    "y"
                } else {
                    "ies"
                },
                if self.vectors_written == 1 { "" } else { "s" }
            ));
        }
        if self.vectors_deleted > 0 {
            out.push(format!(
                "deleted {} stray vector{} from Vectorize",
                self.vectors_deleted,
                if self.vectors_deleted == 1 { "" } else { "s" }
            ));
        }
        if self.r2_objects_deleted > 0 {
            out.push(format!(
                "deleted {} orphan R2 object{}",
                self.r2_objects_deleted,
                if self.r2_objects_deleted == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        out
    }
}

/// [`MemoryStorage::check`](memory_storage::MemoryStorage::check): the inherent check in
/// the generic form.
pub(crate) async fn generic_check(store: &CloudflareStorage) -> StorageResult<GenericReport> {
    Ok(store.check().await?.to_generic())
}

/// [`MemoryStorage::repair`](memory_storage::MemoryStorage::repair): the inherent repair,
/// then a check whose findings are what remains.
///
/// Vectorize applies writes a few seconds after accepting them, so on Cloudflare (not on
/// the emulator) vectors written or deleted by this repair may still be listed as remaining;
/// run `check` again a little later.
pub(crate) async fn generic_repair(store: &CloudflareStorage) -> StorageResult<GenericRepair> {
    let done = store.repair().await?;
    let after = store.check().await?.to_generic();
    Ok(GenericRepair {
        found: done.found.to_generic(),
        fixed: done.fixed(),
        actions: done.actions(),
        remaining: after.issues,
    })
}

impl CloudflareStorage {
    /// Compares D1's live rows with Vectorize's vector ids and R2's objects. Reads only.
    ///
    /// Costs one D1 query, one Vectorize list call per 1,000 vectors (with a namespace,
    /// plus `get_by_ids` calls to tell this namespace's strays from other tenants'), and
    /// one R2 list call per 1,000 objects. Vectorize applies writes after a few seconds,
    /// so a check right after writing may report vectors that are still on their way.
    ///
    /// # Errors
    ///
    /// The first failing call's error.
    pub async fn check(&self) -> StorageResult<ConsistencyReport> {
        self.inner.check().await
    }

    /// Fixes what [`check`](Self::check) finds: re-embeds and writes the vectors of rows
    /// without one, deletes vectors without a live row, deletes orphan R2 objects.
    ///
    /// # Errors
    ///
    /// The first failing call's error (what was repaired before it stays repaired).
    pub async fn repair(&self) -> StorageResult<RepairReport> {
        let found = self.inner.check().await?;
        let i = &*self.inner;
        let mut report = RepairReport {
            found: found.clone(),
            ..RepairReport::default()
        };
        for chunk in found.rows_without_vectors.chunks(REPAIR_EMBED_BATCH) {
            let s = Statement::new(format!(
                "{} AND m.content_hash IN (SELECT value FROM json_each(?))",
                i.select_live()
            ))
            .bind(crate::rows::json_strings(
                chunk.iter().map(ContentHash::as_str),
            ))
            .idempotent(true);
            let r = i.query("reading rows to repair", s).await?;
            let rows: Vec<StoredRow> = r
                .rows
                .iter()
                .map(StoredRow::from_row)
                .collect::<StorageResult<_>>()?;
            let vids: Vec<String> = rows
                .iter()
                .map(|r| {
                    r.vector_id
                        .clone()
                        .unwrap_or_else(|| i.vector_id(r.memory.content_hash()))
                })
                .collect();
            let memories = i.hydrate(rows).await?;
            let texts: Vec<&str> = memories.iter().map(|m| m.content()).collect();
            let values = i.embed(&texts).await?;
            let vectors = memories
                .iter()
                .zip(values)
                .zip(vids)
                .map(|((m, v), id)| {
                    let mut vector = i.vector(m, v);
                    vector.id = id;
                    vector
                })
                .collect::<Vec<_>>();
            report.vectors_written += vectors.len() as u64;
            i.upsert("repairing missing vectors", vectors).await?;
        }
        if !found.vectors_without_rows.is_empty() {
            i.delete_vectors("deleting stray vectors", found.vectors_without_rows.clone())
                .await?;
            report.vectors_deleted = found.vectors_without_rows.len() as u64;
        }
        if !found.r2_objects_without_rows.is_empty() {
            i.delete_r2(
                "deleting orphan R2 objects",
                found.r2_objects_without_rows.clone(),
            )
            .await?;
            report.r2_objects_deleted = found.r2_objects_without_rows.len() as u64;
        }
        Ok(report)
    }
}

impl Inner {
    fn select_live(&self) -> String {
        format!(
            "SELECT {} FROM {} m WHERE m.deleted_at IS NULL",
            self.columns, self.tables.memories
        )
    }

    async fn check(&self) -> StorageResult<ConsistencyReport> {
        let s = Statement::new(format!(
            "SELECT content_hash, vector_id, r2_key, deleted_at FROM {}",
            self.tables.memories
        ))
        .idempotent(true);
        let r = self.query("listing rows to check", s).await?;
        let mut live_rows = 0u64;
        let mut live_vids: HashMap<String, String> = HashMap::new();
        let mut all_vids: HashSet<String> = HashSet::new();
        let mut live_keys: HashSet<String> = HashSet::new();
        for row in &r.rows {
            let hash = text(row, "content_hash").unwrap_or_default();
            let live = row.get("deleted_at").is_none_or(serde_json::Value::is_null);
            let vid = text(row, "vector_id").unwrap_or_else(|| {
                hash.parse::<ContentHash>()
                    .map(|h| self.vector_id(&h))
                    .unwrap_or_default()
            });
            all_vids.insert(vid.clone());
            if live {
                live_rows += 1;
                live_vids.insert(vid, hash);
                if let Some(k) = text(row, "r2_key").filter(|k| !k.is_empty()) {
                    live_keys.insert(k);
                }
            }
        }
        // Every vector id of the index.
        let mut listed: HashSet<String> = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .parts
                .vectorize
                .list_vectors(ListVectors {
                    count: Some(MAX_LIST_COUNT),
                    cursor: cursor.clone(),
                })
                .await
                .map_err(|e| vectorize_error("listing vector ids", e))?;
            listed.extend(page.vectors.into_iter().map(|v| v.id));
            match page
                .next_cursor
                .filter(|c| !c.is_empty() && page.is_truncated)
            {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
        let mut rows_without_vectors: Vec<ContentHash> = live_vids
            .iter()
            .filter(|(vid, _)| !listed.contains(*vid))
            .filter_map(|(_, h)| h.parse().ok())
            .collect();
        rows_without_vectors.sort();
        let mut strays: Vec<String> = listed
            .into_iter()
            .filter(|id| !live_vids.contains_key(id))
            .collect();
        if let Some(ns) = self
            .options
            .namespace
            .as_ref()
            .map(|n| n.as_str().to_owned())
        {
            // Vectors of other tenants share the index: keep only ours (ids of our rows,
            // or vectors carrying our namespace).
            let unknown: Vec<String> = strays
                .iter()
                .filter(|id| !all_vids.contains(*id))
                .cloned()
                .collect();
            let mut ours: HashSet<String> = strays
                .iter()
                .filter(|id| all_vids.contains(*id))
                .cloned()
                .collect();
            let vectors = self
                .fetch_vectors(&unknown, "reading stray vectors")
                .await?;
            ours.extend(
                vectors
                    .into_iter()
                    .filter(|v| v.namespace.as_deref() == Some(ns.as_str()))
                    .map(|v| v.id),
            );
            strays.retain(|id| ours.contains(id));
        }
        strays.sort();
        let mut orphans = Vec::new();
        if let Some(r2) = &self.parts.r2 {
            let objects = list_all_pages(r2.as_ref(), ListObjects::new().prefix(self.r2_prefix()))
                .await
                .map_err(|e| r2_error("listing R2 objects", e))?;
            orphans = objects
                .into_iter()
                .map(|o| o.key)
                .filter(|k| !live_keys.contains(k))
                .collect();
            orphans.sort();
        }
        Ok(ConsistencyReport {
            rows_without_vectors,
            vectors_without_rows: strays,
            r2_objects_without_rows: orphans,
            live_rows,
        })
    }
}

/// A live row as duplicate clean-up sees it.
struct DupRow {
    row: StoredRow,
    stored: String,
    recomputed: String,
}

/// Groups of row indices (oldest first) that are the same memory; groups of one left out.
fn group_duplicates(rows: &[DupRow]) -> Vec<Vec<usize>> {
    let keys: Vec<[&str; 2]> = rows
        .iter()
        .map(|r| [r.stored.as_str(), r.recomputed.as_str()])
        .collect();
    memory_storage::duplicate_groups(&keys)
}

/// Duplicate clean-up (see [`memory_storage::MemoryStorage::cleanup_duplicates`]): one D1
/// read, one D1 batch for every change, then the vector moves and deletions.
pub(crate) async fn cleanup_duplicates(i: &Inner) -> StorageResult<CleanupReport> {
    let s = Statement::new(format!(
        "{} ORDER BY m.created_at ASC, m.id ASC",
        i.select_live()
    ))
    .idempotent(true);
    let r = i.query("reading memories to find duplicates", s).await?;
    let mut rows = Vec::with_capacity(r.rows.len());
    for raw in &r.rows {
        let row = StoredRow::from_row(raw)?;
        let stored = row.memory.content_hash().as_str().to_owned();
        // Content kept in R2 was hashed by this crate under today's rule.
        let recomputed = if row.r2_key.is_some() {
            stored.clone()
        } else {
            ContentHash::of(row.memory.content()).as_str().to_owned()
        };
        rows.push(DupRow {
            row,
            stored,
            recomputed,
        });
    }
    let groups = group_duplicates(&rows);
    let mut report = CleanupReport {
        examined: rows.len() as u64,
        duplicate_groups: groups.len() as u64,
        removed: Vec::new(),
    };
    if groups.is_empty() {
        return Ok(report);
    }
    let (m, mt) = (&i.tables.memories, &i.tables.memory_tags);
    let now = Timestamp::now();
    let mut statements = Vec::new();
    let mut dead_vectors = Vec::new();
    let mut moves: Vec<(String, String, usize)> = Vec::new();
    for group in &groups {
        let keeper = &rows[group[0]];
        let tags = union_tags(group.iter().map(|&k| &rows[k].row.memory.tags))?;
        let mut removed: Vec<&str> = Vec::new();
        for &k in &group[1..] {
            statements.push(
                Statement::new(format!(
                    "UPDATE {m} SET deleted_at = CAST(? AS REAL) WHERE id = CAST(? AS INTEGER)"
                ))
                .bind(epoch_text(now))
                .bind(Param::Integer(rows[k].row.id))
                .idempotent(true),
            );
            removed.push(&rows[k].stored);
            if let Some(v) = &rows[k].row.vector_id {
                dead_vectors.push(v.clone());
            }
        }
        let mut keeper_hash = keeper.stored.clone();
        if keeper.stored != keeper.recomputed {
            // The keeper takes today's hash; whichever row held it goes for good.
            statements.push(
                Statement::new(format!(
                    "DELETE FROM {mt} WHERE memory_id IN (SELECT id FROM {m} \
                     WHERE content_hash = ? AND id != CAST(? AS INTEGER))"
                ))
                .bind(keeper.recomputed.clone())
                .bind(Param::Integer(keeper.row.id))
                .idempotent(true),
            );
            statements.push(
                Statement::new(format!(
                    "DELETE FROM {m} WHERE content_hash = ? AND id != CAST(? AS INTEGER)"
                ))
                .bind(keeper.recomputed.clone())
                .bind(Param::Integer(keeper.row.id))
                .idempotent(true),
            );
            let new_hash: ContentHash = keeper
                .recomputed
                .parse()
                .map_err(|e| bad_row(format!("recomputed hash: {e}")))?;
            let new_vid = i.vector_id(&new_hash);
            statements.push(
                Statement::new(format!(
                    "UPDATE {m} SET content_hash = ?, vector_id = ? WHERE id = CAST(? AS INTEGER)"
                ))
                .bind(keeper.recomputed.clone())
                .bind(new_vid.clone())
                .bind(Param::Integer(keeper.row.id))
                .idempotent(true),
            );
            if let Some(old) = &keeper.row.vector_id {
                moves.push((old.clone(), new_vid, group[0]));
            }
            removed.retain(|h| *h != keeper.recomputed);
            removed.push(&keeper.stored);
            keeper_hash = keeper.recomputed.clone();
        }
        if tags != keeper.row.memory.tags {
            statements.push(
                Statement::new(format!(
                    "UPDATE {m} SET tags = ?, updated_at = ?, updated_at_iso = ? \
                     WHERE id = CAST(? AS INTEGER)"
                ))
                .bind(tags.joined())
                .bind(epoch_text(now))
                .bind(now.to_iso())
                .bind(Param::Integer(keeper.row.id))
                .idempotent(true),
            );
        }
        statements.extend(link_statements(&i.tables, &keeper_hash, &tags));
        for h in removed {
            report.removed.push(
                h.parse()
                    .map_err(|e| bad_row(format!("stored hash: {e}")))?,
            );
        }
    }
    i.batch("removing duplicate memories", statements).await?;
    // Move the keepers' vectors to their new ids, then drop the old and removed ones.
    for (old, new, _) in &moves {
        let found = i
            .parts
            .vectorize
            .get_by_ids(vec![old.clone()])
            .await
            .map_err(|e| vectorize_error("moving a vector", e))?;
        if let Some(mut v) = found.into_iter().next() {
            v.id = new.clone();
            i.upsert("moving a vector", vec![v]).await?;
        }
        dead_vectors.push(old.clone());
    }
    let moved: HashSet<&String> = moves.iter().map(|(_, n, _)| n).collect();
    dead_vectors.retain(|v| !moved.contains(v));
    if let Err(e) = i
        .delete_vectors("deleting duplicates' vectors", dead_vectors)
        .await
    {
        tracing::warn!(error = %e, "deleting vectors of removed duplicates failed; `repair` removes them");
    }
    Ok(report)
}
