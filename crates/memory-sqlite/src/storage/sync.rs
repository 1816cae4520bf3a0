//! What the hybrid backend's sync engine needs of the local store besides the outbox:
//! applying changes pulled from other devices ([`SqliteStorage::apply_remote`]), handing
//! out merged per-memory states ([`SqliteStorage::replicas`]), listing every known hash
//! for a full diff ([`SqliteStorage::sync_hashes`]), and a little key/value state.
//!
//! A memory's replicated state ([`MemoryState`]) is kept in its row: the fields columns
//! with `sync_fields_hlc`, the liveness (`deleted_at`) with `sync_life_hlc`; for a deleted
//! memory with no row, in `sync_tombstones`. Applying a change merges it with that state by
//! `memory_sync`'s rules and writes the result back, so applying changes in any order, any
//! number of times, leaves every device with the same state.

use std::collections::{HashMap, HashSet};

use memory_core::{ContentHash, Memory};
use memory_storage::{StorageError, StorageResult};
use memory_sync::{Change, Fields, Hlc, Life, MemoryState, Replica, Stamped, SyncedChange};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::write::{Seq, parse_hash, set_tags};
use super::{Inner, SqliteStorage, sql_int};
use crate::codec::{
    MEMORY_COLUMNS, decode_embedding_into, encode_embedding, memory_from_row, unit_vector,
};
use crate::connection::{BACKEND, TxError};
use crate::outbox::{META_DEVICE, META_LAST_HLC, META_PULL_CURSOR, fields_of};
use crate::schema::meta_value;

/// What [`SqliteStorage::apply_remote`] did with a page of pulled changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Changes that changed the local state (a memory inserted, updated, deleted, revived,
    /// or a tombstone recorded).
    pub applied: u64,
    /// Changes that changed nothing: superseded by a later change, or already seen.
    pub ignored: u64,
    /// Memories embedded here because their store came with content but no vector.
    pub embedded: u64,
    /// Memories that are live after the merge, or whose update arrived before any store,
    /// but that this device has no row for and the change brought no content (or vector)
    /// for: nothing was invented. Fetch their replica and apply a store with content.
    pub unresolved: Vec<ContentHash>,
    /// Changes refused as malformed, with why (content that does not hash to the change's
    /// hash, a vector of the wrong size). The rest of the page is still applied.
    pub rejected: Vec<(ContentHash, String)>,
    /// Changes stamped more than [`MAX_DRIFT_MS`](memory_sync::MAX_DRIFT_MS) ahead of this
    /// machine's clock: applied (every device must converge), but the clock did not move
    /// to them.
    pub clock_skewed: u64,
}

/// `meta` keys the store owns, which [`SqliteStorage::set_sync_meta`] refuses.
const OWNED_KEYS: [&str; 3] = [META_DEVICE, META_LAST_HLC, META_PULL_CURSOR];

/// A change checked before the transaction, with what it carries.
enum Item {
    /// Malformed: refused with why.
    Bad(ContentHash, String),
    /// Well-formed. The vector, when present, is unit length and of the store's size.
    Good {
        change: Change,
        content: Option<String>,
        vector: Option<Vec<f32>>,
    },
}

/// What the device holds of one memory.
struct Local {
    /// The row's id and whether it is soft-deleted, when a row holds the hash.
    row: Option<(i64, bool)>,
    /// The replicated state (empty when nothing is known).
    state: MemoryState,
}

