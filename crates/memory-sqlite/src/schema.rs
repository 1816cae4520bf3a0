//! The schema, its migrations (`PRAGMA user_version`), and the `meta` table: schema
//! version, embedding model and dimensions, and the change counters the vector index
//! follows.
//!
//! # Tables
//! * `memories` — one row per memory, live or soft-deleted (`deleted_at` set). Column names
//!   follow upstream's SQLite backend (`content_hash`, `tags` as a comma-joined copy,
//!   `created_at` REAL seconds plus `created_at_iso`). Two additions: `created_at_us` /
//!   `updated_at_us` hold exact epoch microseconds (REAL seconds cannot round-trip every
//!   microsecond), and `seq` is the change sequence of the last write to the row.
//! * `memory_tags(memory_id, tag)` — one row per tag, indexed by tag, for set-based tag
//!   filters. Unlike upstream's D1 schema there is no separate `tags` table: locally a
//!   join through tag ids buys nothing and would need orphan clean-up.
//! * `meta(key, value)` — `embedding_model`, `embedding_dimensions`, `seq` (incremented by
//!   every write transaction and copied onto the rows it writes) and `purge_epoch`
//!   (incremented when tombstones are purged, i.e. rows vanish without a new `seq`); with
//!   the change log on, also `sync_device_id` and `sync_last_hlc`.
//! * `sync_outbox(seq, hlc, content_hash, kind, change_json)` (version 2; version 4 drops
//!   its AUTOINCREMENT for `meta.sync_outbox_floor`) — the change log of the hybrid
//!   backend, written only when it is on (see the `outbox` module).
//! * Version 3, for applying changes pulled from other devices (also written only with the
//!   log on): `memories.sync_fields_hlc` and `memories.sync_life_hlc`, the stamps (`Hlc` text
//!   form) of the changes that last set the row's fields and its liveness (NULL: unknown, a
//!   row written with the log off); `sync_tombstones(content_hash, hlc, fields_hlc,
//!   fields_json)`, the replicated state of memories deleted with no row here (a delete
//!   pulled for a memory never seen, or a tombstone purged locally), so that a late older
//!   store can never revive a memory deleted everywhere; and `meta.sync_pull_cursor`.

use std::path::Path;

use memory_storage::StorageError;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::connection::{BACKEND, TxError};

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: i64 = 4;

/// `meta` key of the embedding model id.
const META_MODEL: &str = "embedding_model";
/// `meta` key of the embedding dimensions.
const META_DIMS: &str = "embedding_dimensions";
/// `meta` key of the change counter.
pub(crate) const META_SEQ: &str = "seq";
/// `meta` key of the purge counter.
pub(crate) const META_PURGE_EPOCH: &str = "purge_epoch";

/// One migration: statements written so that running them twice is harmless, then columns
/// added to existing tables (SQLite has no `ADD COLUMN IF NOT EXISTS`, so each is added
/// only when `PRAGMA table_info` lacks it).
struct Migration {
    sql: &'static str,
    /// `(table, column, declaration)`.
    columns: &'static [(&'static str, &'static str, &'static str)],
}

impl Migration {
    /// Runs the migration; harmless on a database that already has it.
    fn run(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(self.sql)?;
        for (table, column, decl) in self.columns {
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
                [table, column],
                |r| r.get(0),
            )?;
            if !exists {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
            }
        }
        Ok(())
    }
}

