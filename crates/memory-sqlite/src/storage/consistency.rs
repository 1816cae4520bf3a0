//! `check` and `repair` of the SQLite backend.
//!
//! What can disagree inside one file, and what each side is:
//! * **Embeddings** ([`IssueKind::MissingVector`], [`IssueKind::InvalidVector`]): the
//!   `embedding` column of a live row must be `dims` finite little-endian `f32`s of unit
//!   length. An empty or non-blob value is missing; a wrong size, NaN, infinity, all zeros
//!   or another length is invalid. Such rows are left out of semantic search (the index
//!   skips them on load). Repair embeds the content again with the store's embedder.
//! * **Tag links** ([`IssueKind::TagLinksMismatch`]): `memory_tags` must hold exactly the
//!   tags of the `tags` column of every live row (tag filters and tag counts read the
//!   links, returned memories the column), and no link may point to a row that does not
//!   exist. Repair rebuilds the links from the column and deletes orphan links.
//! * **The in-memory vector index** ([`IssueKind::IndexMismatch`]): it must hold exactly the
//!   usable vectors of the live rows. A write that bypassed this crate (another tool
//!   editing the file without advancing `meta.seq`) leaves it behind. Repair rebuilds it.
//! * **Hashes** ([`IssueKind::HashMismatch`]): a live row's `content_hash` must be the hash
//!   of its content (a row written under an older rule, or by a tool that trusted a
//!   supplied hash, breaks this: storing that content again would be called a duplicate of
//!   the wrong row). Repair merges such rows into a live row that has the right hash (as
//!   `cleanup_duplicates` does) and re-keys the others under the hash of their content.
//! * **The file** ([`IssueKind::Corruption`]): `PRAGMA integrity_check` must say `ok`.
//!   Nothing here can repair that: restore a backup, or export and import into a new file.
//!
//! `check` only reads (one snapshot, on a pooled reader); `repair` writes in `BEGIN
//! IMMEDIATE` transactions that advance `meta.seq`, so other processes' indexes follow.

use std::collections::{BTreeSet, HashMap};

use memory_core::ContentHash;
use memory_storage::{ConsistencyIssue, ConsistencyReport, IssueKind, RepairReport, StorageResult};
use rusqlite::{Connection, ErrorCode, params};

use super::{Inner, SqliteStorage};
use crate::codec::{
    MEMORY_COLUMNS, StoredProblem, decode_stored, encode_embedding, json_strings, memory_from_row,
};
use crate::connection::BACKEND;
use crate::live_index::{IndexDisagreement, fingerprint};
use crate::schema::{META_PURGE_EPOCH, META_SEQ, bump_counter, meta_counter};

/// Lines of `PRAGMA integrity_check` output reported at most.
const INTEGRITY_LINES: u32 = 100;

/// Memories re-embedded per embedder call and write transaction while repairing.
const REPAIR_EMBED_BATCH: usize = 64;

/// Snapshots taken before giving up on comparing the index while other connections write.
const INDEX_ATTEMPTS: usize = 3;

/// What the advice for damage that cannot be repaired says.
const RESTORE_ADVICE: &str = "this cannot be repaired in place: restore a backup of the file, \
     or copy what is still readable to a new file (`mcp-memory export`, then `mcp-memory import` \
     with `--db` pointing to a new file)";

/// The problems found, with what repair needs to act on them.
#[derive(Debug, Default)]
struct Findings {
    live: u64,
    corruption: Vec<String>,
    /// Live rows whose embedding is unusable: id, hash, problem.
    vectors: Vec<(i64, String, StoredProblem)>,
    /// Live rows whose links differ from their column: id, hash, explanation.
    links: Vec<(i64, String, String)>,
    /// Link rows of rows that do not exist: memory id, number of links.
    orphan_links: Vec<(i64, i64)>,
    /// Index disagreements, with the hash of the row where it is live.
    index: Vec<(IndexDisagreement, Option<String>)>,
    /// Live rows whose hash is not their content's: stored hash, hash of the content.
    hashes: Vec<(String, String)>,
}

