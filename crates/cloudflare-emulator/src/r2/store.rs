//! Where objects live: one SQLite database per bucket, in memory or in a file under
//! `data_dir/r2/<account>/<jurisdiction>/<bucket>/objects.sqlite3`.
//!
//! Keys are stored as BLOBs of their UTF-8 bytes, so SQLite's ordering (memcmp) is R2's
//! lexicographic key order and a prefix is the byte range `[prefix, successor(prefix))`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

/// Which bucket: buckets are per account and per jurisdiction, as in R2.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BucketId {
    /// The account id of the path.
    pub account: String,
    /// `default`, `eu` or `fedramp` (the `cf-r2-jurisdiction` header).
    pub jurisdiction: &'static str,
    /// The bucket name (already validated).
    pub name: String,
}

/// An object's description (everything but the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectMeta {
    /// The key.
    pub key: String,
    /// Body length in bytes.
    pub size: i64,
    /// Hex MD5 of the body.
    pub etag: String,
    /// Upload time, ms since the epoch.
    pub uploaded_ms: i64,
    /// The `Content-Type` it was uploaded with, if any.
    pub content_type: Option<String>,
    /// `Standard` or `InfrequentAccess`.
    pub storage_class: String,
    /// The version UUID of this upload.
    pub version: String,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS objects (
    key BLOB PRIMARY KEY,
    body BLOB NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    uploaded_ms INTEGER NOT NULL,
    content_type TEXT,
    storage_class TEXT NOT NULL,
    version TEXT NOT NULL
) WITHOUT ROWID";

const META_COLUMNS: &str = "key, size, etag, uploaded_ms, content_type, storage_class, version";

/// One bucket's database.
#[derive(Debug)]
pub(crate) struct Bucket {
    conn: Mutex<Connection>,
}

fn meta_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectMeta> {
    let key: Vec<u8> = row.get(0)?;
    Ok(ObjectMeta {
        key: String::from_utf8_lossy(&key).into_owned(),
        size: row.get(1)?,
        etag: row.get(2)?,
        uploaded_ms: row.get(3)?,
        content_type: row.get(4)?,
        storage_class: row.get(5)?,
        version: row.get(6)?,
    })
}

/// The smallest byte string greater than every string starting with `prefix`; `None`
/// when there is none (`prefix` empty or all `0xFF`).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// A lower bound of a key scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// Keys `>=` these bytes.
    Including(Vec<u8>),
    /// Keys `>` these bytes.
    After(Vec<u8>),
}

impl Bucket {
    fn open(conn: Connection) -> rusqlite::Result<Self> {
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores an object, replacing any with the same key.
    pub(crate) fn put(&self, meta: &ObjectMeta, body: &[u8]) -> rusqlite::Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO objects
             (key, body, size, etag, uploaded_ms, content_type, storage_class, version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                meta.key.as_bytes(),
                body,
                meta.size,
                meta.etag,
                meta.uploaded_ms,
                meta.content_type,
                meta.storage_class,
                meta.version
            ],
        )?;
        Ok(())
    }

    /// An object's description.
    #[cfg(test)]
    pub(crate) fn head(&self, key: &str) -> rusqlite::Result<Option<ObjectMeta>> {
        self.conn()
            .query_row(
                &format!("SELECT {META_COLUMNS} FROM objects WHERE key = ?1"),
                [key.as_bytes()],
                meta_of,
            )
            .optional()
    }

    /// An object's description and body, read together.
    pub(crate) fn get(&self, key: &str) -> rusqlite::Result<Option<(ObjectMeta, Vec<u8>)>> {
        self.conn()
            .query_row(
                &format!("SELECT {META_COLUMNS}, body FROM objects WHERE key = ?1"),
                [key.as_bytes()],
                |row| Ok((meta_of(row)?, row.get(7)?)),
            )
            .optional()
    }

    /// An object's body.
    #[cfg(test)]
    pub(crate) fn body(&self, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn()
            .query_row(
                "SELECT body FROM objects WHERE key = ?1",
                [key.as_bytes()],
                |row| row.get(0),
            )
            .optional()
    }

    /// Deletes an object; whether it existed.
    pub(crate) fn delete(&self, key: &str) -> rusqlite::Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM objects WHERE key = ?1", [key.as_bytes()])?
            > 0)
    }

    /// Deletes every object whose key starts with `prefix`; how many.
    pub(crate) fn delete_prefix(&self, prefix: &str) -> rusqlite::Result<usize> {
        let conn = self.conn();
        match successor(prefix.as_bytes()) {
            Some(end) => conn.execute(
                "DELETE FROM objects WHERE key >= ?1 AND key < ?2",
                params![prefix.as_bytes(), end],
            ),
            None => conn.execute(
                "DELETE FROM objects WHERE key >= ?1",
                params![prefix.as_bytes()],
            ),
        }
    }

    /// The first object at or after `from` whose key is below `end` (if given).
    pub(crate) fn first(
        &self,
        from: &Start,
        end: Option<&[u8]>,
    ) -> rusqlite::Result<Option<ObjectMeta>> {
        let (op, bound) = match from {
            Start::Including(b) => (">=", b),
            Start::After(b) => (">", b),
        };
        let conn = self.conn();
        match end {
            Some(end) => conn
                .query_row(
                    &format!(
                        "SELECT {META_COLUMNS} FROM objects WHERE key {op} ?1 AND key < ?2 \
                         ORDER BY key LIMIT 1"
                    ),
                    params![bound, end],
                    meta_of,
                )
                .optional(),
            None => conn
                .query_row(
                    &format!(
                        "SELECT {META_COLUMNS} FROM objects WHERE key {op} ?1 ORDER BY key LIMIT 1"
                    ),
                    params![bound],
                    meta_of,
                )
                .optional(),
        }
    }
}

