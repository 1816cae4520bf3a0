//! The shared conformance suite (`memory_storage::conformance`) on [`SqliteStorage`], with
//! the real all-MiniLM-L6-v2 model: one test per case, each on a fresh database file, once
//! with the defaults and once with the change log on (`with_change_log::`).
//!
//! The model is found through `MCP_MEMORY_MODEL_DIR` or the per-user cache that
//! `cargo xtask fetch-model` fills (CI runs it first); without it every case fails with
//! the embedder's message saying so.

use std::sync::{Arc, OnceLock};

use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID, Embedder};
use memory_sqlite::SqliteStorage;
use tempfile::TempDir;

/// The model, loaded once and shared by every case (each case has its own runtime, and
/// the embedder holds no runtime resource).
fn embedder() -> Arc<dyn Embedder> {
    static MODEL: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| match BertEmbedder::open(DEFAULT_MODEL_ID) {
            Ok(model) => Arc::new(model),
            Err(e) => panic!("loading {DEFAULT_MODEL_ID} for the conformance suite: {e}"),
        })
        .clone()
}

/// A new, empty store in its own directory; the directory lives as long as the store.
async fn fresh_store() -> (SqliteStorage, TempDir) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let store = SqliteStorage::open(dir.path().join("memories.db"), embedder())
        .await
        .expect("opening a fresh SQLite store");
    (store, dir)
}

memory_storage::conformance_tests!(fresh_store);

/// The same suite with the change log on: recording every change in the same transaction
/// must not change what any operation does.
mod with_change_log {
    use memory_sqlite::SqliteConfig;

    use super::*;

    /// A new, empty store with the change log on.
    async fn fresh_logged_store() -> (SqliteStorage, TempDir) {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let store = SqliteConfig::new(dir.path().join("memories.db"))
            .change_log(true)
            .open(embedder())
            .await
            .expect("opening a fresh SQLite store with the change log on");
        (store, dir)
    }

    memory_storage::conformance_tests!(fresh_logged_store);
}