/// Migration `n` (1-based) brings a database from version `n - 1` to `n`. Each is written
/// so that running it twice is harmless.
const MIGRATIONS: &[Migration] = &[
    // 1: the initial schema.
    Migration {
        sql: r#"
    CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value NOT NULL
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0), ('purge_epoch', 0);

    CREATE TABLE IF NOT EXISTS memories (
        id             INTEGER PRIMARY KEY,
        content_hash   TEXT    NOT NULL UNIQUE,
        content        TEXT    NOT NULL,
        tags           TEXT    NOT NULL DEFAULT '',
        memory_type    TEXT,
        metadata       TEXT    NOT NULL DEFAULT '{}',
        created_at     REAL    NOT NULL,
        created_at_iso TEXT    NOT NULL,
        created_at_us  INTEGER NOT NULL,
        updated_at     REAL    NOT NULL,
        updated_at_iso TEXT    NOT NULL,
        updated_at_us  INTEGER NOT NULL,
        deleted_at     REAL,
        embedding      BLOB    NOT NULL,
        seq            INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS idx_memories_live_created
        ON memories (created_at_us, content_hash) WHERE deleted_at IS NULL;
    CREATE INDEX IF NOT EXISTS idx_memories_live_type
        ON memories (memory_type) WHERE deleted_at IS NULL;
    CREATE INDEX IF NOT EXISTS idx_memories_deleted_at
        ON memories (deleted_at) WHERE deleted_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS idx_memories_seq ON memories (seq);

    CREATE TABLE IF NOT EXISTS memory_tags (
        memory_id INTEGER NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
        tag       TEXT    NOT NULL,
        PRIMARY KEY (memory_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS idx_memory_tags_tag ON memory_tags (tag, memory_id);
    "#,
        columns: &[],
    },
    // 2: the change log of the hybrid backend (see `outbox`). Additive: version 1 files
    // gain an empty table; it stays empty unless a store opens with the log on.
    // AUTOINCREMENT so that a seq is never reused, even after the newest rows are acked:
    // a sync engine that remembers "pushed up to seq n" must never see a new row <= n.
    Migration {
        sql: r#"
    CREATE TABLE IF NOT EXISTS sync_outbox (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        hlc          TEXT    NOT NULL,
        content_hash TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        change_json  TEXT    NOT NULL
    );
    "#,
        columns: &[],
    },
    // 3: applying changes pulled from other devices (see `outbox` and `storage::sync`).
    // Additive: the stamp columns start NULL (unknown) and the tombstones empty; a store
    // opening the file with the log on stamps its live memories (`outbox::seed`).
    // `fields_hlc`/`fields_json` keep the fields register of a deleted memory without a
    // row, so a later store older than an update still ends with the update's fields.
    Migration {
        sql: r#"
    CREATE TABLE IF NOT EXISTS sync_tombstones (
        content_hash TEXT PRIMARY KEY NOT NULL,
        hlc          TEXT NOT NULL,
        fields_hlc   TEXT,
        fields_json  TEXT
    ) WITHOUT ROWID;
    "#,
        columns: &[
            ("memories", "sync_fields_hlc", "TEXT"),
            ("memories", "sync_life_hlc", "TEXT"),
        ],
    },
    // 4: the change log without AUTOINCREMENT. AUTOINCREMENT rewrote `sqlite_sequence` on
    // every insert, one more page in the WAL of every local write (about a tenth of what
    // a store writes). A seq is still never reused: `outbox::ack` keeps the greatest seq it
    // removed in `meta` (`sync_outbox_floor`), and new rows are numbered above both it and
    // the rows left. The rows are copied; the floor starts at AUTOINCREMENT's last number.
    // Running it twice copies the rebuilt table once more and keeps the floor.
    Migration {
        sql: r#"
    CREATE TABLE IF NOT EXISTS sync_outbox_v4 (
        seq          INTEGER PRIMARY KEY,
        hlc          TEXT    NOT NULL,
        content_hash TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        change_json  TEXT    NOT NULL
    );
    INSERT INTO sync_outbox_v4 (seq, hlc, content_hash, kind, change_json)
        SELECT seq, hlc, content_hash, kind, change_json FROM sync_outbox;
    INSERT OR REPLACE INTO meta (key, value)
        SELECT 'sync_outbox_floor', seq FROM sqlite_sequence WHERE name = 'sync_outbox';
    DROP TABLE sync_outbox;
    ALTER TABLE sync_outbox_v4 RENAME TO sync_outbox;
    "#,
        columns: &[],
    },
];

/// The version recorded in the file.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Brings the schema to [`SCHEMA_VERSION`]; returns the version found. A file written by
/// a newer build is refused rather than guessed at.
pub(crate) fn migrate(tx: &Transaction<'_>, path: &Path) -> Result<i64, TxError> {
    let found = user_version(tx)?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::backend(
            BACKEND,
            format!(
                "{} has schema version {found}, newer than this build understands \
                 ({SCHEMA_VERSION}); upgrade mcp-memory, or point it at another file",
                path.display()
            ),
            UnknownSchema(found),
        )
        .into());
    }
    for (version, migration) in (1..).zip(MIGRATIONS) {
        if version > found {
            migration.run(tx)?;
            tx.pragma_update(None, "user_version", version)?;
            tracing::info!(path = %path.display(), version, "migrated the memory database");
        }
    }
    Ok(found)
}

