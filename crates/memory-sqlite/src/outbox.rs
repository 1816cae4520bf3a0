//! The change log ("outbox") of the hybrid backend: every local change, as a
//! [`memory_sync::Change`], written to `sync_outbox` in the same transaction as the change
//! itself, so a crash or `kill -9` can never keep one without the other.
//!
//! Off by default ([`SqliteConfig::change_log`](crate::SqliteConfig::change_log)): the
//! embedded backend alone never reads or writes the table.
//!
//! * The database's device id is created once, the first time a store opens the file with
//!   the log on, and kept in `meta` (`sync_device_id`).
//! * The last stamp given out is kept in `meta` (`sync_last_hlc`) and updated in the same
//!   transaction as the rows it stamps, so it survives restarts and acks.
//! * Each row holds the change as JSON; `seq` orders the rows in commit order, which is the
//!   order a sync engine pushes them. A seq is never reused: rows are numbered above the
//!   greatest seq ever acked (`meta.sync_outbox_floor`), not with AUTOINCREMENT, whose
//!   `sqlite_sequence` update cost every local write one more page.
//! * [`SqliteStorage::ack_changes`](crate::SqliteStorage::ack_changes) deletes the rows up
//!   to a seq once they are pushed; acking again is a no-op.
//! * Purging tombstones does not touch the outbox: a Delete not yet pushed must still
//!   reach the other devices after the local row is gone.
//! * Recording a change also stamps the memory's row (schema version 3): a Store sets
//!   `sync_fields_hlc` and `sync_life_hlc` and removes any `sync_tombstones` row of the
//!   hash (the store is newer than it), an Update sets `sync_fields_hlc`, a Delete sets
//!   `sync_life_hlc`, or, when no row holds the hash (a re-keyed memory's old hash), keeps
//!   the stamp in `sync_tombstones`. Together they are the memory's replicated state, which
//!   changes pulled from other devices are merged with (`storage::sync`).
//! * A file written with the log off has live memories without stamps: the first open
//!   with the log on stamps each and records a Store of it ([`seed`]), so they get pushed.
//! * Changes pulled from other devices are never recorded (they are not this device's);
//!   their stamps move the clock forward ([`ChangeLog::observe`]), so a local change made
//!   after seeing them orders after them.

use std::time::{SystemTime, UNIX_EPOCH};

use memory_core::{ContentHash, Memory};
use memory_storage::StorageError;
use memory_sync::{Change, DeviceId, Fields, Hlc, HybridClock};
use rusqlite::{Connection, Transaction, params};

use crate::codec::{MEMORY_COLUMNS, memory_from_row};
use crate::connection::{BACKEND, TxError};
use crate::schema::meta_value;

/// `meta` key of this database's device id (32 hexadecimal digits).
pub(crate) const META_DEVICE: &str = "sync_device_id";
/// `meta` key of the last stamp given to a change (`Hlc` text form).
pub(crate) const META_LAST_HLC: &str = "sync_last_hlc";
/// `meta` key of the greatest outbox seq ever acked: new rows are numbered above it.
pub(crate) const META_OUTBOX_FLOOR: &str = "sync_outbox_floor";
/// `meta` key of the sync engine's position in the remote change log.
pub(crate) const META_PULL_CURSOR: &str = "sync_pull_cursor";

/// One pending change of the outbox, as [`SqliteStorage::pending_changes`](crate::SqliteStorage::pending_changes)
/// returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Position in the outbox: increasing in commit order, never reused. Pass the last one
    /// pushed to [`ack_changes`](crate::SqliteStorage::ack_changes).
    pub seq: u64,
    /// The change, stamped by this database's device.
    pub change: Change,
}