impl Findings {
    fn report(&self) -> ConsistencyReport {
        let mut issues = Vec::new();
        for line in &self.corruption {
            issues.push(ConsistencyIssue::new(
                IssueKind::Corruption,
                "database file",
                format!("integrity check: {line}; {RESTORE_ADVICE}"),
            ));
        }
        for (_, hash, problem) in &self.vectors {
            let kind = if problem.missing {
                IssueKind::MissingVector
            } else {
                IssueKind::InvalidVector
            };
            issues.push(ConsistencyIssue::new(
                kind,
                hash.clone(),
                format!(
                    "{}; semantic search cannot find this memory; `repair` embeds it again",
                    problem.detail
                ),
            ));
        }
        for (_, hash, detail) in &self.links {
            issues.push(ConsistencyIssue::new(
                IssueKind::TagLinksMismatch,
                hash.clone(),
                format!("{detail}; `repair` rebuilds the links from the tags column"),
            ));
        }
        for (id, n) in &self.orphan_links {
            issues.push(ConsistencyIssue::new(
                IssueKind::TagLinksMismatch,
                format!("row {id}"),
                format!(
                    "{n} memory_tags row(s) point to row {id}, which does not exist; \
                     `repair` deletes them"
                ),
            ));
        }
        for (stored, computed) in &self.hashes {
            issues.push(ConsistencyIssue::new(
                IssueKind::HashMismatch,
                stored.clone(),
                format!(
                    "the content hashes to {computed}, not to the hash the memory is stored \
                     under, so storing that content again would be called a duplicate of this \
                     memory; `repair` re-keys it under {computed} (merging it into the memory \
                     already stored under that hash, if any)"
                ),
            ));
        }
        for (d, hash) in &self.index {
            let subject = hash.clone().unwrap_or_else(|| format!("row {}", d.id()));
            let what = match d {
                IndexDisagreement::Absent(_) => {
                    "the in-memory vector index lacks this live memory, so search misses it"
                }
                IndexDisagreement::Stale(_) => {
                    "the in-memory vector index holds another vector than the database"
                }
                IndexDisagreement::Extra(_) => {
                    "the in-memory vector index holds a row that is deleted, gone or has no \
                     usable vector"
                }
            };
            issues.push(ConsistencyIssue::new(
                IssueKind::IndexMismatch,
                subject,
                format!(
                    "{what} (the file was changed without advancing meta.seq); `repair` \
                     rebuilds the index"
                ),
            ));
        }
        let mut report = ConsistencyReport {
            backend: BACKEND.into(),
            memories_checked: self.live,
            issues,
        };
        report.sort();
        report
    }
}

/// One read snapshot of everything `check` compares.
#[derive(Debug, Default)]
struct Snapshot {
    findings: Findings,
    seq: i64,
    purge_epoch: i64,
    /// Row id → fingerprint of the vector, for every live row with a usable vector.
    prints: HashMap<i64, u64>,
    /// Row id → hash of every live row.
    hashes: HashMap<i64, String>,
}

