//! Keeping D1, Vectorize and R2 in step: [`CloudflareStorage::check`] finds rows without
//! vectors, vectors without rows and R2 objects without rows; [`CloudflareStorage::repair`]
//! fixes them. Also the duplicate clean-up, which has to move vectors when a row takes
//! today's hash.

use std::collections::{HashMap, HashSet};

use cloudflare_d1::{Param, Statement};
use cloudflare_r2::{ListObjects, list_all_pages};
use cloudflare_vectorize::{IndexInfo, ListVectors, MAX_LIST_COUNT};
use memory_core::{ContentHash, Timestamp};
use memory_storage::backend::CleanupPlan;
use memory_storage::{
    CleanupReport, ConsistencyIssue, ConsistencyReport, IssueKind, RepairReport, StorageResult,
};
use serde::{Deserialize, Serialize};

use super::{
    CloudflareStorage, Inner, MISSING_CONTENT_METADATA, STORE_ID_METADATA, pending, union_tags,
};
use crate::error_map::{BACKEND, bad_row, r2_error, vectorize_error};
use crate::rows::{PREVIEW_CHARS, StoredRow, epoch_text, int, text};
use crate::sql::link_statements;

/// How often [`CloudflareStorage::wait_for_vectors`] asks the index for its progress.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Texts embedded per call while repairing.
const REPAIR_EMBED_BATCH: usize = 100;

/// Live rows whose content `check` reads per D1 query to compare with their hash.
const HASH_CHECK_PAGE: i64 = 200;

/// A live memory whose content is in an R2 object that is not there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingObject {
    /// The memory.
    pub content_hash: ContentHash,
    /// The R2 key its row points to.
    pub r2_key: String,
}

/// A live row whose content hash is not the hash of its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashMismatch {
    /// The hash the row is stored under.
    pub stored: ContentHash,
    /// The hash of its content.
    pub computed: ContentHash,
}

/// What [`CloudflareStorage::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudflareCheck {
    /// Live memories whose vector is missing from Vectorize (invisible to semantic search).
    pub rows_without_vectors: Vec<ContentHash>,
    /// Vector ids (of this store's namespace) with no live row.
    pub vectors_without_rows: Vec<String>,
    /// R2 keys (under this store's prefix) that no live row points to.
    pub r2_objects_without_rows: Vec<String>,
    /// Live memories whose R2 object is missing: reads of each fail (or, in lists and
    /// searches, show the stored excerpt); `repair` keeps the excerpt.
    #[serde(default)]
    pub missing_objects: Vec<MissingObject>,
    /// Live rows (content in D1) whose hash is not the hash of their content. Content in R2
    /// is not read by `check`, so those rows are not compared.
    #[serde(default)]
    pub hash_mismatches: Vec<HashMismatch>,
    /// Vectors with no live row that this store did not write (another store's on a shared
    /// index, or another tool's): reported for information, never deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_vectors: Vec<String>,
    /// R2 objects under this store's prefix that it did not write: never deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_objects: Vec<String>,
    /// Vector ids whose row and vector disagree only because a write may not be applied by
    /// Vectorize yet (it applies them after a few seconds, minutes under load): written by
    /// this process and not yet reported processed by the index, or whose row changed in
    /// the last minutes. Not issues; `repair` leaves them alone; a later `check` sees them
    /// settled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_vectors: Vec<String>,
    /// Live rows examined.
    #[serde(default)]
    pub live_rows: u64,
}

impl CloudflareCheck {
    /// True when the three stores agree (foreign vectors and objects are not this store's
    /// problem).
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.rows_without_vectors.is_empty()
            && self.vectors_without_rows.is_empty()
            && self.r2_objects_without_rows.is_empty()
            && self.missing_objects.is_empty()
            && self.hash_mismatches.is_empty()
    }
}