/// The error source of a too-new schema.
#[derive(Debug, thiserror::Error)]
#[error("unknown schema version {0}")]
struct UnknownSchema(i64);

/// Records the embedding model in a new (empty) store, or checks that the store was built
/// with the same model and dimensions.
///
/// A store without any row, not even a deleted one, adopts the configured model: nothing
/// in it could be mixed up.
pub(crate) fn check_model(tx: &Transaction<'_>, model: &str, dims: usize) -> Result<(), TxError> {
    let recorded_model: Option<String> = meta_value(tx, META_MODEL)?;
    let recorded_dims: Option<i64> = meta_value(tx, META_DIMS)?;
    let configured_dims = i64::try_from(dims).unwrap_or(i64::MAX);
    if let (Some(m), Some(d)) = (&recorded_model, recorded_dims)
        && m == model
        && d == configured_dims
    {
        return Ok(());
    }
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM memories", [], |r| r.get(0))?;
    if rows > 0
        && let (Some(m), Some(d)) = (recorded_model, recorded_dims)
    {
        return Err(StorageError::ModelMismatch {
            recorded: format!("{m} ({d} dims)"),
            configured: format!("{model} ({dims} dims)"),
        }
        .into());
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2), (?3, ?4)",
        params![META_MODEL, model, META_DIMS, configured_dims],
    )?;
    Ok(())
}

/// A `meta` value, if set.
pub(crate) fn meta_value<T: rusqlite::types::FromSql>(
    conn: &Connection,
    key: &str,
) -> rusqlite::Result<Option<T>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

/// A counter in `meta` (0 when missing).
pub(crate) fn meta_counter(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    Ok(meta_value(conn, key)?.unwrap_or(0))
}

