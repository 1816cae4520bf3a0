//! What `check` and `repair` must find and must leave alone (issue 12): a store never
//! deletes vectors or R2 objects it did not write (two stores sharing an index and a
//! bucket, foreign items written by another tool); one missing R2 object costs one
//! memory, not every read; rows whose hash is not their content's are found and re-keyed;
//! vector metadata fits Vectorize's limit for every memory the core accepts.

mod common;

use std::sync::Arc;

use cloudflare_d1::{D1Client, Statement};
use cloudflare_r2::{DeleteObject, ListObjects, PutObject, list_all_pages};
use cloudflare_vectorize::{MAX_METADATA_BYTES, Vector};
use common::{Setup, TestEnv};
use memory_cloudflare::storage::{MISSING_CONTENT_METADATA, STORE_ID_METADATA};
use memory_cloudflare::{CloudflareStorage, Options, Parts};
use memory_core::{ContentHash, Memory, Tags};
use memory_storage::{
    IssueKind, MemoryFilter, MemoryStorage, SemanticQuery, StoreOutcome, TagFilter,
};
use serde_json::json;

/// Content over this many bytes goes to R2 in these tests.
const THRESHOLD: usize = 64;

fn options() -> Options {
    Options {
        large_content_threshold: THRESHOLD,
        ..Options::default()
    }
}

fn memory(content: &str, tags: &str) -> Memory {
    Memory::new(content)
        .unwrap_or_else(|e| panic!("memory: {e}"))
        .with_tags(Tags::parse(tags).unwrap_or_else(|e| panic!("tags: {e}")))
}

/// Content kept in R2: over the threshold, and over the 1,000-character excerpt D1 keeps.
fn large(seed: &str) -> String {
    format!("{seed}: ") + &"large content line with enough words to embed. ".repeat(40)
}

async fn put(store: &CloudflareStorage, m: Memory) -> ContentHash {
    let hash = m.content_hash().clone();
    let outcome = store
        .store(m)
        .await
        .unwrap_or_else(|e| panic!("store {hash}: {e}"));
    assert_eq!(outcome, StoreOutcome::Stored);
    hash
}

/// A second store on this test's index and bucket, with its own D1 database and no
/// namespace: what the README's emulator quick start gives when run twice.
async fn second_store(env: &TestEnv) -> CloudflareStorage {
    let parts = Parts {
        d1: Arc::new(D1Client::new(
            &env.client,
            cloudflare_emulator::d1::new_database_id(),
        )),
        ..env.parts()
    };
    env.storage_with(parts, options()).await
}

async fn vector_ids(env: &TestEnv, ids: &[String]) -> Vec<String> {
    let mut found: Vec<String> = env
        .index()
        .get_by_ids(ids)
        .await
        .unwrap_or_else(|e| panic!("get_by_ids: {e}"))
        .into_iter()
        .map(|v| v.id)
        .collect();
    found.sort();
    found
}

