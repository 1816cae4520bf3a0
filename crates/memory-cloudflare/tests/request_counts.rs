//! How many Cloudflare API calls each operation costs, read from the transport's accounting
//! (`cloudflare_http::Accounting`, shared by every client of the store): the request budget
//! the backend's docs promise. Latency (the parallel D1 + Vectorize writes of a store) is
//! measured by the `cloudflare_backend` bench, not asserted here.

mod common;

use common::{Counts, Setup, TestEnv};
use memory_core::{Memory, Tags};
use memory_storage::MemoryStorage;

fn memory(content: &str, tags: &[&str]) -> Memory {
    let tags = Tags::parse(tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("tags: {e}"));
    Memory::new(content)
        .unwrap_or_else(|e| panic!("memory: {e}"))
        .with_tags(tags)
}

/// Live memories in `store`.
async fn live_count(store: &impl MemoryStorage) -> u64 {
    store
        .count(&memory_storage::MemoryFilter::all())
        .await
        .unwrap_or_else(|e| panic!("count: {e}"))
}

fn counts(ai: u64, d1: u64, vectorize: u64, r2: u64) -> Counts {
    Counts {
        ai,
        d1,
        vectorize,
        r2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_costs_one_embedding_one_d1_batch_and_one_upsert() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    env.reset_counts();

    store
        .store(memory(
            "The staging database is rebuilt every night.",
            &["ops"],
        ))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));

    assert_eq!(
        env.call_counts(),
        counts(1, 1, 1, 0),
        "{}",
        env.describe_calls()
    );
    assert_eq!(
        env.op("d1", "batch").calls,
        1,
        "one D1 batch: {}",
        env.describe_calls()
    );
    assert_eq!(
        env.op("vectorize", "upsert").calls,
        1,
        "{}",
        env.describe_calls()
    );
    assert_eq!(env.accounting().service_totals("d1").retries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_carrying_its_embedding_costs_no_embedding_call() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let text = "Carried vectors skip Workers AI.";
    let vector = common::embed(&store, text).await;
    env.reset_counts();

    store
        .store(memory(text, &[]).with_embedding(vector))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));

    assert_eq!(
        env.call_counts(),
        counts(0, 1, 1, 0),
        "{}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_costs_three_calls_and_two_on_an_embedding_cache_hit() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    store
        .store(memory(
            "Invoices are sent on the first working day.",
            &["billing"],
        ))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    env.reset_counts();

    let hits = store
        .retrieve("when are invoices sent?", 5)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(hits.len(), 1);
    let first = env.call_counts();
    assert!(first.total() <= 3, "{}", env.describe_calls());
    assert_eq!(first, counts(1, 1, 1, 0), "{}", env.describe_calls());

    env.reset_counts();
    let again = store
        .retrieve("when are invoices sent?", 5)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(again.len(), 1);
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 1, 0),
        "the query's vector comes from the cache: {}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_tag_costs_one_d1_query() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    for (text, tag) in [
        ("Alpha release notes.", "alpha"),
        ("Beta release notes.", "beta"),
    ] {
        store
            .store(memory(text, &[tag]))
            .await
            .unwrap_or_else(|e| panic!("store: {e}"));
    }
    env.reset_counts();

    let tags = Tags::parse(vec!["alpha".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let found = store
        .search_by_tag(&tags)
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"));

    assert_eq!(found.len(), 1);
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 0),
        "{}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_costs_two_calls_and_three_with_content_in_r2() {
    let env = TestEnv::start(Setup::direct()).await;
    let mut config = env.config();
    config.large_content_threshold = 64;
    let store = env.storage_from(&config).await;
    let small = memory("Short.", &[]);
    let large = memory(
        &"A long memory whose content is kept in R2, not in D1. ".repeat(4),
        &[],
    );
    let (small_hash, large_hash) = (small.content_hash().clone(), large.content_hash().clone());
    env.reset_counts();
    store
        .store(large)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    assert_eq!(
        env.call_counts(),
        counts(1, 1, 1, 1),
        "a large store also PUTs to R2: {}",
        env.describe_calls()
    );
    store
        .store(small)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));

    env.reset_counts();
    store
        .delete(&small_hash)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 1, 0),
        "{}",
        env.describe_calls()
    );

    env.reset_counts();
    store
        .delete(&large_hash)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 1, 1),
        "{}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_delete_removes_vectors_in_calls_of_at_most_20_ids() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let memories: Vec<Memory> = (0..45)
        .map(|i| memory(&format!("Short-lived note {i}."), &["scratch"]))
        .collect();
    store
        .store_batch(memories)
        .await
        .unwrap_or_else(|e| panic!("store_batch: {e}"));
    env.reset_counts();

    let report = store
        .delete_by_tag("scratch")
        .await
        .unwrap_or_else(|e| panic!("delete_by_tag: {e}"));

    assert_eq!(report, 45);
    // Cloudflare answers 400/40007 to more than 20 ids (the emulator too): 45 = 20 + 20 + 5.
    assert_eq!(
        env.op("vectorize", "delete_by_ids").calls,
        3,
        "{}",
        env.describe_calls()
    );
    assert_eq!(live_count(&store).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_memory_in_r2_costs_one_get_per_large_memory() {
    let env = TestEnv::start(Setup::direct()).await;
    let mut config = env.config();
    config.large_content_threshold = 64;
    let store = env.storage_from(&config).await;
    let large = memory(&"Content kept in R2 for this read. ".repeat(4), &["big"]);
    let hash = large.content_hash().clone();
    store
        .store(large.clone())
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    store
        .store(memory("Small content stays in D1.", &["big"]))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    env.reset_counts();

    let got = store
        .get_by_hash(&hash)
        .await
        .unwrap_or_else(|e| panic!("get_by_hash: {e}"))
        .unwrap_or_else(|| panic!("the large memory is stored"));
    assert_eq!(got.content(), large.content());
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 1),
        "{}",
        env.describe_calls()
    );

    env.reset_counts();
    let tags = Tags::parse(vec!["big".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let found = store
        .search_by_tag(&tags)
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"));
    assert_eq!(found.len(), 2);
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 1),
        "{}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_batch_embeds_in_calls_of_at_most_100_and_writes_in_few_batches() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let memories: Vec<Memory> = (0..250)
        .map(|i| {
            memory(
                &format!("Batch memory number {i} about topic {}.", i % 7),
                &["batch"],
            )
        })
        .collect();
    env.reset_counts();

    let outcomes = store
        .store_batch(memories)
        .await
        .unwrap_or_else(|e| panic!("store_batch: {e}"));

    assert_eq!(outcomes.len(), 250);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let c = env.call_counts();
    assert_eq!(
        c.ai,
        3,
        "250 texts in calls of ≤ 100: {}",
        env.describe_calls()
    );
    assert!(
        c.d1 <= 5,
        "≤ 50 memories per D1 batch: {}",
        env.describe_calls()
    );
    assert_eq!(
        c.vectorize,
        1,
        "one upsert of ≤ 5000 vectors: {}",
        env.describe_calls()
    );
    assert_eq!(live_count(&store).await, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_count_and_get_by_hash_cost_one_d1_query_each() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let m = memory("Only D1 answers plain reads.", &["reads"]);
    let hash = m.content_hash().clone();
    store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));

    env.reset_counts();
    let _ = store
        .get_by_hash(&hash)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 0),
        "{}",
        env.describe_calls()
    );

    env.reset_counts();
    let _ = store
        .count(&memory_storage::MemoryFilter::all())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 0),
        "{}",
        env.describe_calls()
    );

    env.reset_counts();
    let _ = store
        .get_recent_memories(10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 0),
        "{}",
        env.describe_calls()
    );

    env.reset_counts();
    let _ = store.get_all_tags().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        env.call_counts(),
        counts(0, 1, 0, 0),
        "{}",
        env.describe_calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_lists_r2_in_pages_of_1000_objects() {
    let env = TestEnv::start(Setup::direct()).await;
    let mut config = env.config();
    config.large_content_threshold = 64;
    let store = env.storage_from(&config).await;
    // 30 objects: two pages at the API's default of 20, one at 1,000.
    let large: Vec<Memory> = (0..30)
        .map(|i| {
            memory(
                &format!("Large memory {i}, kept in R2 rather than in D1. ").repeat(3),
                &["r2"],
            )
        })
        .collect();
    for outcome in store
        .store_batch(large)
        .await
        .unwrap_or_else(|e| panic!("store_batch: {e}"))
    {
        outcome.unwrap_or_else(|e| panic!("store: {e}"));
    }
    env.reset_counts();
    let _ = store.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    assert_eq!(
        env.op("r2", "list_objects").calls,
        1,
        "{}",
        env.describe_calls()
    );
}