impl SqliteStorage {
    /// Applies a page of changes pulled from other devices, in order, in one write
    /// transaction, and records `cursor` as the position reached in the remote log
    /// ([`pull_cursor`](Self::pull_cursor)) in the same transaction.
    ///
    /// Each change is merged with the memory's local state by `memory_sync`'s rules, and
    /// the result written when it differs: a new memory inserted with the change's content
    /// and vector, fields set exactly as the change has them (not "now"), a memory
    /// soft-deleted (its `deleted_at` is the delete stamp's time, so every device keeps
    /// the same deletion time and a purge by age counts from the delete itself), revived,
    /// or a tombstone kept for a memory this device never had. Nothing is recorded in the
    /// outbox: these changes are other devices'. The vector index follows as it does after
    /// local writes. Applying the same page again changes nothing.
    ///
    /// A store with content but no vector is embedded here (counted in
    /// [`ApplyReport::embedded`]); a malformed change is refused in
    /// [`ApplyReport::rejected`] without failing the page. Every stamp moves this device's
    /// clock forward, except one too far ahead of this machine's clock
    /// ([`ApplyReport::clock_skewed`]), which is applied all the same.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] when the store was opened without the change log
    /// ([`SqliteConfig::change_log`](crate::SqliteConfig::change_log)); an embedding or
    /// database error, upon which nothing of the page was applied.
    pub async fn apply_remote(
        &self,
        changes: Vec<SyncedChange>,
        cursor: i64,
    ) -> StorageResult<ApplyReport> {
        let Some(log) = self.inner.log else {
            return Err(StorageError::invalid(
                "change_log",
                "applying changes pulled from other devices needs the change log: open the \
                 store with `SqliteConfig::change_log(true)`",
            ));
        };
        let dims = self.inner.dims.get();
        let mut items: Vec<Item> = changes.into_iter().map(|c| check(c, dims)).collect();
        let embedded = self.embed_missing(&mut items).await?;
        let mut report = self
            .run(move |inner| {
                inner.write("applying pulled changes", |tx| {
                    let mut report = ApplyReport {
                        clock_skewed: log.observe(
                            tx,
                            items.iter().filter_map(|i| match i {
                                Item::Good { change, .. } => Some(change.at()),
                                Item::Bad(..) => None,
                            }),
                        )?,
                        ..ApplyReport::default()
                    };
                    let (mut seq, mut pending) = (Seq::default(), Pending::default());
                    for item in &items {
                        apply_one(tx, item, &mut seq, &mut pending, &mut report)?;
                    }
                    keep_pending(tx, pending, &mut report)?;
                    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                        .execute(params![META_PULL_CURSOR, cursor])?;
                    Ok(report)
                })
            })
            .await?;
        report.embedded = embedded;
        Ok(report)
    }

    /// The position in the remote change log that the last
    /// [`apply_remote`](Self::apply_remote) recorded; 0 when nothing was ever pulled.
    pub async fn pull_cursor(&self) -> StorageResult<i64> {
        self.run(|inner| {
            inner.read("reading the pull cursor", |c| {
                Ok(meta_value::<i64>(c, META_PULL_CURSOR)?.unwrap_or(0))
            })
        })
        .await
    }

    /// This device's merged view of each of `hashes`, in order: the replicated state, with
    /// the content and vector when the memory is live; `None` when nothing is known of it
    /// (no row, no tombstone, or a row written with the change log off and never stamped).
    pub async fn replicas(&self, hashes: &[ContentHash]) -> StorageResult<Vec<Option<Replica>>> {
        let hashes = hashes.to_vec();
        self.run(move |inner| {
            let conn = inner
                .readers
                .get()
                .map_err(|e| inner.db_err("reading replicas", e))?;
            hashes
                .iter()
                .map(|h| replica(&conn, h, inner.dims.get()))
                .collect::<Result<_, TxError>>()
                .map_err(|e| tx_error(inner, "reading replicas", e))
        })
        .await
    }