async fn object_keys(env: &TestEnv) -> Vec<String> {
    let mut keys: Vec<String> = list_all_pages(&env.r2(), ListObjects::new())
        .await
        .unwrap_or_else(|e| panic!("listing R2: {e}"))
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_of_one_store_keeps_every_vector_and_object_of_another_sharing_the_index() {
    let env = TestEnv::start(Setup::direct()).await;
    let a = env.storage_with(env.parts(), options()).await;
    let b = second_store(&env).await;
    assert_ne!(
        a.store_id(),
        b.store_id(),
        "each database has its own store id"
    );
    put(&a, memory("Store A keeps this short note.", "a")).await;
    let a_large = put(&a, memory(&large("A"), "a")).await;
    let b_small = put(&b, memory("Store B keeps another short note.", "b")).await;
    let b_large = put(&b, memory(&large("B"), "b")).await;
    // A also has a leftover of its own, which its repair must still remove.
    let a_gone = put(&a, memory(&large("A, deleted"), "a")).await;
    a.delete(&a_gone)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let a_key = format!("memories/{}/{}", a.store_id().unwrap_or_default(), a_gone);
    env.r2()
        .put_object(PutObject::new(a_key.clone(), b"left over".to_vec()))
        .await
        .unwrap_or_else(|e| panic!("putting A's leftover: {e}"));

    let found = a.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    assert!(found.vectors_without_rows.is_empty(), "{found:?}");
    assert_eq!(
        found.r2_objects_without_rows,
        std::slice::from_ref(&a_key),
        "{found:?}"
    );
    let b_ids: Vec<String> = [&b_small, &b_large]
        .iter()
        .map(|h| h.as_str().to_owned())
        .collect();
    let mut b_ids_sorted = b_ids.clone();
    b_ids_sorted.sort();
    assert_eq!(
        found.foreign_vectors, b_ids_sorted,
        "B's vectors are reported as foreign"
    );
    assert_eq!(found.foreign_objects.len(), 1, "{found:?}");
    let before = object_keys(&env).await;

    let repaired = MemoryStorage::repair(&a)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));

    assert_eq!(repaired.fixed, 1, "only A's leftover object: {repaired:?}");
    assert_eq!(
        vector_ids(&env, &b_ids).await,
        b_ids_sorted,
        "B's vectors survive"
    );
    let after = object_keys(&env).await;
    assert_eq!(
        after,
        before
            .iter()
            .filter(|k| **k != a_key)
            .cloned()
            .collect::<Vec<_>>(),
        "only A's leftover object is gone"
    );
    let b_found = MemoryStorage::check(&b)
        .await
        .unwrap_or_else(|e| panic!("check B: {e}"));
    assert!(b_found.is_consistent(), "{b_found:?}");
    let b_memory = b
        .get_by_hash(&b_large)
        .await
        .unwrap_or_else(|e| panic!("B reads its large memory: {e}"))
        .unwrap_or_else(|| panic!("B's large memory is there"));
    assert_eq!(b_memory.content(), large("B"));
    let a_memory = a
        .get_by_hash(&a_large)
        .await
        .unwrap_or_else(|e| panic!("A reads its large memory: {e}"));
    assert!(a_memory.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_and_objects_written_by_another_tool_survive_repair() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage_with(env.parts(), options()).await;
    put(&store, memory("The only memory of this store.", "")).await;
    let values = vec![0.1_f32; common::MODEL.dimensions()];
    let unmarked = Vector::new("foreign-unmarked", values.clone());
    let other = Vector::new("foreign-other-store", values.clone()).with_metadata(
        json!({ STORE_ID_METADATA: "another" })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let other_tenant = Vector::new("foreign-namespaced", values).with_namespace("tenant");
    env.index()
        .upsert(&[unmarked, other, other_tenant])
        .await
        .unwrap_or_else(|e| panic!("upserting foreign vectors: {e}"));
    for key in ["memories/foreign.txt", "memories/another/abc"] {
        env.r2()
            .put_object(PutObject::new(key, b"not yours".to_vec()))
            .await
            .unwrap_or_else(|e| panic!("putting {key}: {e}"));
    }
    let ids: Vec<String> = [
        "foreign-namespaced",
        "foreign-other-store",
        "foreign-unmarked",
    ]
    .map(str::to_owned)
    .to_vec();

    let found = MemoryStorage::check(&store)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    assert!(
        found.is_consistent(),
        "foreign items are not this store's issues: {found:?}"
    );
    let inherent = store.check().await.unwrap_or_else(|e| panic!("check: {e}"));
    assert_eq!(inherent.foreign_vectors, ids);
    assert_eq!(
        inherent.foreign_objects,
        ["memories/another/abc", "memories/foreign.txt"]
    );
    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));

    assert_eq!(repaired.fixed, 0, "{repaired:?}");
    assert_eq!(vector_ids(&env, &ids).await, ids);
    let keys = object_keys(&env).await;
    assert!(
        keys.contains(&"memories/foreign.txt".to_owned())
            && keys.contains(&"memories/another/abc".to_owned()),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_r2_object_fails_only_its_memory_and_repair_keeps_the_excerpt() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage_with(env.parts(), options()).await;
    let lost_content = large("Lost");
    let lost = put(&store, memory(&lost_content, "lost,kept-tag")).await;
    let kept = put(&store, memory(&large("Kept"), "")).await;
    let small = put(&store, memory("A small memory beside them.", "")).await;
    let key = format!("memories/{}/{}", store.store_id().unwrap_or_default(), lost);
    env.r2()
        .delete_object(DeleteObject::new(key.clone()))
        .await
        .unwrap_or_else(|e| panic!("deleting the object: {e}"));

    // Lists and searches still work, the lost memory showing its excerpt and a marker.
    let all = store
        .list(&memory_storage::ListQuery {
            filter: MemoryFilter::all(),
            offset: 0,
            limit: None,
        })
        .await
        .unwrap_or_else(|e| panic!("list fails for every memory: {e}"));
    assert_eq!(all.len(), 3);
    let shown = all
        .iter()
        .find(|m| m.content_hash() == &lost)
        .unwrap_or_else(|| panic!("the lost memory is listed"));
    let excerpt: String = lost_content.chars().take(1000).collect();
    assert_eq!(shown.content(), excerpt);
    assert_eq!(
        shown
            .metadata
            .get(MISSING_CONTENT_METADATA)
            .map(|v| v["r2_key"].clone()),
        Some(json!(key))
    );
    let others = all.iter().find(|m| m.content_hash() == &kept);
    assert_eq!(others.map(Memory::content), Some(large("Kept").as_str()));
    let hits = store
        .search(&SemanticQuery::new("large content line", 5))
        .await
        .unwrap_or_else(|e| panic!("search fails for every memory: {e}"));
    assert_eq!(hits.len(), 3);
    // Reading that one memory says what is lost.
    let err = store
        .get_by_hash(&lost)
        .await
        .expect_err("its content is gone");
    let text = err.to_string();
    assert!(
        text.contains(lost.as_str()) && text.contains(&key),
        "{text}"
    );
    assert!(store.get_by_hash(&small).await.is_ok_and(|m| m.is_some()));

    let found = MemoryStorage::check(&store)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    let missing: Vec<&str> = found
        .of_kind(IssueKind::MissingObject)
        .map(|i| i.subject.as_str())
        .collect();
    assert_eq!(missing, [lost.as_str()], "{found:?}");

    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert_eq!(repaired.fixed, 1, "{repaired:?}");
    assert!(repaired.remaining.is_empty(), "{repaired:?}");
    assert!(store.get_by_hash(&lost).await.is_ok_and(|m| m.is_none()));
    let rekeyed = store
        .get_by_hash(&ContentHash::of(&excerpt))
        .await
        .unwrap_or_else(|e| panic!("reading the kept excerpt: {e}"))
        .unwrap_or_else(|| panic!("the memory is kept under its excerpt's hash"));
    assert_eq!(rekeyed.content(), excerpt);
    assert_eq!(rekeyed.tags.as_slice(), ["lost", "kept-tag"]);
    let record = rekeyed.metadata.get(MISSING_CONTENT_METADATA).cloned();
    assert_eq!(
        record
            .as_ref()
            .map(|r| (r["original_hash"].clone(), r["original_bytes"].clone())),
        Some((json!(lost.as_str()), json!(lost_content.len())))
    );
    assert!(
        MemoryStorage::check(&store)
            .await
            .is_ok_and(|r| r.is_consistent())
    );
}