/// Every bucket opened so far.
#[derive(Debug)]
pub(crate) struct Store {
    root: Option<PathBuf>,
    buckets: Mutex<HashMap<BucketId, Arc<Bucket>>>,
}

impl Store {
    /// Buckets in memory (`root` = `None`) or under `root` (`data_dir/r2`).
    pub(crate) fn new(root: Option<PathBuf>) -> Self {
        Self {
            root,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The bucket `id`, opened (and created) on first use.
    ///
    /// # Errors
    ///
    /// When its directory or database cannot be created or opened.
    pub(crate) fn bucket(&self, id: &BucketId) -> anyhow::Result<Arc<Bucket>> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bucket) = buckets.get(id) {
            return Ok(Arc::clone(bucket));
        }
        let conn = match &self.root {
            None => Connection::open_in_memory()?,
            Some(root) => {
                let dir = root.join(&id.account).join(id.jurisdiction).join(&id.name);
                std::fs::create_dir_all(&dir)?;
                let conn = Connection::open(dir.join("objects.sqlite3"))?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn
            }
        };
        let bucket = Arc::new(Bucket::open(conn)?);
        buckets.insert(id.clone(), Arc::clone(&bucket));
        Ok(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size: 1,
            etag: "e".to_owned(),
            uploaded_ms: 0,
            content_type: None,
            storage_class: "Standard".to_owned(),
            version: "v".to_owned(),
        }
    }

    #[test]
    fn successor_skips_trailing_ff() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }

    #[test]
    fn keys_order_by_utf8_bytes_and_prefix_delete_is_exact() {
        let store = Store::new(None);
        let id = BucketId {
            account: "a".into(),
            jurisdiction: "default",
            name: "bkt".into(),
        };
        let bucket = store.bucket(&id).unwrap();
        for key in ["b", "a/2", "a/1", "é", "a0", "Z"] {
            bucket.put(&meta(key), b"x").unwrap();
        }
        let mut keys = Vec::new();
        let mut from = Start::Including(Vec::new());
        while let Some(m) = bucket.first(&from, None).unwrap() {
            from = Start::After(m.key.as_bytes().to_vec());
            keys.push(m.key);
        }
        assert_eq!(keys, ["Z", "a/1", "a/2", "a0", "b", "é"]);
        assert_eq!(bucket.delete_prefix("a/").unwrap(), 2);
        assert!(bucket.head("a0").unwrap().is_some());
        assert_eq!(bucket.body("b").unwrap().unwrap(), b"x");
        assert!(bucket.delete("b").unwrap());
        assert!(!bucket.delete("b").unwrap());
    }

    #[test]
    fn files_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = BucketId {
            account: "acc".into(),
            jurisdiction: "eu",
            name: "bkt".into(),
        };
        Store::new(Some(dir.path().to_path_buf()))
            .bucket(&id)
            .unwrap()
            .put(&meta("k"), b"body")
            .unwrap();
        let again = Store::new(Some(dir.path().to_path_buf()));
        assert_eq!(
            again.bucket(&id).unwrap().body("k").unwrap().unwrap(),
            b"body"
        );
        assert!(dir.path().join("acc/eu/bkt/objects.sqlite3").is_file());
    }
}