    /// Every hash this device knows, rows (live or deleted) and tombstones, with whether
    /// the memory is live, ordered by hash: up to `limit` after `after` (from the start
    /// when `None`). For a full content-hash diff against Cloudflare.
    pub async fn sync_hashes(
        &self,
        after: Option<&ContentHash>,
        limit: usize,
    ) -> StorageResult<Vec<(ContentHash, bool)>> {
        let after = after.map(|h| h.as_str().to_owned());
        self.run(move |inner| {
            let rows: Vec<(String, bool)> = inner.read("listing known hashes", |c| {
                // A row and a tombstone of one hash only coexist after a store with the
                // log off; the row then tells whether it is live.
                c.prepare_cached(
                    "SELECT content_hash, MAX(live) FROM ( \
                       SELECT content_hash, deleted_at IS NULL AS live FROM memories \
                       UNION ALL SELECT content_hash, 0 FROM sync_tombstones) \
                     WHERE ?1 IS NULL OR content_hash > ?1 \
                     GROUP BY content_hash ORDER BY content_hash LIMIT ?2",
                )?
                .query_map(params![after, sql_int(limit)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })?;
            rows.into_iter()
                .map(|(h, live)| Ok((parse_hash(&h)?, live)))
                .collect()
        })
        .await
    }

    /// A value the sync engine keeps in this database (`None` when unset).
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] for a key that is not the sync engine's (see
    /// [`set_sync_meta`](Self::set_sync_meta)).
    pub async fn sync_meta(&self, key: &str) -> StorageResult<Option<String>> {
        check_key(key)?;
        let key = key.to_owned();
        self.run(move |inner| inner.read("reading sync state", |c| meta_value(c, &key)))
            .await
    }

    /// Sets (or, with `None`, removes) a value the sync engine keeps in this database, in
    /// its own write transaction.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidInput`] when `key` does not start with `sync_` or is one the
    /// store owns (`sync_device_id`, `sync_last_hlc`, `sync_pull_cursor`).
    pub async fn set_sync_meta(&self, key: &str, value: Option<&str>) -> StorageResult<()> {
        check_key(key)?;
        let key = key.to_owned();
        let value = value.map(str::to_owned);
        self.run(move |inner| {
            inner.write("saving sync state", |tx| {
                match &value {
                    Some(v) => tx
                        .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                        .execute(params![key, v])?,
                    None => tx
                        .prepare_cached("DELETE FROM meta WHERE key = ?1")?
                        .execute([&key])?,
                };
                Ok(())
            })
        })
        .await
    }

    /// Embeds, in one call, the content of each store that comes without a vector for a
    /// memory no local row holds (a row keeps its vector, deleted or not); gives the
    /// vectors to those items and returns how many texts were embedded.
    async fn embed_missing(&self, items: &mut [Item]) -> StorageResult<u64> {
        let candidates: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                Item::Good {
                    change: Change::Store { hash, .. },
                    content: Some(_),
                    vector: None,
                } => Some(hash.as_str().to_owned()),
                _ => None,
            })
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let held: HashSet<String> = self
            .run(move |inner| {
                let list = crate::codec::json_strings(candidates.iter().map(String::as_str));
                inner.read("looking up memories to embed", |c| {
                    c.prepare_cached(
                        "SELECT content_hash FROM memories \
                         WHERE content_hash IN (SELECT value FROM json_each(?1))",
                    )?
                    .query_map([list], |r| r.get(0))?
                    .collect()
                })
            })
            .await?;
        let mut texts: Vec<(ContentHash, String)> = Vec::new();
        for item in items.iter() {
            if let Item::Good {
                change: Change::Store { hash, .. },
                content: Some(content),
                vector: None,
            } = item
                && !held.contains(hash.as_str())
                && !texts.iter().any(|(h, _)| h == hash)
            {
                texts.push((hash.clone(), content.clone()));
            }
        }
        let vectors = self
            .embed(texts.iter().map(|(_, t)| t.clone()).collect())
            .await?;
        let by_hash: HashMap<ContentHash, Vec<f32>> =
            texts.into_iter().map(|(h, _)| h).zip(vectors).collect();
        for item in items.iter_mut() {
            if let Item::Good {
                change: Change::Store { hash, .. },
                vector: vector @ None,
                content: Some(_),
            } = item
            {
                *vector = by_hash.get(hash).cloned();
            }
        }
        Ok(by_hash.len() as u64)
    }
}

/// Refuses keys that are not the sync engine's.
fn check_key(key: &str) -> StorageResult<()> {
    if !key.starts_with("sync_") {
        return Err(StorageError::invalid(
            "key",
            format!("`{key}` is not a sync state key: they start with `sync_`"),
        ));
    }
    if OWNED_KEYS.contains(&key) {
        return Err(StorageError::invalid(
            "key",
            format!("`{key}` is kept by the store itself and cannot be set; use another key"),
        ));
    }
    Ok(())
}

/// Checks what a change carries: the content of a store must hash to the change's hash,
/// and a vector must have the store's size (it is made unit length if it is not).
/// Content or a vector on an update or delete is dropped: only stores carry them.
fn check(synced: SyncedChange, dims: usize) -> Item {
    let SyncedChange {
        change,
        content,
        vector,
    } = synced;
    if !matches!(change, Change::Store { .. }) {
        return Item::Good {
            change,
            content: None,
            vector: None,
        };
    }
    let hash = change.hash().clone();
    if let Some(content) = &content {
        let computed = ContentHash::of(content);
        if computed != hash {
            return Item::Bad(
                hash,
                format!("its content hashes to {computed}, not to the change's hash"),
            );
        }
    }
    let vector = match vector.map(|v| unit_vector(v, dims)).transpose() {
        Ok(v) => v,
        Err(problem) => return Item::Bad(hash, format!("its vector {problem}")),
    };
    Item::Good {
        change,
        content,
        vector,
    }
}