impl CloudflareCheck {
    /// The backend-neutral form ([`memory_storage::ConsistencyReport`]): rows without
    /// vectors are [`IssueKind::MissingVector`], vectors without rows
    /// [`IssueKind::StrayVector`], R2 objects without rows [`IssueKind::StrayObject`].
    #[must_use]
    pub fn to_generic(&self) -> ConsistencyReport {
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
        for m in &self.missing_objects {
            issues.push(ConsistencyIssue::new(
                IssueKind::MissingObject,
                m.content_hash.as_str(),
                format!(
                    "the memory's content is in the R2 object {}, which is missing: reading \
                     it fails, and lists and searches show its stored excerpt (its first \
                     {PREVIEW_CHARS} characters); `repair` keeps the memory with that excerpt as \
                     its content, under the excerpt's hash, recording the original hash and \
                     length in its metadata ({MISSING_CONTENT_METADATA})",
                    m.r2_key
                ),
            ));
        }
        for m in &self.hash_mismatches {
            issues.push(ConsistencyIssue::new(
                IssueKind::HashMismatch,
                m.stored.as_str(),
                format!(
                    "the row's content hashes to {}, not to the hash it is stored under, so \
                     storing that content again would be called a duplicate of this row; \
                     `repair` re-keys it under {} (merging its tags into the live memory that \
                     already has that hash, if any)",
                    m.computed, m.computed
                ),
            ));
        }
        let mut report = ConsistencyReport {
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
pub struct CloudflareRepair {
    /// The problems found before repairing.
    pub found: CloudflareCheck,
    /// Vectors re-embedded and written.
    pub vectors_written: u64,
    /// Stray vectors deleted.
    pub vectors_deleted: u64,
    /// Orphan R2 objects deleted.
    pub r2_objects_deleted: u64,
    /// Memories whose R2 object was missing, kept with their excerpt as content.
    #[serde(default)]
    pub excerpts_kept: u64,
    /// Rows re-keyed under the hash of their content (hash mismatches).
    #[serde(default)]
    pub rows_rekeyed: u64,
    /// Rows merged into the live memory that already had their content's hash (their
    /// tags added to it, the row deleted).
    #[serde(default)]
    pub rows_merged: u64,
    /// Memories with a missing object whose excerpt is not a valid memory on its own
    /// (blank), deleted.
    #[serde(default)]
    pub rows_deleted: u64,
}

impl CloudflareRepair {
    /// Issues fixed: vectors written, vectors deleted and objects deleted.
    #[must_use]
    pub fn fixed(&self) -> u64 {
        self.vectors_written
            + self.vectors_deleted
            + self.r2_objects_deleted
            + self.excerpts_kept
            + self.rows_rekeyed
            + self.rows_merged
            + self.rows_deleted
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
        let mut line = |n: u64, what: &str| {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        };
        line(
            self.excerpts_kept,
            "memories whose R2 object was missing kept with their stored excerpt as content \
             (re-keyed under its hash; metadata.content_missing records the original hash and \
             length)",
        );
        line(
            self.rows_rekeyed,
            "rows re-keyed under the hash of their content",
        );
        line(
            self.rows_merged,
            "rows merged into the live memory already holding their content's hash (tags \
             added to it)",
        );
        line(
            self.rows_deleted,
            "memories deleted: their R2 object was missing and their excerpt is blank",
        );
        out
    }
}

/// [`MemoryStorage::check`](memory_storage::MemoryStorage::check): the inherent check in
/// the generic form.
pub(crate) async fn generic_check(store: &CloudflareStorage) -> StorageResult<ConsistencyReport> {
    Ok(store.check().await?.to_generic())
}

/// [`MemoryStorage::repair`](memory_storage::MemoryStorage::repair): the inherent repair,
/// then a check whose findings are what remains.
///
/// Vectorize applies writes a few seconds after accepting them; the check after the repair
/// sees the repair's own writes as pending (this process made them), not as remaining.
pub(crate) async fn generic_repair(store: &CloudflareStorage) -> StorageResult<RepairReport> {
    let done = store.repair().await?;
    let after = store.check().await?.to_generic();
    Ok(RepairReport {
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
    /// one R2 list call per 1,000 objects, plus a barrier: one mutation and one `info`
    /// call per quarter second until Vectorize has applied every write accepted before
    /// the check (a few seconds on Cloudflare, at most
    /// [`with_settle_timeout`](Self::with_settle_timeout)). A disagreement about a
    /// vector whose write may still be on its way (this process's writes made meanwhile,
    /// or, when the barrier is not reached in time, rows changed in the last minutes) is
    /// listed in [`CloudflareCheck::pending_vectors`], not reported as an issue.
    ///
    /// # Errors
    ///
    /// The first failing call's error.
    pub async fn check(&self) -> StorageResult<CloudflareCheck> {
        self.inner.check().await
    }

    /// Waits until Vectorize has applied every vector write this process made, for at
    /// most `timeout`, and returns whether it did; `false` means some may still be on
    /// their way (Cloudflare takes "a few seconds", minutes under load). Searches of this
    /// process already see its own writes; this is for work that needs the index itself
    /// settled. Costs, when a write is pending, one mutation (a barrier: the delete of an
    /// id that does not exist) and one `info` call per [`SETTLE_POLL`].
    ///
    /// # Errors
    ///
    /// A failing Vectorize call's error.
    pub async fn wait_for_vectors(&self, timeout: std::time::Duration) -> StorageResult<bool> {
        let i = &*self.inner;
        if !i.pending.any_pending() {
            return Ok(true);
        }
        Ok(i.barrier(timeout).await?.reached)
    }

    /// Fixes what [`check`](Self::check) finds: re-embeds and writes the vectors of rows
    /// without one, deletes vectors without a live row, deletes orphan R2 objects.
    ///
    /// # Errors
    ///
    /// The first failing call's error (what was repaired before it stays repaired).
    pub async fn repair(&self) -> StorageResult<CloudflareRepair> {
        let found = self.inner.check().await?;
        let i = &*self.inner;
        let mut report = CloudflareRepair {
            found: found.clone(),
            ..CloudflareRepair::default()
        };
        // Re-keying first: the vectors it writes are then not reported missing below.
        let rekeys = found
            .missing_objects
            .iter()
            .map(|m| (m.content_hash.clone(), Some(m)))
            .chain(
                found
                    .hash_mismatches
                    .iter()
                    .map(|m| (m.stored.clone(), None)),
            );
        for (hash, missing) in rekeys {
            match i.rekey(&hash, missing).await? {
                Rekeyed::Gone => {}
                Rekeyed::Moved => {
                    if missing.is_some() {
                        report.excerpts_kept += 1;
                    } else {
                        report.rows_rekeyed += 1;
                    }
                }
                Rekeyed::Merged => report.rows_merged += 1,
                Rekeyed::Deleted => report.rows_deleted += 1,
            }
        }
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
            // Rows re-keyed above are no longer under these hashes, and are skipped.
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

/// What [`Inner::barrier`] saw.
struct Barrier {
    /// The index processed the barrier: every mutation accepted before it is applied.
    reached: bool,
    /// The index's last `info`.
    info: IndexInfo,
}

impl Inner {
    /// Sends a barrier mutation (the delete of a random id that exists nowhere) and polls
    /// the index's `info` until it reports the barrier processed, for at most `timeout`.
    ///
    /// Why a barrier: Vectorize applies mutations in the order it accepted them, so once
    /// the barrier is processed every write accepted before it — this process's or
    /// another's — is visible. The index's progress names only its last mutation; another
    /// writer's mutation processed after the barrier hides it, and the wait then ends at
    /// `timeout` unreached.
    async fn barrier(&self, timeout: std::time::Duration) -> StorageResult<Barrier> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mark = self.pending.mark();
        let probe = format!("barrier-{:032x}", rand::random::<u128>());
        let sent = self
            .parts
            .vectorize
            .delete_by_ids(vec![probe])
            .await
            .map_err(|e| vectorize_error("sending a barrier to the index", e))?;
        loop {
            let info = self
                .parts
                .vectorize
                .info()
                .await
                .map_err(|e| vectorize_error("reading the index's progress", e))?;
            self.pending.settle(
                info.processed_up_to_mutation.as_deref(),
                pending::parse_processed_at(info.processed_up_to_datetime.as_deref()),
            );
            if info.processed_up_to_mutation.as_deref() == Some(sent.mutation_id.as_str()) {
                self.pending.settle_before(mark);
                return Ok(Barrier {
                    reached: true,
                    info,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Barrier {
                    reached: false,
                    info,
                });
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    fn select_live(&self) -> String {
        format!(
            "SELECT {} FROM {} m WHERE m.deleted_at IS NULL",
            self.columns, self.tables.memories
        )
    }

    async fn check(&self) -> StorageResult<CloudflareCheck> {
        let s = Statement::new(format!(
            "SELECT content_hash, vector_id, r2_key, deleted_at, updated_at FROM {}",
            self.tables.memories
        ))
        .idempotent(true);
        let r = self.query("listing rows to check", s).await?;
        // When each vector id's row last changed (written, updated or deleted).
        let mut changed_at: HashMap<String, f64> = HashMap::new();
        let mut live_rows = 0u64;
        let mut live_vids: HashMap<String, String> = HashMap::new();
        let mut all_vids: HashSet<String> = HashSet::new();
        let mut live_keys: HashMap<String, String> = HashMap::new();
        let mut all_keys: HashSet<String> = HashSet::new();
        for row in &r.rows {
            let hash = text(row, "content_hash").unwrap_or_default();
            let live = row.get("deleted_at").is_none_or(serde_json::Value::is_null);
            let vid = text(row, "vector_id").unwrap_or_else(|| {
                hash.parse::<ContentHash>()
                    .map(|h| self.vector_id(&h))
                    .unwrap_or_default()
            });
            let changed = ["updated_at", "deleted_at"]
                .iter()
                .filter_map(|c| epoch(row.get(*c)))
                .fold(f64::NEG_INFINITY, f64::max);
            let e = changed_at.entry(vid.clone()).or_insert(changed);
            *e = e.max(changed);
            all_vids.insert(vid.clone());
            let key = text(row, "r2_key").filter(|k| !k.is_empty());
            if let Some(k) = &key {
                all_keys.insert(k.clone());
            }
            if live {
                live_rows += 1;
                if let Some(k) = key {
                    live_keys.insert(k, hash.clone());
                }
                live_vids.insert(vid, hash);
            }
        }
        // Rows first, then the barrier: the vector writes of the rows just read were sent
        // with (or before) their D1 writes, so they are accepted before the barrier and
        // applied once it is. What stays pending is then only what this process wrote
        // meanwhile; when the barrier is not reached in time, the rows' change times decide
        // (see `pending::changed_recently`).
        let barrier = self.barrier(self.settle_timeout).await?;
        if !barrier.reached {
            tracing::warn!(
                timeout_s = self.settle_timeout.as_secs(),
                "Vectorize did not report applying the writes before this check in time;                  disagreements about recently changed rows are listed as pending"
            );
        }
        let processed_at =
            pending::parse_processed_at(barrier.info.processed_up_to_datetime.as_deref());
        let now = pending::now_epoch();
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
        // A disagreement about a vector whose write may still be on its way is pending, not
        // an issue: this process wrote it and the index has not said it applied it, or its
        // row changed too recently for the index to show it (another process's write).
        let is_pending = |vid: &str| {
            if self.pending.get(vid).is_some() {
                return true;
            }
            let Some(changed) = changed_at.get(vid) else {
                return false;
            };
            // Our own last write of it settled, and nobody changed the row since.
            let ours_settled = self.pending.settled_at(vid).is_some_and(|w| w >= *changed);
            !barrier.reached
                && !ours_settled
                && pending::changed_recently(*changed, now, processed_at)
        };
        let mut pending_vectors: Vec<String> = Vec::new();
        let mut rows_without_vectors: Vec<ContentHash> = Vec::new();
        for (vid, hash) in live_vids.iter().filter(|(vid, _)| !listed.contains(*vid)) {
            if is_pending(vid) {
                pending_vectors.push(vid.clone());
            } else if let Ok(h) = hash.parse() {
                rows_without_vectors.push(h);
            }
        }
        rows_without_vectors.sort();
        // Vectors with no live row: only those this store wrote are strays. The index may
        // be shared with other tenants (namespaces) or, without a namespace, with other
        // stores (other D1 databases) and other tools; deleting theirs would destroy data
        // this store cannot see. Ours carry our store id; a vector without any store id
        // (written before ids existed, or by upstream's service) is ours only if one of our
        // rows names it.
        let (recent, unknown): (Vec<String>, Vec<String>) = listed
            .into_iter()
            .filter(|id| !live_vids.contains_key(id))
            .partition(|id| is_pending(id));
        pending_vectors.extend(recent);
        pending_vectors.sort();
        if !pending_vectors.is_empty() {
            tracing::info!(
                vectors = pending_vectors.len(),
                "some vector writes are not applied by Vectorize yet; they are not issues (check again in a minute)"
            );
        }
        let vectors = self
            .fetch_vectors(&unknown, "reading stray vectors")
            .await?;
        let (ns, me) = (self.ns(), self.store_id.get().map(String::as_str));
        let (mut strays, mut foreign_vectors) = (Vec::new(), Vec::new());
        for v in vectors {
            let known = all_vids.contains(&v.id);
            let in_namespace = v.namespace.as_deref() == ns || (ns.is_some() && known);
            let marker = v
                .metadata
                .as_ref()
                .and_then(|m| m.get(STORE_ID_METADATA))
                .and_then(serde_json::Value::as_str);
            let ours = in_namespace
                && match marker {
                    Some(id) => Some(id) == me,
                    None => known,
                };
            if ours {
                strays.push(v.id);
            } else {
                foreign_vectors.push(v.id);
            }
        }
        strays.sort();
        foreign_vectors.sort();
        let (mut orphans, mut foreign_objects, mut missing_objects) =
            (Vec::new(), Vec::new(), Vec::new());
        if let Some(r2) = &self.parts.r2 {
            let prefix = self.r2_prefix();
            let objects = list_all_pages(r2.as_ref(), ListObjects::new().prefix(prefix.clone()))
                .await
                .map_err(|e| r2_error("listing R2 objects", e))?;
            let own = me.map(|_| self.r2_store_prefix());
            let mut present = HashSet::with_capacity(objects.len());
            for key in objects.into_iter().map(|o| o.key) {
                if !live_keys.contains_key(&key) {
                    // Ours: under our store id, or named by one of our (deleted) rows.
                    if own.as_ref().is_some_and(|p| key.starts_with(p)) || all_keys.contains(&key) {
                        orphans.push(key.clone());
                    } else {
                        foreign_objects.push(key.clone());
                    }
                }
                present.insert(key);
            }
            // Keys outside the listed prefix (written by another tool) are not checked.
            for (key, hash) in &live_keys {
                if key.starts_with(&prefix)
                    && !present.contains(key)
                    && let Ok(content_hash) = hash.parse()
                {
                    missing_objects.push(MissingObject {
                        content_hash,
                        r2_key: key.clone(),
                    });
                }
            }
            orphans.sort();
            foreign_objects.sort();
            missing_objects.sort_by(|a, b| a.content_hash.cmp(&b.content_hash));
        }
        if !foreign_vectors.is_empty() || !foreign_objects.is_empty() {
            tracing::info!(
                vectors = foreign_vectors.len(),
                objects = foreign_objects.len(),
                "the index or bucket holds vectors or objects this store did not write; they are left alone"
            );
        }
        Ok(CloudflareCheck {
            rows_without_vectors,
            vectors_without_rows: strays,
            r2_objects_without_rows: orphans,
            missing_objects,
            hash_mismatches: self.hash_mismatches().await?,
            foreign_vectors,
            foreign_objects,
            pending_vectors,
            live_rows,
        })
    }

    /// Live rows holding their content in D1 whose hash is not the hash of that content,
    /// read in pages of [`HASH_CHECK_PAGE`] rows.
    async fn hash_mismatches(&self) -> StorageResult<Vec<HashMismatch>> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let s = Statement::new(format!(
                "SELECT id, content_hash, content FROM {} WHERE deleted_at IS NULL AND \
                 (r2_key IS NULL OR r2_key = '') AND id > CAST(? AS INTEGER) \
                 ORDER BY id LIMIT CAST(? AS INTEGER)",
                self.tables.memories
            ))
            .bind(Param::Integer(after))
            .bind(Param::Integer(HASH_CHECK_PAGE))
            .idempotent(true);
            let r = self
                .query("reading contents to check their hashes", s)
                .await?;
            for row in &r.rows {
                let (Some(stored), Some(content)) =
                    (text(row, "content_hash"), text(row, "content"))
                else {
                    continue;
                };
                let computed = ContentHash::of(&content);
                if computed.as_str() != stored
                    && let Ok(stored) = stored.parse()
                {
                    out.push(HashMismatch { stored, computed });
                }
            }
            match r.rows.last().and_then(|row| int(row, "id")) {
                Some(last) if r.rows.len() as i64 == HASH_CHECK_PAGE => after = last,
                _ => break,
            }
        }
        out.sort_by(|a, b| a.stored.cmp(&b.stored));
        Ok(out)
    }
}

/// What [`Inner::rekey`] did with a row.
enum Rekeyed {
    /// The row was no longer live under that hash (changed since the check).
    Gone,
    /// Now under the hash of its content.
    Moved,
    /// Merged into the live memory that had that hash.
    Merged,
    /// Deleted (the excerpt of a lost object is not a memory on its own).
    Deleted,
}

impl Inner {
    /// Re-keys the live row stored under `stored` to the hash of the content its D1 row
    /// holds: for a hash mismatch that is its content; for a `missing` R2 object, the
    /// excerpt kept in D1, which becomes the content (the metadata key
    /// [`MISSING_CONTENT_METADATA`] records the lost content's hash, length and key). When
    /// a live memory already has that hash, the row's tags are merged into it and the row
    /// is deleted. The vector moves with the row (its values are reused; embedded again
    /// when missing or when the content became the excerpt).
    async fn rekey(
        &self,
        stored: &ContentHash,
        missing: Option<&MissingObject>,
    ) -> StorageResult<Rekeyed> {
        let m = &self.tables.memories;
        let s = Statement::new(format!(
            "SELECT {}, m.content_size AS content_size FROM {m} m \
             WHERE m.deleted_at IS NULL AND m.content_hash = ?",
            self.columns
        ))
        .bind(stored.as_str())
        .idempotent(true);
        let r = self.query("reading a row to re-key", s).await?;
        let Some(raw) = r.rows.first() else {
            return Ok(Rekeyed::Gone);
        };
        let row = StoredRow::from_row(raw)?;
        let old_vid = row
            .vector_id
            .clone()
            .unwrap_or_else(|| self.vector_id(stored));
        let now = Timestamp::now();
        let tombstone = |id: i64| {
            Statement::new(format!(
                "UPDATE {m} SET deleted_at = CAST(? AS REAL) WHERE id = CAST(? AS INTEGER) \
                 AND deleted_at IS NULL"
            ))
            .bind(epoch_text(now))
            .bind(Param::Integer(id))
            .idempotent(true)
        };
        // The content the row keeps: for a lost object, its excerpt.
        let Ok(check) = memory_core::Memory::new(row.memory.content()) else {
            self.batch(
                "deleting a memory whose content is lost",
                vec![tombstone(row.id)],
            )
            .await?;
            self.delete_vectors_pending("deleting a lost memory's vector", vec![old_vid])
                .await;
            return Ok(Rekeyed::Deleted);
        };
        let new_hash = check.content_hash().clone();
        let mut metadata = row.memory.metadata.clone();
        if let Some(lost) = missing {
            let bytes = raw.get("content_size").cloned().unwrap_or_default();
            metadata.insert(
                MISSING_CONTENT_METADATA,
                serde_json::json!({
                    "original_hash": stored.as_str(),
                    "original_bytes": bytes,
                    "r2_key": lost.r2_key,
                    "note": "the R2 object holding the full content was lost; `repair` kept \
                             the excerpt stored in D1 as the content",
                }),
            );
        }
        let target = Statement::new(format!("{} AND m.content_hash = ?", self.select_live()))
            .bind(new_hash.as_str())
            .idempotent(true);
        let existing = self.query("looking up the re-keyed hash", target).await?;
        if let Some(other) = existing.rows.first().map(StoredRow::from_row).transpose()?
            && other.id != row.id
        {
            // Same content as a live memory: that one stays, with both sets of tags.
            let tags = union_tags([&other.memory.tags, &row.memory.tags])?;
            let mut statements = vec![tombstone(row.id)];
            if tags != other.memory.tags {
                statements.push(
                    Statement::new(format!(
                        "UPDATE {m} SET tags = ? WHERE id = CAST(? AS INTEGER)"
                    ))
                    .bind(tags.joined())
                    .bind(Param::Integer(other.id))
                    .idempotent(true),
                );
                statements.extend(link_statements(&self.tables, new_hash.as_str(), &tags));
            }
            self.batch("merging a row into the memory with its hash", statements)
                .await?;
            self.delete_vectors_pending("deleting a merged row's vector", vec![old_vid])
                .await;
            return Ok(Rekeyed::Merged);
        }
        let new_vid = self.vector_id(&new_hash);
        let content = check.into_content();
        let statements = vec![
            // A tombstone holding the hash would break the UNIQUE constraint; it is dead.
            Statement::new(format!(
                "DELETE FROM {} WHERE memory_id IN (SELECT id FROM {m} WHERE content_hash = ? \
                 AND deleted_at IS NOT NULL)",
                self.tables.memory_tags
            ))
            .bind(new_hash.as_str())
            .idempotent(true),
            Statement::new(format!(
                "DELETE FROM {m} WHERE content_hash = ? AND deleted_at IS NOT NULL"
            ))
            .bind(new_hash.as_str())
            .idempotent(true),
            Statement::new(format!(
                "UPDATE {m} SET content_hash = ?, vector_id = ?, content = ?, r2_key = NULL, \
                 content_size = CAST(? AS INTEGER), metadata_json = ? \
                 WHERE id = CAST(? AS INTEGER) AND deleted_at IS NULL"
            ))
            .bind(new_hash.as_str())
            .bind(new_vid.clone())
            .bind(content.clone())
            .bind(Param::Integer(content.len() as i64))
            .bind(metadata.to_json_string())
            .bind(Param::Integer(row.id))
            .idempotent(true),
        ];
        self.batch("re-keying a row under its content's hash", statements)
            .await?;
        let memory = memory_core::Memory::from_parts(
            content,
            new_hash,
            row.memory.tags,
            row.memory.memory_type,
            metadata,
            None,
            row.memory.created_at,
            row.memory.updated_at,
        );
        // The vector's values stay right when only the key was wrong; an excerpt is
        // embedded anew.
        let reuse = if missing.is_none() {
            self.fetch_vectors(std::slice::from_ref(&old_vid), "reading a vector to move")
                .await?
                .pop()
                .map(|v| v.values)
        } else {
            None
        };
        let values = match reuse {
            Some(v) => v,
            None => self
                .embed(&[memory.content()])
                .await?
                .pop()
                .ok_or_else(|| bad_row("the embedder returned no vector"))?,
        };
        let mut vector = self.vector(&memory, values);
        vector.id = new_vid.clone();
        self.upsert("writing a re-keyed memory's vector", vec![vector])
            .await?;
        if old_vid != new_vid {
            self.delete_vectors_pending("deleting a re-keyed memory's old vector", vec![old_vid])
                .await;
        }
        Ok(Rekeyed::Moved)
    }
}

/// A live row as duplicate clean-up sees it.
struct DupRow {
    row: StoredRow,
    stored: String,
    recomputed: String,
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
    let CleanupPlan { groups, mut report } = CleanupPlan::new(
        rows.iter()
            .map(|r| [r.stored.as_str(), r.recomputed.as_str()]),
    );
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
            .fetch_vectors(std::slice::from_ref(old), "moving a vector")
            .await?;
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

/// A D1 time column (epoch seconds, as a number or as text) as seconds.
fn epoch(value: Option<&serde_json::Value>) -> Option<f64> {
    match value? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
