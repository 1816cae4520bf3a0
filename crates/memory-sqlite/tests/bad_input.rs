//! The bad-input corpus (`tests/bad_input/cases.json`) on the library surface of
//! [`SqliteStorage`]: every case is a typed error naming its field (or a harmless success
//! where the corpus says so), the store is unchanged afterwards, and nothing panics.
//!
//! The real all-MiniLM-L6-v2 model embeds the few search queries; seeds carry vectors.

#[path = "../../../tests/bad_input/corpus.rs"]
mod corpus;
#[path = "../../../tests/bad_input/library.rs"]
mod library;

use std::sync::Arc;

use memory_embed::{BertEmbedder, DEFAULT_MODEL_ID};
use memory_sqlite::SqliteStorage;
use memory_storage::MemoryFilter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_library_case_is_refused_cleanly_and_changes_nothing() {
    let model = BertEmbedder::open(DEFAULT_MODEL_ID)
        .unwrap_or_else(|e| panic!("loading {DEFAULT_MODEL_ID}: {e}"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStorage::open(dir.path().join("memories.db"), Arc::new(model))
        .await
        .expect("opening a fresh SQLite store");
    let search = |vector: Vec<f32>, limit: usize| {
        let store = &store;
        Box::pin(async move {
            store
                .search_by_vector(vector, limit, MemoryFilter::all(), None)
                .await
                .map(|r| r.len())
        }) as _
    };
    let ran = library::run(&store, "sqlite", Some(&search)).await;
    assert!(ran >= 30, "only {ran} library cases ran");
}
