//! The hybrid backend: every read and write served by the local SQLite store, Cloudflare
//! kept in step in the background, every device converging by the rules of
//! [`memory_sync`].
//!
//! * [`HybridStorage`] is the [`MemoryStorage`](memory_storage::MemoryStorage): the local
//!   store (opened with its change log on, so each write records its change in the same
//!   transaction) answers every call; a tool call never waits for Cloudflare.
//! * [`SyncEngine`] runs the rounds: push the outbox to the D1 change log (each store with
//!   its content and vector), pull the other devices' changes and merge them locally (no
//!   embedding: vectors travel), then write the merged state of this device's own changes
//!   into upstream's tables and Vectorize index (so the Python service and the Cloudflare
//!   backend keep reading them). A device's first round, and `sync --full`, also diff by
//!   content hash, which finds memories the Python service wrote.
//! * [`open`] opens the local store at once and connects to Cloudflare on the first round,
//!   so a device starts and works offline.

mod engine;
mod open;
mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use engine::{
    Connect, DEFAULT_PROJECT_PAGE, DEFAULT_PULL_PAGE, DEFAULT_PUSH_PAGE, FullSyncReport, Remote,
    Skipped, SyncEngine, SyncOptions, SyncProgress, SyncReport, SyncStatus,
};
pub use open::{connect_remote, connect_remote_with, open};
pub use storage::{
    DEFAULT_SETTLE_BUDGET, DEFAULT_SYNC_INTERVAL, HybridStorage, MAX_IDLE_INTERVAL,
    MAX_SYNC_INTERVAL,
};