/// Whether an SQLite error means the file is damaged.
fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Tags of the comma-joined column, as a set.
fn column_tags(joined: &str) -> BTreeSet<String> {
    joined
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads everything in one transaction of `c`.
fn read_snapshot(c: &Connection, dims: usize) -> rusqlite::Result<Snapshot> {
    let tx = c.unchecked_transaction()?;
    let mut snap = Snapshot {
        seq: meta_counter(&tx, META_SEQ)?,
        purge_epoch: meta_counter(&tx, META_PURGE_EPOCH)?,
        ..Snapshot::default()
    };
    {
        let mut stmt = tx.prepare(
            "SELECT m.id, m.content_hash, m.embedding, m.tags, \
             (SELECT json_group_array(t.tag) FROM memory_tags t WHERE t.memory_id = m.id), \
             m.content FROM memories m WHERE m.deleted_at IS NULL",
        )?;
        let mut rows = stmt.query([])?;
        let mut vector = Vec::with_capacity(dims);
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let hash: String = row.get(1)?;
            snap.findings.live += 1;
            match decode_stored(row.get_ref(2)?, dims, &mut vector) {
                Ok(()) => {
                    snap.prints.insert(id, fingerprint(&vector));
                }
                Err(problem) => snap.findings.vectors.push((id, hash.clone(), problem)),
            }
            let computed = ContentHash::of(row.get_ref(5)?.as_str()?);
            if computed.as_str() != hash {
                snap.findings
                    .hashes
                    .push((hash.clone(), computed.to_string()));
            }
            let column: String = row.get(3)?;
            let links: String = row.get(4)?;
            let want = column_tags(&column);
            let have: BTreeSet<String> = serde_json::from_str::<Vec<String>>(&links)
                .unwrap_or_default()
                .into_iter()
                .collect();
            if want != have {
                let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
                snap.findings.links.push((
                    id,
                    hash.clone(),
                    format!(
                        "the tags column holds [{}] but memory_tags links [{}], so tag filters \
                         and tag counts disagree with the memory",
                        list(&want),
                        list(&have)
                    ),
                ));
            }
            snap.hashes.insert(id, hash);
        }
    }
    snap.findings.orphan_links = tx
        .prepare(
            "SELECT memory_id, COUNT(*) FROM memory_tags \
             WHERE memory_id NOT IN (SELECT id FROM memories) GROUP BY memory_id ORDER BY memory_id",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    tx.finish()?;
    Ok(snap)
}

/// `PRAGMA integrity_check`: the lines other than `ok`, or the error that reading the
/// file gave when it is damaged beyond that.
fn integrity(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let lines: Vec<String> = c
        .prepare(&format!("PRAGMA integrity_check({INTEGRITY_LINES})"))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(lines.into_iter().filter(|l| l != "ok").collect())
}

impl Inner {
    /// Everything `check` finds (blocking).
    fn find(&self) -> StorageResult<Findings> {
        let dims = self.dims.get();
        let damaged = |e: &rusqlite::Error| Findings {
            corruption: vec![format!("reading the file failed: {e}")],
            ..Findings::default()
        };
        let lines = match self.read("checking the database's integrity", |c| Ok(integrity(c)))? {
            Ok(lines) => lines,
            Err(e) if is_corrupt(&e) => return Ok(damaged(&e)),
            Err(e) => return Err(self.db_err("checking the database's integrity", e)),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.index
                .refresh()
                .map_err(|e| self.db_err("refreshing the vector index", e))?;
            let snap = match self.read("checking the database", |c| Ok(read_snapshot(c, dims)))? {
                Ok(s) => s,
                Err(e) if is_corrupt(&e) => return Ok(damaged(&e)),
                Err(e) => return Err(self.db_err("checking the database", e)),
            };
            let mut findings = snap.findings;
            findings.corruption = lines.clone();
            match self.index.verify(snap.seq, snap.purge_epoch, &snap.prints) {
                Some(diffs) => {
                    findings.index = diffs
                        .into_iter()
                        .map(|d| (d, snap.hashes.get(&d.id()).cloned()))
                        .collect();
                }
                // Another connection wrote between the refresh and the snapshot.
                None if attempt < INDEX_ATTEMPTS => continue,
                None => tracing::info!(
                    "the database kept changing during the check; the vector index was not compared"
                ),
            }
            return Ok(findings);
        }
    }

    /// Reads the content of the live rows `ids` still carrying the hashes found.
    fn contents(&self, rows: &[(i64, String)]) -> StorageResult<Vec<(i64, String, String)>> {
        let hashes = json_strings(rows.iter().map(|(_, h)| h.as_str()));
        self.read("reading memories to re-embed", |c| {
            c.prepare(
                "SELECT id, content_hash, content FROM memories \
                 WHERE content_hash IN (SELECT value FROM json_each(?1)) AND deleted_at IS NULL",
            )?
            .query_map([hashes], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })
    }

    /// Writes new embeddings of live rows; returns how many rows took one.
    fn write_vectors(&self, rows: &[(i64, String, Vec<f32>)]) -> StorageResult<u64> {
        self.write("writing re-embedded vectors", |tx| {
            let seq = bump_counter(tx, META_SEQ)?;
            let mut stmt = tx.prepare_cached(
                "UPDATE memories SET embedding = ?1, seq = ?2 \
                 WHERE id = ?3 AND content_hash = ?4 AND deleted_at IS NULL",
            )?;
            let mut n = 0u64;
            for (id, hash, v) in rows {
                n += stmt.execute(params![encode_embedding(v), seq, id, hash])? as u64;
            }
            Ok(n)
        })
    }

    /// Re-keys live rows `(stored, computed)` under the hash of their content; a tombstone
    /// holding that hash goes for good (it is the same text, deleted). Returns the rows
    /// re-keyed. Rows that a live row with the right hash already has are left to
    /// `cleanup_duplicates`, which merges them first.
    fn rekey(&self, rows: &[(String, String)]) -> StorageResult<u64> {
        self.write("re-keying memories under the hash of their content", |tx| {
            let seq = bump_counter(tx, META_SEQ)?;
            let rec = self.recorder(tx)?;
            let mut n = 0u64;
            let mut freed = 0usize;
            for (stored, computed) in rows {
                let live: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM memories WHERE content_hash = ?1 \
                     AND deleted_at IS NULL)",
                    [computed],
                    |r| r.get(0),
                )?;
                if live {
                    continue;
                }
                freed += tx.execute(
                    "DELETE FROM memories WHERE content_hash = ?1 AND deleted_at IS NOT NULL",
                    [computed],
                )?;
                let moved = tx.execute(
                    "UPDATE memories SET content_hash = ?2, seq = ?3 \
                     WHERE content_hash = ?1 AND deleted_at IS NULL",
                    params![stored, computed, seq],
                )?;
                // To the other devices a re-keyed memory is a new one: its old hash goes,
                // its content arrives under the hash every device computes for it.
                if moved > 0
                    && let Some(rec) = &rec
                {
                    rec.delete(&super::write::parse_hash(stored)?)?;
                    let (_, memory) = tx
                        .prepare_cached(&format!(
                            "SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.content_hash = ?1"
                        ))?
                        .query_row([computed], memory_from_row)?;
                    rec.store(&memory)?;
                }
                n += moved as u64;
            }
            if freed > 0 {
                bump_counter(tx, META_PURGE_EPOCH)?;
            }
            Ok(n)
        })
    }

    /// Rebuilds the links of live rows `ids` from their column and deletes orphan links;
    /// returns (rows whose links were rebuilt, memory ids whose orphan links went).
    fn rebuild_links(&self, ids: &[i64]) -> StorageResult<(u64, u64)> {
        self.write("rebuilding tag links", |tx| {
            let mut rebuilt = 0u64;
            for &id in ids {
                let column: Option<String> = tx
                    .prepare_cached(
                        "SELECT tags FROM memories WHERE id = ?1 AND deleted_at IS NULL",
                    )?
                    .query_row([id], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                let Some(column) = column else { continue };
                tx.prepare_cached("DELETE FROM memory_tags WHERE memory_id = ?1")?
                    .execute([id])?;
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO memory_tags (memory_id, tag) VALUES (?1, ?2)",
                )?;
                for tag in column_tags(&column) {
                    insert.execute(params![id, tag])?;
                }
                rebuilt += 1;
            }
            let orphans: i64 = tx.query_row(
                "SELECT COUNT(DISTINCT memory_id) FROM memory_tags \
                 WHERE memory_id NOT IN (SELECT id FROM memories)",
                [],
                |r| r.get(0),
            )?;
            tx.execute(
                "DELETE FROM memory_tags WHERE memory_id NOT IN (SELECT id FROM memories)",
                [],
            )?;
            Ok((rebuilt, u64::try_from(orphans).unwrap_or(0)))
        })
    }
}