/// The changes of a page that could not be applied yet, per memory, merged: a later change
/// of the same memory in the page is applied together with them (a store without content
/// followed by its delete leaves a tombstone, not an unresolved memory).
#[derive(Default)]
struct Pending(Vec<MemoryState>);

impl Pending {
    fn take(&mut self, hash: &ContentHash) -> Option<MemoryState> {
        let i = self.0.iter().position(|s| s.hash == *hash)?;
        Some(self.0.remove(i))
    }
}

/// Merges one change into the local state and writes the result if it differs.
fn apply_one(
    tx: &Transaction<'_>,
    item: &Item,
    seq: &mut Seq,
    pending: &mut Pending,
    report: &mut ApplyReport,
) -> Result<(), TxError> {
    let (change, content, vector) = match item {
        Item::Bad(hash, why) => {
            report.rejected.push((hash.clone(), why.clone()));
            return Ok(());
        }
        Item::Good {
            change,
            content,
            vector,
        } => (change, content, vector),
    };
    let hash = change.hash();
    let mut incoming = MemoryState::of(change);
    if let Some(earlier) = pending.take(hash) {
        incoming = incoming.merge(earlier);
    }
    let local = load(tx, hash)?;
    let merged = local.state.clone().merge(incoming.clone());
    if merged == local.state {
        report.ignored += 1;
        return Ok(());
    }
    match local.row {
        Some((id, deleted)) => {
            update_row(tx, id, deleted, &local.state, &merged, seq.get(tx)?)?;
            report.applied += 1;
        }
        None => match (&merged.life, &merged.fields) {
            (Some(life), Some(fields)) if life.value == Life::Live => {
                let (Some(content), Some(vector)) = (content, vector) else {
                    // Live elsewhere, but nothing here to build the row from: kept for a
                    // later change of the page, else reported.
                    pending.0.push(incoming);
                    return Ok(());
                };
                insert_row(tx, hash, content, vector, fields, life.at, seq.get(tx)?)?;
                report.applied += 1;
            }
            (Some(life), fields) => {
                // Deleted (a live life always comes with fields, from its store).
                put_tombstone(tx, hash, life.at, fields.as_ref())?;
                report.applied += 1;
            }
            (None, _) => {
                // An update before any store: no liveness to keep it under.
                pending.0.push(incoming);
            }
        },
    }
    Ok(())
}

/// What is left pending at the end of a page. A store that travelled without content is
/// kept as a tombstone at its own stamp: its device pushes the content of live memories
/// only, so it had deleted the memory before pushing, and that Delete (stamped later)
/// follows in the log. Merged with that Delete, or with any later store carrying content,
/// the tombstone gives what the store itself would have given, and its fields are not
/// lost (a dropped store would leave this device with older fields than every other).
/// Anything else (an update of a memory never received) is reported unresolved.
fn keep_pending(
    tx: &Transaction<'_>,
    pending: Pending,
    report: &mut ApplyReport,
) -> Result<(), TxError> {
    for incoming in pending.0 {
        let local = load(tx, &incoming.hash)?;
        let merged = local.state.merge(incoming);
        match (&merged.life, local.row) {
            (Some(life), None) if life.value == Life::Live => {
                put_tombstone(tx, &merged.hash, life.at, merged.fields.as_ref())?;
            }
            _ => report.unresolved.push(merged.hash),
        }
    }
    Ok(())
}

