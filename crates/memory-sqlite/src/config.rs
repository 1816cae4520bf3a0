//! [`SqliteConfig`]: where the database lives and how its connections behave.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use memory_embed::Embedder;
//! use memory_sqlite::{SqliteConfig, SqliteStorage};
//!
//! async fn open(embedder: Arc<dyn Embedder>) -> memory_storage::StorageResult<SqliteStorage> {
//!     SqliteConfig::new("/tmp/memories.db")
//!         .busy_timeout(Duration::from_secs(10))
//!         .readers(2)
//!         .open(embedder)
//!         .await
//! }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memory_embed::Embedder;
use memory_storage::{StorageError, StorageResult};

use crate::SqliteStorage;

/// How long SQLite itself waits for another connection's lock before reporting busy
/// (<https://www.sqlite.org/c3ref/busy_timeout.html>).
pub(crate) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections kept open for concurrent reads (list, get, the row fetch of a search).
pub(crate) const DEFAULT_READERS: usize = 4;

/// Most read connections one store may keep.
pub(crate) const MAX_READERS: usize = 64;

/// Page cache per connection, in KiB (`PRAGMA cache_size = -N`,
/// <https://www.sqlite.org/pragma.html#pragma_cache_size>).
pub(crate) const DEFAULT_CACHE_KIB: u32 = 16 * 1024;

/// Extra attempts of a write transaction that still met a lock after the busy timeout.
pub(crate) const DEFAULT_WRITE_RETRIES: u32 = 3;

/// Pause before the first extra attempt; each later pause doubles.
pub(crate) const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Options of a [`SqliteStorage`]. Plain data: every field has a named default, and the
/// builder methods only set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file. Missing parent directories are created.
    pub path: PathBuf,
    /// How long one statement waits for a lock held by another connection or process.
    pub busy_timeout: Duration,
    /// Read connections in the pool (`1..=MAX_READERS`).
    pub readers: usize,
    /// Page cache per connection, in KiB.
    pub cache_kib: u32,
    /// Extra attempts of a write transaction refused as busy after `busy_timeout`.
    pub write_retries: u32,
    /// First pause between write attempts; doubles on each retry.
    pub retry_backoff: Duration,
    /// Whether every change is also recorded in the change log (`sync_outbox`) for the
    /// hybrid backend to push (off by default: the embedded store alone pays nothing).
    /// Every process writing to the file must turn it on: a store opened with it off
    /// writes without recording.
    pub change_log: bool,
}

impl SqliteConfig {
    /// Defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            readers: DEFAULT_READERS,
            cache_kib: DEFAULT_CACHE_KIB,
            write_retries: DEFAULT_WRITE_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            change_log: false,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`readers`](Self::readers).
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// Sets [`cache_kib`](Self::cache_kib).
    pub fn cache_kib(mut self, kib: u32) -> Self {
        self.cache_kib = kib;
        self
    }

    /// Sets [`write_retries`](Self::write_retries) and [`retry_backoff`](Self::retry_backoff).
    pub fn write_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.write_retries = retries;
        self.retry_backoff = backoff;
        self
    }

    /// Sets [`change_log`](Self::change_log): with `true`, every write also records its
    /// [`memory_sync::Change`]s in the same transaction, read with
    /// [`SqliteStorage::pending_changes`] and removed with [`SqliteStorage::ack_changes`].
    pub fn change_log(mut self, on: bool) -> Self {
        self.change_log = on;
        self
    }

    /// Checks the options.
    pub fn validate(&self) -> StorageResult<()> {
        if !(1..=MAX_READERS).contains(&self.readers) {
            return Err(StorageError::invalid(
                "readers",
                format!(
                    "{} is outside the allowed range 1..={MAX_READERS}",
                    self.readers
                ),
            ));
        }
        if self.path.as_os_str().is_empty() {
            return Err(StorageError::invalid(
                "path",
                "give the database file's path, e.g. <data dir>/mcp-memory/memories.db",
            ));
        }
        Ok(())
    }

    /// Opens (creating if needed) the database with these options.
    pub async fn open(self, embedder: Arc<dyn Embedder>) -> StorageResult<SqliteStorage> {
        SqliteStorage::open_with(self, embedder).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_readers_are_refused_naming_the_field() {
        let err = SqliteConfig::new("x.db").readers(0).validate().unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::InvalidInput {
                    field: "readers",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_valid() {
        assert!(SqliteConfig::new("x.db").validate().is_ok());
    }
}