/// What an outbox row that cannot be read back is missing. The row stays; the error says
/// to report it, since only this crate writes the table.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// `change_json` is not a [`Change`].
    #[error(
        "outbox row {seq} does not hold a readable change ({source}); the file was changed \
         by another tool or a newer build: report it, or ack past this row to drop it"
    )]
    Unreadable {
        /// The row's seq.
        seq: i64,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The stored device id or last stamp is malformed.
    #[error(
        "the change log's `{key}` in the meta table is malformed ({source}); restore the \
         file from a backup or report it"
    )]
    BadMeta {
        /// The `meta` key.
        key: &'static str,
        /// The parse error.
        source: memory_sync::ClockError,
    },
    /// More than 2^32 changes in one millisecond.
    #[error("could not stamp a change ({0}); retry the write")]
    Clock(memory_sync::ClockError),
}

impl From<OutboxError> for TxError {
    fn from(e: OutboxError) -> Self {
        Self::Storage(e.into())
    }
}

impl From<OutboxError> for StorageError {
    fn from(e: OutboxError) -> Self {
        StorageError::backend(BACKEND, "the change log (sync_outbox)", e)
    }
}

/// The change log of an open store with the log on: which device stamps its changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChangeLog {
    device: DeviceId,
}

impl ChangeLog {
    /// Reads this database's device id, creating it in the current transaction the first
    /// time. Two processes opening a new file at once both run this under the write
    /// lock, so the second reads the first's id instead of inventing its own.
    pub(crate) fn open(tx: &Transaction<'_>) -> Result<Self, TxError> {
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![META_DEVICE, DeviceId::random().to_string()],
        )?;
        let text: String = meta_value(tx, META_DEVICE)?.unwrap_or_default();
        let device = text.parse().map_err(|source| OutboxError::BadMeta {
            key: META_DEVICE,
            source,
        })?;
        Ok(Self { device })
    }

    /// The device id stamped on every change of this database.
    pub(crate) fn device(self) -> DeviceId {
        self.device
    }

    /// Starts recording the changes of one write transaction.
    ///
    /// The clock is rebuilt from the last stamp in `meta` inside the transaction rather
    /// than kept in memory: another process sharing the file (same device id) may have
    /// stamped changes since, and the write lock we hold makes the stored stamp exact.
    /// `HybridClock::new` (not `observe`) restores it, so a local wall clock that went back
    /// more than a day still gets stamps after the stored one instead of failing writes.
    pub(crate) fn recorder<'t>(self, tx: &'t Transaction<'t>) -> Result<Recorder<'t>, TxError> {
        Ok(Recorder {
            tx,
            clock: HybridClock::new(self.device, last_stamp(tx)?),
        })
    }

    /// Takes in the stamps of changes pulled from other devices, in the current write
    /// transaction, so that every later local stamp orders after them; returns how many
    /// were refused as too far ahead of this machine's clock. A refused stamp only leaves
    /// the clock alone: its change is still applied, or devices would not converge.
    pub(crate) fn observe(
        self,
        tx: &Transaction<'_>,
        stamps: impl IntoIterator<Item = Hlc>,
    ) -> Result<u64, TxError> {
        let last = last_stamp(tx)?;
        let clock = HybridClock::new(self.device, last);
        let now = now_ms();
        let mut greatest = last.map(|h| (h.millis, h.counter));
        let mut skewed = 0;
        for stamp in stamps {
            match clock.observe(stamp, now) {
                Ok(()) => greatest = greatest.max(Some((stamp.millis, stamp.counter))),
                Err(e) => {
                    tracing::warn!(error = %e, "not moving the clock to a pulled stamp");
                    skewed += 1;
                }
            }
        }
        // `HybridClock::new` restores only millis and counter, so the greatest pair seen
        // is all the next transaction needs; stored under this device, as every stamp is.
        if let Some((millis, counter)) = greatest
            && greatest > last.map(|h| (h.millis, h.counter))
        {
            let stamp = Hlc {
                millis,
                counter,
                device: self.device,
            };
            tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                .execute(params![META_LAST_HLC, stamp.to_string()])?;
        }
        Ok(skewed)
    }
}

/// The last stamp given out or seen, as kept in `meta`.
fn last_stamp(tx: &Transaction<'_>) -> Result<Option<Hlc>, TxError> {
    Ok(meta_value::<String>(tx, META_LAST_HLC)?
        .map(|t| t.parse::<Hlc>())
        .transpose()
        .map_err(|source| OutboxError::BadMeta {
            key: META_LAST_HLC,
            source,
        })?)
}

