//! Issue 14 point 1: Vectorize is eventually consistent, and the backend is correct under
//! it. The emulator delays every mutation by its default (one second, as
//! [`cloudflare_emulator::DEFAULT_MUTATION_DELAY`]); each test first shows that the raw
//! index does not see the write yet, so it proves the backend's read-your-writes, not a
//! lucky timing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudflare_vectorize::{QueryVectors, ReturnMetadata};
use common::{Setup, TestEnv};
use memory_cloudflare::embedder::WorkersAiEmbedder;
use memory_cloudflare::{CloudflareStorage, Options, Parts};
use memory_core::{ContentHash, Memory, Tags};
use memory_storage::{MemoryFilter, MemoryStorage, MemoryUpdate, SemanticQuery, TagFilter};

fn memory(content: &str, tag: &str) -> Memory {
    Memory::new(content)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_tags(Tags::parse(vec![tag.to_owned()]).unwrap_or_else(|e| panic!("{e}")))
}

async fn put(store: &CloudflareStorage, m: Memory) -> ContentHash {
    let hash = m.content_hash().clone();
    store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    hash
}

/// Whether the raw index (no backend in between) returns `hash` for `text`'s vector.
async fn index_sees(
    env: &TestEnv,
    store: &CloudflareStorage,
    text: &str,
    hash: &ContentHash,
) -> bool {
    let vector = common::embed(store, text).await;
    let q = QueryVectors::new(vector)
        .top_k(100)
        .return_metadata(ReturnMetadata::None);
    env.index()
        .query(&q)
        .await
        .unwrap_or_else(|e| panic!("query: {e}"))
        .matches
        .iter()
        .any(|m| m.id == hash.as_str())
}

fn hashes(results: &[memory_core::MemoryQueryResult]) -> Vec<ContentHash> {
    results
        .iter()
        .map(|r| r.memory.content_hash().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_a_search_right_after_a_store_finds_it_and_after_a_delete_does_not() {
    let env = TestEnv::start(Setup::direct()).await;
    assert!(
        !env.emulator.config().mutation_delay.is_zero(),
        "the emulator delays mutations by default"
    );
    let store = env.storage().await;
    let text = "The harbour ferry leaves at seven on weekdays.";
    let hash = put(&store, memory(text, "travel")).await;
    assert!(
        !index_sees(&env, &store, text, &hash).await,
        "the index itself does not show the new vector yet"
    );

    let plain = store
        .retrieve("when does the ferry leave", 5)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(
        hashes(&plain).first(),
        Some(&hash),
        "a plain search finds it"
    );
    let filtered = store
        .search(
            &SemanticQuery::new("when does the ferry leave", 5).with_filter(
                MemoryFilter::all().with_tags(TagFilter::any(
                    Tags::parse(vec!["travel".to_owned()]).unwrap_or_else(|e| panic!("{e}")),
                )),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("filtered search: {e}"));
    assert_eq!(
        hashes(&filtered),
        std::slice::from_ref(&hash),
        "a filtered search finds it"
    );
    let embeddings = store
        .get_embeddings(std::slice::from_ref(&hash))
        .await
        .unwrap_or_else(|e| panic!("get_embeddings: {e}"));
    assert!(embeddings[0].is_some(), "its stored vector is readable");

    // Once visible, then deleted: the index still shows it for a while; searches do not.
    assert!(
        store
            .wait_for_vectors(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("wait: {e}"))
    );
    assert!(index_sees(&env, &store, text, &hash).await);
    store
        .delete(&hash)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert!(
        index_sees(&env, &store, text, &hash).await,
        "the index itself still shows the deleted vector"
    );
    let after = store
        .retrieve("when does the ferry leave", 5)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert!(!hashes(&after).contains(&hash), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_right_after_a_store_does_not_embed_again() {
    let env = TestEnv::start(Setup::direct()).await;
    // Workers AI without the LRU cache in front, so that every embedding is a call.
    let parts = Parts {
        embedder: Arc::new(WorkersAiEmbedder::new(Arc::new(env.ai()))),
        ..env.parts()
    };
    let store = env.storage_with(parts, Options::default()).await;
    let hash = put(
        &store,
        memory("Quarterly report draft is due Friday.", "work"),
    )
    .await;
    let embeds = env.calls("ai");
    assert_eq!(embeds, 1, "{}", env.describe_calls());

    let update = MemoryUpdate {
        tags: Some(
            Tags::parse(vec!["work".to_owned(), "urgent".to_owned()])
                .unwrap_or_else(|e| panic!("{e}")),
        ),
        ..MemoryUpdate::default()
    };
    store
        .update_memory_metadata(&hash, update, false)
        .await
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(
        env.calls("ai"),
        embeds,
        "the vector not visible yet is not embedded again: {}",
        env.describe_calls()
    );
    // The refreshed metadata lands with the same values.
    assert!(
        store
            .wait_for_vectors(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("wait: {e}"))
    );
    let vector = env
        .index()
        .get_by_ids(&[hash.as_str().to_owned()])
        .await
        .unwrap_or_else(|e| panic!("get_by_ids: {e}"))
        .pop()
        .unwrap_or_else(|| panic!("the vector is there"));
    let tags = vector
        .metadata
        .as_ref()
        .and_then(|m| m.get("tags"))
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(tags, "work,urgent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_writes_still_pending_not_as_issues_and_repair_leaves_them() {
    // Vectorize slower than the check is willing to wait (Cloudflare under load).
    let env = TestEnv::start(
        Setup::direct().with_emulator(|c| c.mutation_delay = Duration::from_secs(4)),
    )
    .await;
    let store = env
        .storage()
        .await
        .with_settle_timeout(Duration::from_millis(500));
    let text = "Pending writes are not half-written stores.";
    let hash = put(&store, memory(text, "note")).await;
    // Another process (its own store over the same account) checks too: it knows nothing
    // of the write, only that the row changed a moment ago.
    let other = env
        .storage()
        .await
        .with_settle_timeout(Duration::from_millis(500));

    for (who, s) in [("the writer", &store), ("another process", &other)] {
        let found = s.check().await.unwrap_or_else(|e| panic!("check: {e}"));
        assert!(found.is_consistent(), "{who}: {found:?}");
        assert_eq!(found.pending_vectors, [hash.as_str()], "{who}: {found:?}");
        let repaired = s.repair().await.unwrap_or_else(|e| panic!("repair: {e}"));
        assert_eq!(repaired.fixed(), 0, "{who}: {repaired:?}");
    }
    assert_eq!(
        env.calls("ai"),
        1,
        "repair embedded nothing: {}",
        env.describe_calls()
    );

    // Once applied, nothing is pending and the store agrees with itself.
    let settled = store
        .with_settle_timeout(Duration::from_secs(30))
        .check()
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    assert!(
        settled.is_consistent() && settled.pending_vectors.is_empty(),
        "{settled:?}"
    );
}
