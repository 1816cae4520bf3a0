//! Persistence of Vectorize indexes in SQLite (`<data_dir>/vectorize/vectorize.sqlite`):
//! indexes, visible vectors (values as little-endian float32 blobs) and pending mutations.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use super::filter::Indexed;
use super::index::{Index, IndexType, Metric, NewVector, Pending, Stored};

/// The SQLite store.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
}

fn blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn floats(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Store {
    /// Opens (creating) the store under `dir`.
    ///
    /// # Errors
    ///
    /// If the file cannot be opened or its schema created.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let conn = Connection::open(dir.join("vectorize.sqlite"))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS indexes (
                 account TEXT NOT NULL, name TEXT NOT NULL, description TEXT,
                 dimensions INTEGER NOT NULL, metric TEXT NOT NULL,
                 created_us INTEGER NOT NULL, modified_us INTEGER NOT NULL,
                 metadata_indexes TEXT NOT NULL, processed_mutation TEXT, processed_us INTEGER,
                 PRIMARY KEY (account, name));
             CREATE TABLE IF NOT EXISTS vectors (
                 account TEXT NOT NULL, idx TEXT NOT NULL, id TEXT NOT NULL,
                 vals BLOB NOT NULL, metadata TEXT, namespace TEXT, indexed TEXT NOT NULL,
                 PRIMARY KEY (account, idx, id));
             CREATE TABLE IF NOT EXISTS pending (
                 account TEXT NOT NULL, idx TEXT NOT NULL, seq INTEGER NOT NULL,
                 body TEXT NOT NULL, PRIMARY KEY (account, idx, seq));",
        )?;
        Ok(Self { conn })
    }

    /// Runs `f` in a transaction.
    ///
    /// # Errors
    ///
    /// Whatever `f` or SQLite returns.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let tx = self.conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Writes an index's own row (not its vectors).
    ///
    /// # Errors
    ///
    /// SQLite errors.
    pub(crate) fn save_index(
        conn: &Connection,
        account: &str,
        index: &Index,
    ) -> anyhow::Result<()> {
        let metadata_indexes: Vec<(&str, &str)> = index
            .metadata_indexes
            .iter()
            .map(|(p, t)| (p.as_str(), t.name()))
            .collect();
        conn.execute(
            "INSERT OR REPLACE INTO indexes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                account,
                index.name,
                index.description,
                i64::try_from(index.dimensions)?,
                index.metric.name(),
                i64::try_from(index.created_us)?,
                i64::try_from(index.modified_us)?,
                serde_json::to_string(&metadata_indexes)?,
                index.processed_mutation,
                index.processed_us.map(i64::try_from).transpose()?,
            ],
        )?;
        Ok(())
    }

    /// Deletes an index with its vectors and pending mutations.
    ///
    /// # Errors
    ///
    /// SQLite errors.
    pub(crate) fn delete_index(conn: &Connection, account: &str, name: &str) -> anyhow::Result<()> {
        for table in ["indexes", "vectors", "pending"] {
            let column = if table == "indexes" { "name" } else { "idx" };
            conn.execute(
                &format!("DELETE FROM {table} WHERE account = ?1 AND {column} = ?2"),
                params![account, name],
            )?;
        }
        Ok(())
    }

    /// Writes a vector.
    ///
    /// # Errors
    ///
    /// SQLite errors.
    pub(crate) fn put_vector(
        conn: &Connection,
        account: &str,
        index: &str,
        stored: &Stored,
    ) -> anyhow::Result<()> {
        let mut stmt = conn
            .prepare_cached("INSERT OR REPLACE INTO vectors VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
        stmt.execute(params![
            account,
            index,
            stored.vector.id,
            blob(&stored.vector.values),
            stored
                .vector
                .metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            stored.vector.namespace,
            serde_json::to_string(&stored.indexed)?,
        ])?;
        Ok(())
    }

    /// Deletes a vector.
    ///
    /// # Errors
    ///
    /// SQLite errors.
    pub(crate) fn delete_vector(
        conn: &Connection,
        account: &str,
        index: &str,
        id: &str,
    ) -> anyhow::Result<()> {
        let mut stmt =
            conn.prepare_cached("DELETE FROM vectors WHERE account = ?1 AND idx = ?2 AND id = ?3")?;
        stmt.execute(params![account, index, id])?;
        Ok(())
    }

    /// Records an accepted mutation.
    ///
    /// # Errors
    ///
    /// SQLite errors.
    pub(crate) fn push_pending(
        conn: &Connection,
        account: &str,
        index: &str,
        pending: &Pending,
    ) -> anyhow::Result<()> {
        let seq: Option<i64> = conn
            .query_row(
                "SELECT MAX(seq) FROM pending WHERE account = ?1 AND idx = ?2",
                params![account, index],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        conn.execute(
            "INSERT INTO pending VALUES (?1, ?2, ?3, ?4)",
            params![
                account,
                index,
                seq.unwrap_or(0) + 1,
                serde_json::to_string(pending)?
            ],
        )?;
        Ok(())
    }

    /// Forgets the oldest `n` pending mutations of an index.
    ///
    /// # Errors
    ///
    /// SQLite errors.
    pub(crate) fn pop_pending(
        conn: &Connection,
        account: &str,
        index: &str,
        n: usize,
    ) -> anyhow::Result<()> {
        conn.execute(
            "DELETE FROM pending WHERE account = ?1 AND idx = ?2 AND seq IN
             (SELECT seq FROM pending WHERE account = ?1 AND idx = ?2 ORDER BY seq LIMIT ?3)",
            params![account, index, i64::try_from(n)?],
        )?;
        Ok(())
    }

    /// Loads every index, keyed by (account, name).
    ///
    /// # Errors
    ///
    /// SQLite or decoding errors.
    pub(crate) fn load(&self) -> anyhow::Result<HashMap<(String, String), Index>> {
        let mut out = HashMap::new();
        let mut stmt = self.conn.prepare("SELECT * FROM indexes")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<i64>>(9)?,
            ))
        })?;
        for row in rows {
            let (account, name, description, dims, metric, created, modified, mi, pm, pu) = row?;
            let metric = Metric::parse(&metric).context("stored metric")?;
            let mut index = Index::new(
                name.clone(),
                description,
                usize::try_from(dims)?,
                metric,
                u64::try_from(created)?,
            );
            index.modified_us = u64::try_from(modified)?;
            let mi: Vec<(String, String)> = serde_json::from_str(&mi)?;
            index.metadata_indexes = mi
                .into_iter()
                .filter_map(|(p, t)| IndexType::parse(&t).map(|t| (p, t)))
                .collect();
            index.processed_mutation = pm;
            index.processed_us = pu.map(u64::try_from).transpose()?;
            out.insert((account, name), index);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT account, idx, id, vals, metadata, namespace, indexed FROM vectors")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        for row in rows {
            let (account, idx, id, vals, metadata, namespace, indexed) = row?;
            let Some(index) = out.get_mut(&(account, idx)) else {
                continue;
            };
            let vector = NewVector {
                id,
                values: floats(&vals),
                metadata: metadata.map(|m| serde_json::from_str(&m)).transpose()?,
                namespace,
            };
            let indexed: HashMap<String, Indexed> = serde_json::from_str(&indexed)?;
            let mut stored = index.store(vector);
            stored.indexed = indexed;
            index.put(stored);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT account, idx, body FROM pending ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (account, idx, body) = row?;
            if let Some(index) = out.get_mut(&(account, idx)) {
                let pending: Pending = serde_json::from_str(&body)?;
                index.pending.push_back(pending);
            }
        }
        Ok(out)
    }
}