/// Stamps every live memory that has no stamp yet (written with the log off) and records
/// a Store of it, in the open's transaction; returns how many. A second open finds none.
pub(crate) fn seed(tx: &Transaction<'_>, log: ChangeLog) -> Result<usize, TxError> {
    let unstamped: Vec<Memory> = tx
        .prepare(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories m WHERE m.deleted_at IS NULL \
             AND (m.sync_fields_hlc IS NULL OR m.sync_life_hlc IS NULL) ORDER BY m.id"
        ))?
        .query_map([], |r| memory_from_row(r).map(|(_, m)| m))?
        .collect::<rusqlite::Result<_>>()?;
    if unstamped.is_empty() {
        return Ok(0);
    }
    let rec = log.recorder(tx)?;
    for memory in &unstamped {
        rec.store(memory)?;
    }
    Ok(unstamped.len())
}

/// Records changes in one write transaction; see [`ChangeLog::recorder`].
pub(crate) struct Recorder<'t> {
    tx: &'t Transaction<'t>,
    clock: HybridClock,
}

impl Recorder<'_> {
    /// The next stamp of this transaction's clock (for a write that puts the stamp in its
    /// own row statement, then records the change with [`store_at`](Self::store_at)).
    pub(crate) fn tick(&self) -> Result<Hlc, TxError> {
        Ok(self.clock.tick(now_ms()).map_err(OutboxError::Clock)?)
    }

    /// Stamps a change and writes it to the outbox, and the stamp to `meta`.
    pub(crate) fn record(&self, make: impl FnOnce(Hlc) -> Change) -> Result<(), TxError> {
        let at = self.tick()?;
        let change = make(at);
        let stamp = at.to_string();
        stamp_row(self.tx, &change, &stamp)?;
        self.write(&change, &stamp)
    }

    /// Writes a stamped change to the outbox, and its stamp to `meta`.
    fn write(&self, change: &Change, stamp: &str) -> Result<(), TxError> {
        let kind = match change {
            Change::Store { .. } => "store",
            Change::Update { .. } => "update",
            Change::Delete { .. } => "delete",
        };
        let json = serde_json::to_string(change).map_err(|e| {
            StorageError::backend(BACKEND, "serialising a change for the outbox", e)
        })?;
        // Numbered above the rows left and above every seq ever acked (`ack`), so a seq is
        // never reused even once the outbox was emptied: a sync engine that pushed up to
        // seq n must never see a new row <= n. Both lookups are one B-tree seek.
        self.tx
            .prepare_cached(
                "INSERT INTO sync_outbox (seq, hlc, content_hash, kind, change_json) \
                 VALUES (max(coalesce((SELECT max(seq) FROM sync_outbox), 0), \
                 coalesce((SELECT value FROM meta WHERE key = ?5), 0)) + 1, ?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                stamp,
                change.hash().as_str(),
                kind,
                json,
                META_OUTBOX_FLOOR
            ])?;
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(params![META_LAST_HLC, stamp])?;
        Ok(())
    }

    /// Records a Store of `memory` (new or revived).
    pub(crate) fn store(&self, memory: &Memory) -> Result<(), TxError> {
        self.record(|at| Change::Store {
            hash: memory.content_hash().clone(),
            fields: fields_of(memory),
            at,
        })
    }

    /// Records a Store of `memory` stamped `at` (from [`tick`](Self::tick)) whose row the
    /// caller already wrote with both stamp columns set to `at`: saves the row's second
    /// write, the one extra cost a store pays for the change log that is not the log row.
    pub(crate) fn store_at(&self, memory: &Memory, at: Hlc) -> Result<(), TxError> {
        let hash = memory.content_hash();
        self.tx
            .prepare_cached("DELETE FROM sync_tombstones WHERE content_hash = ?1")?
            .execute([hash.as_str()])?;
        let change = Change::Store {
            hash: hash.clone(),
            fields: fields_of(memory),
            at,
        };
        self.write(&change, &at.to_string())
    }

    /// Records an Update of `memory` with its fields as they are now.
    pub(crate) fn update(&self, memory: &Memory) -> Result<(), TxError> {
        self.record(|at| Change::Update {
            hash: memory.content_hash().clone(),
            fields: fields_of(memory),
            at,
        })
    }

    /// Records a Delete of `hash`.
    pub(crate) fn delete(&self, hash: &ContentHash) -> Result<(), TxError> {
        self.record(|at| Change::Delete {
            hash: hash.clone(),
            at,
        })
    }
}