/// Writes the registers of `merged` that differ from `local` to the row `id`.
fn update_row(
    tx: &Transaction<'_>,
    id: i64,
    deleted: bool,
    local: &MemoryState,
    merged: &MemoryState,
    seq: i64,
) -> Result<(), TxError> {
    if merged.fields != local.fields
        && let Some(Stamped { value: f, at }) = &merged.fields
    {
        tx.prepare_cached(
            "UPDATE memories SET tags = ?2, memory_type = ?3, metadata = ?4, \
             created_at = ?5, created_at_iso = ?6, created_at_us = ?7, \
             updated_at = ?8, updated_at_iso = ?9, updated_at_us = ?10, \
             sync_fields_hlc = ?11, seq = ?12 WHERE id = ?1",
        )?
        .execute(params![
            id,
            f.tags.joined(),
            f.memory_type,
            f.metadata.to_json_string(),
            f.created_at.epoch_seconds(),
            f.created_at.to_iso(),
            f.created_at.epoch_micros(),
            f.updated_at.epoch_seconds(),
            f.updated_at.to_iso(),
            f.updated_at.epoch_micros(),
            at.to_string(),
            seq
        ])?;
        set_tags(tx, id, &f.tags)?;
    }
    if merged.life != local.life
        && let Some(Stamped { value, at }) = &merged.life
    {
        let deleted_at = match (value, deleted) {
            (Life::Live, _) => None,
            // Already deleted here: it keeps its deletion time.
            (Life::Deleted, true) => {
                tx.query_row("SELECT deleted_at FROM memories WHERE id = ?1", [id], |r| {
                    r.get::<_, Option<f64>>(0)
                })?
            }
            (Life::Deleted, false) => Some(stamp_seconds(*at)),
        };
        tx.prepare_cached(
            "UPDATE memories SET deleted_at = ?2, sync_life_hlc = ?3, seq = ?4 WHERE id = ?1",
        )?
        .execute(params![id, deleted_at, at.to_string(), seq])?;
    }
    Ok(())
}

/// Inserts a live memory this device had no row for, and drops its tombstone.
fn insert_row(
    tx: &Transaction<'_>,
    hash: &ContentHash,
    content: &str,
    vector: &[f32],
    fields: &Stamped<Fields>,
    life_at: Hlc,
    seq: i64,
) -> Result<(), TxError> {
    let f = &fields.value;
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO memories (content_hash, content, tags, memory_type, metadata, \
             created_at, created_at_iso, created_at_us, updated_at, updated_at_iso, \
             updated_at_us, embedding, seq, sync_fields_hlc, sync_life_hlc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
             RETURNING id",
        )?
        .query_row(
            params![
                hash.as_str(),
                content,
                f.tags.joined(),
                f.memory_type,
                f.metadata.to_json_string(),
                f.created_at.epoch_seconds(),
                f.created_at.to_iso(),
                f.created_at.epoch_micros(),
                f.updated_at.epoch_seconds(),
                f.updated_at.to_iso(),
                f.updated_at.epoch_micros(),
                encode_embedding(vector),
                seq,
                fields.at.to_string(),
                life_at.to_string()
            ],
            |r| r.get(0),
        )?;
    set_tags(tx, id, &f.tags)?;
    tx.prepare_cached("DELETE FROM sync_tombstones WHERE content_hash = ?1")?
        .execute([hash.as_str()])?;
    Ok(())
}

/// Keeps the state of a deleted memory that has no row here.
fn put_tombstone(
    tx: &Transaction<'_>,
    hash: &ContentHash,
    deleted_at: Hlc,
    fields: Option<&Stamped<Fields>>,
) -> Result<(), TxError> {
    let fields_json = fields
        .map(|f| serde_json::to_string(&f.value))
        .transpose()
        .map_err(|e| StorageError::backend(BACKEND, "serialising a tombstone's fields", e))?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO sync_tombstones (content_hash, hlc, fields_hlc, fields_json) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        hash.as_str(),
        deleted_at.to_string(),
        fields.map(|f| f.at.to_string()),
        fields_json
    ])?;
    Ok(())
}

/// A stamp's wall time in epoch seconds (the `deleted_at` of a pulled delete).
fn stamp_seconds(at: Hlc) -> f64 {
    // Exact below 2^53 ms (the year 287,396): a stamp's millis are far smaller.
    #[allow(clippy::cast_precision_loss)]
    let millis = at.millis as f64;
    millis / 1000.0
}