/// A row whose stored hash is not its content's, as an import that trusted a supplied hash
/// left it.
async fn corrupt_hash(env: &TestEnv, from: &ContentHash, to: &ContentHash) {
    env.d1()
        .query(
            Statement::new("UPDATE memories SET content_hash = ? WHERE content_hash = ?")
                .bind(to.as_str())
                .bind(from.as_str()),
        )
        .await
        .unwrap_or_else(|e| panic!("corrupting the hash: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_row_whose_hash_is_not_its_contents_and_repair_rekeys_it() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let right = put(&store, memory("buy milk", "shopping")).await;
    let wrong = ContentHash::of("some other text");
    corrupt_hash(&env, &right, &wrong).await;

    let found = MemoryStorage::check(&store)
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    let mismatched: Vec<&str> = found
        .of_kind(IssueKind::HashMismatch)
        .map(|i| i.subject.as_str())
        .collect();
    assert_eq!(mismatched, [wrong.as_str()], "{found:?}");

    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));
    assert!(repaired.remaining.is_empty(), "{repaired:?}");
    let m = store
        .get_by_hash(&right)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("the row is back under its content's hash"));
    assert_eq!(
        (m.content(), m.tags.as_slice()),
        ("buy milk", &["shopping".to_owned()][..])
    );
    // The other text is no longer taken for a duplicate.
    put(&store, memory("some other text", "")).await;
    let hits = store
        .retrieve("buy milk", 1)
        .await
        .unwrap_or_else(|e| panic!("retrieve: {e}"));
    assert_eq!(hits.first().map(|h| h.memory.content_hash()), Some(&right));
    assert!(
        MemoryStorage::check(&store)
            .await
            .is_ok_and(|r| r.is_consistent())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_merges_a_mismatched_row_into_the_live_memory_with_its_hash() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let live = put(&store, memory("buy milk", "a")).await;
    let other = put(&store, memory("call the plumber", "b")).await;
    // The second row now holds "buy milk" too, under the plumber's hash.
    env.d1()
        .query(
            Statement::new("UPDATE memories SET content = ? WHERE content_hash = ?")
                .bind("buy milk")
                .bind(other.as_str()),
        )
        .await
        .unwrap_or_else(|e| panic!("corrupting the row: {e}"));

    let repaired = MemoryStorage::repair(&store)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"));

    assert_eq!(repaired.fixed, 1, "{repaired:?}");
    assert!(store.get_by_hash(&other).await.is_ok_and(|m| m.is_none()));
    let m = store
        .get_by_hash(&live)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("the live memory stays"));
    assert_eq!(m.tags.as_slice(), ["a", "b"]);
    let by_tag = store
        .search_by_tag(&Tags::parse("b").unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"));
    assert_eq!(by_tag.len(), 1);
    assert!(
        MemoryStorage::check(&store)
            .await
            .is_ok_and(|r| r.is_consistent())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_with_100_tags_of_100_multibyte_characters_is_stored_and_found_by_each() {
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    // 100 tags of 100 characters, 296 bytes each: ~30 KB, three times Vectorize's limit.
    let tags: Vec<String> = (0..100)
        .map(|n| format!("{n:02}{}", "語".repeat(98)))
        .collect();
    let m = Memory::new("A memory carrying every tag the core allows.")
        .unwrap_or_else(|e| panic!("{e}"))
        .with_tags(
            Tags::parse(tags.clone()).unwrap_or_else(|e| panic!("the core accepts them: {e}")),
        );
    let hash = put(&store, m).await;

    let stored = store
        .get_by_hash(&hash)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"))
        .unwrap_or_else(|| panic!("stored"));
    assert_eq!(
        stored.tags.as_slice(),
        tags.as_slice(),
        "D1 keeps every tag"
    );
    let last = Tags::parse(vec![tags[99].clone()]).unwrap_or_else(|e| panic!("{e}"));
    let by_tag = store
        .search_by_tag(&last)
        .await
        .unwrap_or_else(|e| panic!("search_by_tag: {e}"));
    assert_eq!(by_tag.len(), 1);
    let filtered = store
        .search(
            &SemanticQuery::new("every tag the core allows", 5)
                .with_filter(MemoryFilter::all().with_tags(TagFilter::any(last))),
        )
        .await
        .unwrap_or_else(|e| panic!("filtered search: {e}"));
    assert_eq!(filtered.len(), 1, "the filter runs in D1, on every tag");
    env.settle(&[&store]).await;
    let vector = env
        .index()
        .get_by_ids(&[hash.as_str().to_owned()])
        .await
        .unwrap_or_else(|e| panic!("get_by_ids: {e}"));
    let metadata = vector
        .first()
        .and_then(|v| v.metadata.clone())
        .unwrap_or_else(|| panic!("the vector has metadata"));
    let bytes = serde_json::to_vec(&metadata)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    assert!(bytes <= MAX_METADATA_BYTES, "{bytes} bytes");
    assert_eq!(metadata.get("tags_truncated"), Some(&json!(true)));
    assert!(
        MemoryStorage::check(&store)
            .await
            .is_ok_and(|r| r.is_consistent())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_vector_is_refused_is_not_a_store_error_of_its_neighbours() {
    // Guard for migrate: store_batch of a batch holding the 100-tag memory stores all.
    let env = TestEnv::start(Setup::direct()).await;
    let store = env.storage().await;
    let tags: Vec<String> = (0..100)
        .map(|n| format!("{n:02}{}", "ü".repeat(98)))
        .collect();
    let batch = vec![
        Memory::new("first neighbour").unwrap_or_else(|e| panic!("{e}")),
        Memory::new("the heavy one")
            .unwrap_or_else(|e| panic!("{e}"))
            .with_tags(Tags::parse(tags).unwrap_or_else(|e| panic!("{e}"))),
        Memory::new("second neighbour").unwrap_or_else(|e| panic!("{e}")),
    ];
    let results = store
        .store_batch(batch)
        .await
        .unwrap_or_else(|e| panic!("store_batch: {e}"));
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(StoreOutcome::Stored))),
        "{results:?}"
    );
    assert_eq!(
        store.count(&MemoryFilter::all()).await.ok(),
        Some(3),
        "every memory is stored"
    );
}