/// Sets the stamp columns a local change sets (see the module docs).
fn stamp_row(tx: &Transaction<'_>, change: &Change, stamp: &str) -> rusqlite::Result<()> {
    let hash = change.hash().as_str();
    match change {
        Change::Store { .. } => {
            tx.prepare_cached(
                "UPDATE memories SET sync_fields_hlc = ?1, sync_life_hlc = ?1 \
                 WHERE content_hash = ?2",
            )?
            .execute(params![stamp, hash])?;
            tx.prepare_cached("DELETE FROM sync_tombstones WHERE content_hash = ?1")?
                .execute([hash])?;
        }
        Change::Update { .. } => {
            tx.prepare_cached("UPDATE memories SET sync_fields_hlc = ?1 WHERE content_hash = ?2")?
                .execute(params![stamp, hash])?;
        }
        Change::Delete { .. } => {
            let rows = tx
                .prepare_cached("UPDATE memories SET sync_life_hlc = ?1 WHERE content_hash = ?2")?
                .execute(params![stamp, hash])?;
            if rows == 0 {
                tx.prepare_cached(
                    "INSERT INTO sync_tombstones (content_hash, hlc) VALUES (?1, ?2) \
                     ON CONFLICT (content_hash) DO UPDATE SET hlc = excluded.hlc",
                )?
                .execute(params![hash, stamp])?;
            }
        }
    }
    Ok(())
}

/// The replicated fields of a memory.
pub(crate) fn fields_of(memory: &Memory) -> Fields {
    Fields {
        tags: memory.tags.clone(),
        memory_type: memory.memory_type.clone(),
        metadata: memory.metadata.clone(),
        created_at: memory.created_at,
        updated_at: memory.updated_at,
    }
}

/// Milliseconds since the Unix epoch (0 for a clock before 1970: the HLC then keeps
/// counting from the last stamp).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Up to `limit` outbox rows with a seq greater than `after`, in seq order, undecoded.
pub(crate) fn pending_rows(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, String)>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "SELECT seq, change_json FROM sync_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?
    .query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// Decodes rows read by [`pending_rows`].
pub(crate) fn decode(rows: Vec<(i64, String)>) -> Result<Vec<OutboxEntry>, OutboxError> {
    rows.into_iter()
        .map(|(seq, json)| {
            let change = serde_json::from_str(&json)
                .map_err(|source| OutboxError::Unreadable { seq, source })?;
            Ok(OutboxEntry {
                seq: u64::try_from(seq).unwrap_or(0),
                change,
            })
        })
        .collect()
}

/// Deletes the outbox rows with a seq up to `up_to`; returns how many went.
///
/// The greatest seq removed becomes the floor new rows are numbered above (see
/// [`Recorder`]'s insert), so no later row can take a seq already pushed.
pub(crate) fn ack(tx: &Transaction<'_>, up_to: u64) -> rusqlite::Result<u64> {
    let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
    let removed: Option<i64> = tx
        .prepare_cached("SELECT max(seq) FROM sync_outbox WHERE seq <= ?1")?
        .query_row([up_to], |r| r.get(0))?;
    let Some(greatest) = removed else {
        return Ok(0);
    };
    let n = tx
        .prepare_cached("DELETE FROM sync_outbox WHERE seq <= ?1")?
        .execute([up_to])?;
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![META_OUTBOX_FLOOR, greatest])?;
    Ok(n as u64)
}