/// The local state of `hash`: from its row, else its tombstone, else empty.
fn load(conn: &Connection, hash: &ContentHash) -> Result<Local, TxError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {MEMORY_COLUMNS}, m.deleted_at IS NOT NULL, m.sync_fields_hlc, \
             m.sync_life_hlc FROM memories m WHERE m.content_hash = ?1"
        ))?
        .query_row([hash.as_str()], |r| {
            let (id, memory) = memory_from_row(r)?;
            Ok((
                id,
                memory,
                r.get::<_, bool>(8)?,
                r.get::<_, Option<String>>(9)?,
                r.get::<_, Option<String>>(10)?,
            ))
        })
        .optional()?;
    if let Some((id, memory, deleted, fields_at, life_at)) = row {
        let state = MemoryState {
            hash: hash.clone(),
            fields: stamped(hash, fields_at.as_deref(), || fields_of(&memory))?,
            life: stamped(hash, life_at.as_deref(), || {
                if deleted { Life::Deleted } else { Life::Live }
            })?,
        };
        return Ok(Local {
            row: Some((id, deleted)),
            state,
        });
    }
    let tomb: Option<(String, Option<String>, Option<String>)> = conn
        .prepare_cached(
            "SELECT hlc, fields_hlc, fields_json FROM sync_tombstones WHERE content_hash = ?1",
        )?
        .query_row([hash.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let mut state = MemoryState {
        hash: hash.clone(),
        fields: None,
        life: None,
    };
    if let Some((life_at, fields_at, fields_json)) = tomb {
        state.life = stamped(hash, Some(&life_at), || Life::Deleted)?;
        if let (Some(at), Some(json)) = (fields_at, fields_json) {
            let fields: Fields = serde_json::from_str(&json).map_err(|e| {
                StorageError::backend(
                    BACKEND,
                    format!(
                        "the tombstone of {hash} holds unreadable fields; delete its \
                         sync_tombstones row and run a full sync"
                    ),
                    e,
                )
            })?;
            state.fields = stamped(hash, Some(&at), || fields)?;
        }
    }
    Ok(Local { row: None, state })
}

/// A stored stamp and its value (`None` when the stamp is unknown).
fn stamped<T>(
    hash: &ContentHash,
    at: Option<&str>,
    value: impl FnOnce() -> T,
) -> Result<Option<Stamped<T>>, TxError> {
    let Some(text) = at else {
        return Ok(None);
    };
    let at = text.parse::<Hlc>().map_err(|e| {
        StorageError::backend(
            BACKEND,
            format!(
                "a stored stamp of {hash} is malformed; the file was changed by another \
                 tool: restore it from a backup or report it"
            ),
            e,
        )
    })?;
    Ok(Some(Stamped { value: value(), at }))
}

/// One memory's replica (see [`SqliteStorage::replicas`]).
fn replica(conn: &Connection, hash: &ContentHash, dims: usize) -> Result<Option<Replica>, TxError> {
    let local = load(conn, hash)?;
    if local.state.fields.is_none() && local.state.life.is_none() {
        return Ok(None);
    }
    let (mut content, mut vector) = (None, None);
    if let Some((id, false)) = local.row {
        let (text, blob): (String, Vec<u8>) = conn
            .prepare_cached("SELECT content, embedding FROM memories WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mut v = Vec::with_capacity(dims);
        match decode_embedding_into(&blob, dims, &mut v) {
            Ok(()) => vector = Some(v),
            Err(bytes) => tracing::warn!(
                %hash,
                bytes,
                "not handing out an unusable embedding; run `mcp-memory repair`"
            ),
        }
        content = Some(text);
    }
    Ok(Some(Replica {
        state: local.state,
        content,
        vector,
    }))
}

/// A read's [`TxError`] as a [`StorageError`].
fn tx_error(inner: &Inner, action: &str, e: TxError) -> StorageError {
    match e {
        TxError::Db(e) => inner.db_err(action, e),
        TxError::Storage(e) => e,
    }
}

/// Keeps the replicated state of a tombstone row about to be purged in
/// `sync_tombstones`: its delete stamp and its fields when stamped. A row never stamped
/// (deleted with the log off) leaves nothing.
pub(super) fn keep_purged(
    tx: &Transaction<'_>,
    memory: &Memory,
    fields_at: Option<&str>,
    life_at: Option<&str>,
) -> Result<(), TxError> {
    let hash = memory.content_hash();
    if let Some(life) = stamped(hash, life_at, || ())? {
        let fields = stamped(hash, fields_at, || fields_of(memory))?;
        put_tombstone(tx, hash, life.at, fields.as_ref())?;
    }
    Ok(())
}
