//! Several instances on one file: what one writes, deletes or updates the others see; a
//! file opened with another model is refused; concurrent writers all succeed.

use super::*;

#[tokio::test]
async fn a_store_through_one_instance_is_found_by_another() {
    let f = Fixture::new().await;
    let other = f.second().await;
    assert!(other.retrieve("shared note", 5).await.unwrap().is_empty());
    f.store
        .store(memory("shared note about sqlite"))
        .await
        .unwrap();
    let hits = other.retrieve("shared note", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(other.indexed_vectors(), 1);
}

#[tokio::test]
async fn a_delete_through_one_instance_disappears_from_another() {
    let f = Fixture::new().await;
    let other = f.second().await;
    f.store.store(memory("short lived")).await.unwrap();
    f.store.store(memory("long lived")).await.unwrap();
    assert_eq!(other.retrieve("lived", 5).await.unwrap().len(), 2);
    f.store
        .delete(&ContentHash::of("short lived"))
        .await
        .unwrap();
    let hits = other.retrieve("lived", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].memory.content(), "long lived");
    assert_eq!(other.indexed_vectors(), 1);
}

#[tokio::test]
async fn delete_and_purge_unseen_by_another_instance_are_still_reconciled() {
    let f = Fixture::new().await;
    f.store.store(memory("first")).await.unwrap();
    f.store.store(memory("second")).await.unwrap();
    let other = f.second().await;
    assert_eq!(other.indexed_vectors(), 2);
    // Delete and purge before the other instance looks again.
    f.store.delete(&ContentHash::of("first")).await.unwrap();
    f.store.purge_deleted(None).await.unwrap();
    let hits = other.retrieve("first second", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(other.indexed_vectors(), 1);
}

#[tokio::test]
async fn update_through_one_instance_changes_filtered_search_in_another() {
    let f = Fixture::new().await;
    let other = f.second().await;
    let m = tagged("tagged later", "before");
    f.store.store(m.clone()).await.unwrap();
    let q = SemanticQuery::new("tagged", 5)
        .with_filter(MemoryFilter::all().with_tags(TagFilter::any(tags("after"))));
    assert!(other.search(&q).await.unwrap().is_empty());
    f.store
        .update_memory_metadata(
            m.content_hash(),
            MemoryUpdate {
                tags: Some(tags("after")),
                ..MemoryUpdate::default()
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(other.search(&q).await.unwrap().len(), 1);
}

#[tokio::test]
async fn reopening_with_other_dimensions_is_a_model_mismatch() {
    let f = Fixture::new().await;
    f.store.store(memory("x")).await.unwrap();
    let path = f.store.path().to_owned();
    drop(f.store);
    let err = SqliteStorage::open(path.clone(), WordsEmbedder::new(DIMS * 2))
        .await
        .unwrap_err();
    match err {
        StorageError::ModelMismatch {
            recorded,
            configured,
        } => {
            assert_eq!(recorded, format!("test-words ({DIMS} dims)"));
            assert_eq!(configured, format!("test-words ({} dims)", DIMS * 2));
        }
        other => panic!("expected ModelMismatch, got {other}"),
    }
    let err = SqliteStorage::open(path.clone(), WordsEmbedder::named("other-model", DIMS))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::ModelMismatch { .. }));
    // The right model still opens it, with its data.
    let again = SqliteStorage::open(path, WordsEmbedder::new(DIMS))
        .await
        .unwrap();
    assert_eq!(again.indexed_vectors(), 1);
    drop(f.dir);
}

#[tokio::test]
async fn two_models_opening_one_empty_file_cannot_mix_vectors() {
    let f = Fixture::new().await;
    let path = f.store.path().to_owned();
    // Both open the still-empty file; the second adopts its model in `meta`.
    let other = SqliteStorage::open(path, WordsEmbedder::new(DIMS * 2))
        .await
        .unwrap();
    other
        .store(memory("written with the wider model"))
        .await
        .unwrap();
    // The first instance's write is checked against what the file now records.
    let err = f
        .store
        .store(memory("written with the narrow model"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::ModelMismatch { .. }), "{err}");
    assert_eq!(other.count(&MemoryFilter::all()).await.unwrap(), 1);
}

#[tokio::test]
async fn reopening_loads_the_index_and_initialize_is_idempotent() {
    let f = Fixture::new().await;
    f.store.store(memory("persisted")).await.unwrap();
    f.store.initialize().await.unwrap();
    let again = f.second().await;
    again.initialize().await.unwrap();
    assert_eq!(again.retrieve("persisted", 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_write_lock_held_too_long_by_another_process_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SqliteConfig::new(dir.path().join("m.db"))
        .busy_timeout(Duration::from_millis(30))
        .write_retries(1, Duration::from_millis(10));
    let store = cfg.open(WordsEmbedder::new(DIMS)).await.unwrap();
    let blocker = rusqlite::Connection::open(store.path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store.store(memory("blocked")).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("another process"), "{err}");
    // Reads still work while the lock is held (WAL).
    assert_eq!(store.count(&MemoryFilter::all()).await.unwrap(), 0);
    blocker.execute_batch("COMMIT").unwrap();
    store.store(memory("blocked")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_one_file_all_succeed() {
    let f = Fixture::new().await;
    let other = f.second().await;
    let mut tasks = Vec::new();
    for (w, store) in [f.store.clone(), other.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                store
                    .store(memory(&format!("writer {w} note {i}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(f.store.count(&MemoryFilter::all()).await.unwrap(), 80);
    let q = SemanticQuery::new("writer note", 100);
    assert_eq!(f.store.search(&q).await.unwrap().len(), 80);
    assert_eq!(other.search(&q).await.unwrap().len(), 80);
}