/// [`MemoryStorage::check`](memory_storage::MemoryStorage::check) of a [`SqliteStorage`].
pub(crate) async fn check(store: &SqliteStorage) -> StorageResult<ConsistencyReport> {
    store.run(|inner| inner.find()).await.map(|f| f.report())
}

/// [`MemoryStorage::repair`](memory_storage::MemoryStorage::repair) of a [`SqliteStorage`].
pub(crate) async fn repair(store: &SqliteStorage) -> StorageResult<RepairReport> {
    let findings = store.run(|inner| inner.find()).await?;
    let found = findings.report();
    let mut fixed = 0u64;
    let mut actions = Vec::new();

    // Embeddings: embed the content again, in batches.
    let targets: Vec<(i64, String)> = findings
        .vectors
        .iter()
        .map(|(id, hash, _)| (*id, hash.clone()))
        .collect();
    let mut embedded = 0u64;
    for batch in targets.chunks(REPAIR_EMBED_BATCH) {
        let batch = batch.to_vec();
        let rows = store.run(move |inner| inner.contents(&batch)).await?;
        if rows.is_empty() {
            continue;
        }
        let vectors = store
            .embed(rows.iter().map(|(_, _, content)| content.clone()).collect())
            .await?;
        let writes: Vec<(i64, String, Vec<f32>)> = rows
            .into_iter()
            .zip(vectors)
            .map(|((id, hash, _), v)| (id, hash, v))
            .collect();
        embedded += store.run(move |inner| inner.write_vectors(&writes)).await?;
    }
    if embedded > 0 {
        fixed += embedded;
        actions.push(format!(
            "re-embedded {embedded} memor{} whose vector was missing or unusable",
            if embedded == 1 { "y" } else { "ies" }
        ));
    }

    // Tag links: rebuild from the column, drop orphans.
    if !findings.links.is_empty() || !findings.orphan_links.is_empty() {
        let ids: Vec<i64> = findings.links.iter().map(|(id, _, _)| *id).collect();
        let (rebuilt, orphans) = store.run(move |inner| inner.rebuild_links(&ids)).await?;
        if rebuilt > 0 {
            fixed += rebuilt;
            actions.push(format!(
                "rebuilt the tag links of {rebuilt} memor{} from their tags column",
                if rebuilt == 1 { "y" } else { "ies" }
            ));
        }
        if orphans > 0 {
            fixed += orphans;
            actions.push(format!(
                "deleted the tag links of {orphans} row(s) that no longer exist"
            ));
        }
    }

    // Hashes: merge rows into a live row that has their content's hash (the duplicate
    // groups `cleanup_duplicates` forms), then re-key the rest.
    if !findings.hashes.is_empty() {
        let merged = store.run(|inner| inner.cleanup_duplicates()).await?;
        let n = merged.removed.len() as u64;
        if n > 0 {
            fixed += n;
            actions.push(format!(
                "merged {n} memor{} stored under another hash into the memory with the hash \
                 of their content (tags united)",
                if n == 1 { "y" } else { "ies" }
            ));
        }
        let rows = findings.hashes.clone();
        let n = store.run(move |inner| inner.rekey(&rows)).await?;
        if n > 0 {
            fixed += n;
            actions.push(format!(
                "re-keyed {n} memor{} under the hash of their content",
                if n == 1 { "y" } else { "ies" }
            ));
        }
    }

    // The in-memory index: reload it from the table.
    if !findings.index.is_empty() {
        store
            .run(|inner| {
                inner
                    .index
                    .rebuild()
                    .map_err(|e| inner.db_err("rebuilding the vector index", e))
            })
            .await?;
        let n = findings.index.len() as u64;
        fixed += n;
        actions.push(format!(
            "rebuilt the in-memory vector index ({n} disagreement{})",
            if n == 1 { "" } else { "s" }
        ));
    }

    let after = check(store).await?;
    Ok(RepairReport {
        found,
        fixed,
        actions,
        remaining: after.issues,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use memory_core::{Memory, Tags};
    use memory_storage::{ConsistencyReport, IssueKind, MemoryStorage, TagCount};
    use rusqlite::Connection;
    use tempfile::TempDir;

    use crate::SqliteStorage;
    use crate::tests::WordsEmbedder;

    const DIMS: usize = 16;

    /// A store on a fresh file holding three tagged memories; returns them too.
    async fn store_with_three() -> (TempDir, Arc<WordsEmbedder>, SqliteStorage, [Memory; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let embedder = WordsEmbedder::new(DIMS);
        let store = SqliteStorage::open(dir.path().join("m.db"), embedder.clone())
            .await
            .unwrap();
        let memories = [
            Memory::new("alpha apples in autumn")
                .unwrap()
                .with_tags(Tags::parse("fruit,a").unwrap()),
            Memory::new("bravo bananas on boats")
                .unwrap()
                .with_tags(Tags::parse("fruit,b").unwrap()),
            Memory::new("charlie cherries at camp")
                .unwrap()
                .with_tags(Tags::parse("c").unwrap()),
        ];
        for m in &memories {
            store.store(m.clone()).await.unwrap();
        }
        (dir, embedder, store, memories)
    }

    /// A raw connection to the file, as another tool would open it (foreign keys off).
    fn raw(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        conn
    }

    fn kinds(report: &ConsistencyReport) -> Vec<(IssueKind, String)> {
        report
            .issues
            .iter()
            .map(|i| (i.kind, i.subject.clone()))
            .collect()
    }

    fn sorted(mut v: Vec<(IssueKind, String)>) -> Vec<(IssueKind, String)> {
        v.sort();
        v
    }

    #[tokio::test]
    async fn unusable_embeddings_are_found_and_re_embedded_and_the_file_still_opens() {
        let (dir, embedder, store, [a, b, c]) = store_with_three().await;
        let path = store.path().to_owned();
        drop(store);
        let conn = raw(&path);
        let set = |hash: &str, blob: Vec<u8>| {
            conn.execute(
                "UPDATE memories SET embedding = ?1 WHERE content_hash = ?2",
                rusqlite::params![blob, hash],
            )
            .unwrap();
        };
        set(a.content_hash().as_str(), Vec::new());
        set(b.content_hash().as_str(), vec![0u8; 12]);
        let mut nan = crate::codec::encode_embedding(&embedder.vector(c.content()));
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        set(c.content_hash().as_str(), nan);
        drop(conn);

        // Opening no longer fails on a bad blob: the rows are left out of search.
        let store = SqliteStorage::open(&path, embedder.clone()).await.unwrap();
        assert_eq!(store.indexed_vectors(), 0);
        let found = store.check().await.unwrap();
        assert_eq!(found.memories_checked, 3);
        assert_eq!(
            kinds(&found),
            sorted(vec![
                (IssueKind::MissingVector, a.content_hash().to_string()),
                (IssueKind::InvalidVector, b.content_hash().to_string()),
                (IssueKind::InvalidVector, c.content_hash().to_string()),
            ])
        );
        let b_issue = found
            .of_kind(IssueKind::InvalidVector)
            .find(|i| i.subject == b.content_hash().as_str())
            .unwrap();
        assert!(
            b_issue.detail.contains("12 bytes, not 64"),
            "{}",
            b_issue.detail
        );
        assert_eq!(
            store
                .get_embeddings(&[a.content_hash().clone()])
                .await
                .unwrap(),
            vec![None],
            "an unusable vector is not handed out"
        );
        // check changed nothing.
        assert_eq!(store.check().await.unwrap(), found);

        let calls = embedder.calls();
        let repaired = store.repair().await.unwrap();
        assert_eq!(repaired.found, found);
        assert_eq!(repaired.fixed, 3);
        assert_eq!(repaired.actions.len(), 1, "{:?}", repaired.actions);
        assert!(
            repaired.actions[0].contains("re-embedded 3 memories"),
            "{:?}",
            repaired.actions
        );
        assert!(repaired.remaining.is_empty(), "{:?}", repaired.remaining);
        assert_eq!(
            embedder.calls(),
            calls + 1,
            "one embedder call for the three"
        );
        assert!(store.check().await.unwrap().is_consistent());
        assert_eq!(store.indexed_vectors(), 3);
        let got = store
            .get_embeddings(&[
                a.content_hash().clone(),
                b.content_hash().clone(),
                c.content_hash().clone(),
            ])
            .await
            .unwrap();
        for (m, v) in [&a, &b, &c].iter().zip(got) {
            assert_eq!(v, Some(embedder.vector(m.content())), "{}", m.content());
        }
        let hits = store.retrieve("bravo bananas on boats", 1).await.unwrap();
        assert_eq!(hits[0].memory.content_hash(), b.content_hash());
        drop(dir);
    }

    #[tokio::test]
    async fn rows_under_another_hash_are_found_merged_and_re_keyed() {
        let (dir, _embedder, store, [a, b, c]) = store_with_three().await;
        let path = dir.path().join("m.db");
        // `a` stored under the hash of other text (an import that trusted a supplied hash);
        // `b` under a stale hash while a live row already holds its right hash (re-stored
        // after the damage, with another tag); `c` is fine.
        let wrong_a = memory_core::ContentHash::of("some other text");
        let wrong_b = memory_core::ContentHash::of("bravo, once upon a time");
        let conn = raw(&path);
        let rekey = |from: &str, to: &str| {
            conn.execute(
                "UPDATE memories SET content_hash = ?2 WHERE content_hash = ?1",
                [from, to],
            )
            .unwrap();
        };
        rekey(a.content_hash().as_str(), wrong_a.as_str());
        rekey(b.content_hash().as_str(), wrong_b.as_str());
        drop(conn);
        store
            .store(
                Memory::new(b.content())
                    .unwrap()
                    .with_tags(Tags::parse("again").unwrap()),
            )
            .await
            .unwrap();
        let found = store.check().await.unwrap();
        assert_eq!(
            kinds(&found),
            sorted(vec![
                (IssueKind::HashMismatch, wrong_a.to_string()),
                (IssueKind::HashMismatch, wrong_b.to_string()),
            ])
        );
        assert!(
            found.issues[0].detail.contains("repair"),
            "{}",
            found.issues[0].detail
        );

        let repaired = store.repair().await.unwrap();
        assert!(repaired.is_consistent(), "{repaired:?}");
        assert_eq!(repaired.fixed, 2, "{:?}", repaired.actions);
        // `a` is found under the hash of its content, and storing it again is a duplicate.
        let got = store.get_by_hash(a.content_hash()).await.unwrap().unwrap();
        assert_eq!(got.content(), a.content());
        assert!(store.get_by_hash(&wrong_a).await.unwrap().is_none());
        assert!(matches!(
            store.store(a.clone()).await,
            Ok(memory_storage::StoreOutcome::Duplicate)
        ));
        // `b` is one memory with the tags of both rows.
        let got = store.get_by_hash(b.content_hash()).await.unwrap().unwrap();
        let mut tags = got.tags.into_vec();
        tags.sort();
        assert_eq!(tags, ["again", "b", "fruit"]);
        assert!(store.get_by_hash(&wrong_b).await.unwrap().is_none());
        assert!(store.get_by_hash(c.content_hash()).await.unwrap().is_some());
        assert_eq!(
            store
                .count(&memory_storage::MemoryFilter::all())
                .await
                .unwrap(),
            3
        );
    }

    #[tokio::test]
    async fn tag_links_that_differ_from_the_column_are_found_and_rebuilt() {
        let (_dir, _embedder, store, [a, b, _c]) = store_with_three().await;
        let conn = raw(store.path());
        let id = |hash: &str| -> i64 {
            conn.query_row(
                "SELECT id FROM memories WHERE content_hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .unwrap()
        };
        let (ida, idb) = (id(a.content_hash().as_str()), id(b.content_hash().as_str()));
        conn.execute(
            "DELETE FROM memory_tags WHERE memory_id = ?1 AND tag = 'fruit'",
            [ida],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO memory_tags (memory_id, tag) VALUES (?1, 'ghost')",
            [idb],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO memory_tags (memory_id, tag) VALUES (999, 'ghost'), (999, 'x')",
            [],
        )
        .unwrap();
        drop(conn);

        let found = store.check().await.unwrap();
        assert_eq!(
            kinds(&found),
            sorted(vec![
                (IssueKind::TagLinksMismatch, a.content_hash().to_string()),
                (IssueKind::TagLinksMismatch, b.content_hash().to_string()),
                (IssueKind::TagLinksMismatch, "row 999".to_owned()),
            ])
        );
        let a_issue = found
            .issues
            .iter()
            .find(|i| i.subject == a.content_hash().as_str())
            .unwrap();
        assert!(
            a_issue.detail.contains("[a, fruit]") && a_issue.detail.contains("links [a]"),
            "{}",
            a_issue.detail
        );
        // What the mismatch does to reads: the tag counts follow the links.
        let ghost = TagCount {
            tag: "ghost".into(),
            count: 1,
        };
        assert!(store.get_all_tags().await.unwrap().contains(&ghost));

        let repaired = store.repair().await.unwrap();
        assert_eq!(repaired.fixed, 3, "{repaired:?}");
        assert_eq!(repaired.actions.len(), 2, "{:?}", repaired.actions);
        assert!(repaired.remaining.is_empty(), "{:?}", repaired.remaining);
        assert!(store.check().await.unwrap().is_consistent());
        let tags = store.get_all_tags().await.unwrap();
        assert!(!tags.iter().any(|t| t.tag == "ghost"), "{tags:?}");
        assert!(
            tags.contains(&TagCount {
                tag: "fruit".into(),
                count: 2
            }),
            "{tags:?}"
        );
        let conn = raw(store.path());
        let orphans: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM memory_tags WHERE memory_id = 999",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[tokio::test]
    async fn an_index_left_behind_by_a_foreign_write_is_found_and_rebuilt() {
        let (_dir, embedder, store, [a, b, c]) = store_with_three().await;
        // Another tool edits the file without advancing meta.seq: this process's index
        // cannot see it.
        let conn = raw(store.path());
        conn.execute(
            "UPDATE memories SET deleted_at = 1 WHERE content_hash = ?1",
            [a.content_hash().as_str()],
        )
        .unwrap();
        conn.execute(
            "UPDATE memories SET embedding = ?1 WHERE content_hash = ?2",
            rusqlite::params![
                crate::codec::encode_embedding(&embedder.vector(c.content())),
                b.content_hash().as_str()
            ],
        )
        .unwrap();
        let a_id: i64 = conn
            .query_row(
                "SELECT id FROM memories WHERE content_hash = ?1",
                [a.content_hash().as_str()],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);

        let found = store.check().await.unwrap();
        assert_eq!(found.memories_checked, 2);
        assert_eq!(
            kinds(&found),
            sorted(vec![
                (IssueKind::IndexMismatch, b.content_hash().to_string()),
                (IssueKind::IndexMismatch, format!("row {a_id}")),
            ])
        );
        let repaired = store.repair().await.unwrap();
        assert_eq!(repaired.fixed, 2);
        assert!(
            repaired.actions[0].contains("vector index"),
            "{:?}",
            repaired.actions
        );
        assert!(repaired.remaining.is_empty(), "{:?}", repaired.remaining);
        assert!(store.check().await.unwrap().is_consistent());
        assert_eq!(store.indexed_vectors(), 2);
        // b now ranks by the vector the file holds.
        let hits = store.retrieve(c.content(), 2).await.unwrap();
        assert!(hits.iter().all(|h| h.relevance_score > 0.99), "{hits:?}");
    }

    #[tokio::test]
    async fn a_damaged_file_is_reported_and_not_repairable() {
        let (_dir, embedder, store, _) = store_with_three().await;
        let path = store.path().to_owned();
        drop(store);
        // Make an index disagree with its table: redefine it behind SQLite's back.
        let conn = raw(&path);
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_master SET sql = 'CREATE INDEX idx_memories_seq ON memories (created_at_us)'
               WHERE name = 'idx_memories_seq';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
        drop(conn);
        let store = SqliteStorage::open(&path, embedder).await.unwrap();
        let found = store.check().await.unwrap();
        assert!(!found.is_consistent());
        assert!(
            found.issues.iter().all(|i| i.kind == IssueKind::Corruption),
            "{found:?}"
        );
        assert!(
            found.issues[0].detail.contains("restore a backup"),
            "{}",
            found.issues[0].detail
        );
        let repaired = store.repair().await.unwrap();
        assert_eq!(repaired.fixed, 0);
        assert!(repaired.actions.is_empty());
        assert_eq!(repaired.remaining, found.issues, "corruption remains");
        assert!(!repaired.is_consistent());
    }

    #[tokio::test]
    async fn get_embeddings_reads_more_hashes_than_one_query_takes() {
        let dir = tempfile::tempdir().unwrap();
        let embedder = WordsEmbedder::new(DIMS);
        let store = SqliteStorage::open(dir.path().join("m.db"), embedder.clone())
            .await
            .unwrap();
        let n = crate::storage::GET_EMBEDDINGS_CHUNK + 20;
        let vector = |i: usize| -> Vec<f32> {
            let mut v = [0.0f32; DIMS];
            v[i % DIMS] = 1.0;
            v[(i / DIMS) % DIMS] += 1.0;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        };
        let memories: Vec<Memory> = (0..n)
            .map(|i| {
                Memory::new(format!("memory number {i}"))
                    .unwrap()
                    .with_embedding(vector(i))
            })
            .collect();
        let hashes: Vec<_> = memories.iter().map(|m| m.content_hash().clone()).collect();
        for r in store.store_batch(memories).await.unwrap() {
            r.unwrap();
        }
        assert_eq!(embedder.calls(), 0, "carried vectors are not embedded");
        let mut asked: Vec<_> = hashes.iter().rev().cloned().collect();
        asked.push(memory_core::ContentHash::of("not stored"));
        let got = store.get_embeddings(&asked).await.unwrap();
        assert_eq!(got.len(), n + 1);
        for (k, v) in got.iter().take(n).enumerate() {
            assert_eq!(
                v.as_deref(),
                Some(vector(n - 1 - k).as_slice()),
                "entry {k}"
            );
        }
        assert_eq!(got[n], None);
    }
}