/// Increments a counter in `meta` inside the current transaction and returns the new value.
pub(crate) fn bump_counter(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = ?1 RETURNING value")?
        .query_row([key], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteConfig;
    use crate::connection::{Role, open_connection, write_transaction};

    fn fresh() -> (tempfile::TempDir, SqliteConfig, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SqliteConfig::new(dir.path().join("m.db"));
        let conn = open_connection(&cfg, Role::Writer).unwrap();
        (dir, cfg, conn)
    }

    fn migrate_once(conn: &mut Connection, cfg: &SqliteConfig) -> i64 {
        write_transaction(conn, cfg, "migrating", |tx| migrate(tx, &cfg.path)).unwrap()
    }

    #[test]
    fn migrations_run_once_and_are_idempotent() {
        let (_dir, cfg, mut conn) = fresh();
        assert_eq!(migrate_once(&mut conn, &cfg), 0);
        assert_eq!(migrate_once(&mut conn, &cfg), SCHEMA_VERSION);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        // Running the statements again on a migrated file changes nothing.
        for migration in MIGRATIONS {
            migration.run(&conn).unwrap();
        }
        assert_eq!(meta_counter(&conn, META_SEQ).unwrap(), 0);
    }

    #[test]
    fn a_version_1_file_gains_the_empty_change_log_and_keeps_its_rows() {
        let (_dir, cfg, mut conn) = fresh();
        MIGRATIONS[0].run(&conn).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO memories (content_hash, content, created_at, created_at_iso, created_at_us,
             updated_at, updated_at_iso, updated_at_us, embedding, seq)
             VALUES ('h', 'c', 0, '', 0, 0, '', 0, x'', 1)",
            [],
        )
        .unwrap();
        assert_eq!(migrate_once(&mut conn, &cfg), 1);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let (memories, outbox): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM memories), (SELECT COUNT(*) FROM sync_outbox)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((memories, outbox), (1, 0));
        // Version 3: unknown stamps on the old row, no tombstones.
        let (stamps, tombstones): (Option<String>, i64) = conn
            .query_row(
                "SELECT (SELECT sync_fields_hlc || sync_life_hlc FROM memories), \
                 (SELECT COUNT(*) FROM sync_tombstones)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((stamps, tombstones), (None, 0));
    }

    #[test]
    fn a_version_3_change_log_keeps_its_rows_and_never_reuses_an_acked_seq() {
        let (_dir, cfg, mut conn) = fresh();
        for migration in &MIGRATIONS[..3] {
            migration.run(&conn).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        // AUTOINCREMENT numbered 1..=9; 1..=6 were pushed and acked, 7..=9 wait.
        for n in 1..=9 {
            conn.execute(
                "INSERT INTO sync_outbox (hlc, content_hash, kind, change_json) \
                 VALUES ('s', ?1, 'store', '{}')",
                [format!("h{n}")],
            )
            .unwrap();
        }
        conn.execute("DELETE FROM sync_outbox WHERE seq <= 6", [])
            .unwrap();
        assert_eq!(migrate_once(&mut conn, &cfg), 3);
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT seq, content_hash FROM sync_outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, [(7, "h7".into()), (8, "h8".into()), (9, "h9".into())]);
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'sync_outbox'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
        assert_eq!(
            meta_value::<i64>(&conn, "sync_outbox_floor").unwrap(),
            Some(9)
        );
        // All acked, then the migration again (it must be harmless): the table is empty
        // and the floor stays, so the next row is numbered 10, not 1.
        let acked = write_transaction(&mut conn, &cfg, "acking", |tx| {
            Ok(crate::outbox::ack(tx, 9)?)
        })
        .unwrap();
        assert_eq!(acked, 3);
        MIGRATIONS[3].run(&conn).unwrap();
        assert_eq!(
            meta_value::<i64>(&conn, "sync_outbox_floor").unwrap(),
            Some(9)
        );
    }

    #[test]
    fn a_newer_schema_is_refused_with_advice() {
        let (_dir, cfg, mut conn) = fresh();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = write_transaction(&mut conn, &cfg, "migrating", |tx| migrate(tx, &cfg.path))
            .unwrap_err();
        assert!(err.to_string().contains("upgrade mcp-memory"), "{err}");
    }

    #[test]
    fn counters_increment_within_a_transaction() {
        let (_dir, cfg, mut conn) = fresh();
        migrate_once(&mut conn, &cfg);
        let (a, b) = write_transaction(&mut conn, &cfg, "t", |tx| {
            Ok((bump_counter(tx, META_SEQ)?, bump_counter(tx, META_SEQ)?))
        })
        .unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(meta_counter(&conn, META_SEQ).unwrap(), 2);
    }

    #[test]
    fn model_is_recorded_then_checked() {
        let (_dir, cfg, mut conn) = fresh();
        migrate_once(&mut conn, &cfg);
        let check = |conn: &mut Connection, model: &'static str, dims: usize| {
            write_transaction(conn, &cfg, "checking", |tx| check_model(tx, model, dims))
        };
        check(&mut conn, "m1", 4).unwrap();
        check(&mut conn, "m1", 4).unwrap();
        // Empty store: a new model is adopted.
        check(&mut conn, "m2", 8).unwrap();
        conn.execute(
            "INSERT INTO memories (content_hash, content, created_at, created_at_iso, created_at_us,
             updated_at, updated_at_iso, updated_at_us, embedding, seq)
             VALUES ('h', 'c', 0, '', 0, 0, '', 0, x'', 1)",
            [],
        )
        .unwrap();
        let err = check(&mut conn, "m2", 16).unwrap_err();
        match err {
            StorageError::ModelMismatch {
                recorded,
                configured,
            } => {
                assert_eq!(recorded, "m2 (8 dims)");
                assert_eq!(configured, "m2 (16 dims)");
            }
            other => panic!("expected ModelMismatch, got {other}"),
        }
    }
}
