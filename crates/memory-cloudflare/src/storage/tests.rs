//! Tests of [`CloudflareStorage`]: mocks for the tricky units (exact search fallback,
//! compensation, duplicate metadata), the emulator for R2, namespaces, consistency and
//! request counts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudflare_d1::{D1Error, MockD1Api, QueryResult, Row, Statement};
use cloudflare_http::CloudflareError;
use cloudflare_r2::PutObject;
use cloudflare_vectorize::{
    MockIndexApi, MutationBatch, QueryMatch, QueryResult as VQueryResult, Vector, VectorizeError,
};
use memory_core::{Memory, Tags, Timestamp};
use memory_embed::MockEmbedder;
use memory_storage::{
    MemoryFilter, MemoryStorage, SemanticQuery, StorageError, StoreOutcome, TagFilter,
};
use serde_json::{Value, json};

use super::*;
use crate::rows::{count, text};
use crate::testing::{emulator_storage, emulator_storage_with, local_embedder, parts_on};

fn mock_embedder() -> Arc<dyn Embedder> {
    let mut e = MockEmbedder::new();
    e.expect_model_id().return_const("mock-model".to_owned());
    e.expect_dimensions().return_const(3usize);
    e.expect_embed()
        .returning(|texts| Ok(texts.iter().map(|_| vec![1.0, 0.0, 0.0]).collect()));
    Arc::new(e)
}

fn mock_store(d1: MockD1Api, index: MockIndexApi) -> CloudflareStorage {
    CloudflareStorage::from_parts(
        Parts {
            d1: Arc::new(d1),
            vectorize: Arc::new(index),
            vectorize_admin: None,
            index_name: "memories".into(),
            r2: None,
            embedder: mock_embedder(),
            accounting: None,
        },
        Options::default(),
    )
    .unwrap()
}

fn result(rows: Vec<Row>) -> QueryResult {
    QueryResult {
        rows,
        success: true,
        ..QueryResult::default()
    }
}

fn row_of(memory: &Memory, vid: &str) -> Row {
    let t = memory.created_at;
    json!({
        "id": 7, "content_hash": memory.content_hash().as_str(), "content": memory.content(),
        "memory_type": memory.memory_type, "created_at": t.epoch_seconds(),
        "created_at_iso": t.to_iso(), "updated_at": t.epoch_seconds(),
        "updated_at_iso": t.to_iso(), "metadata_json": "{}", "vector_id": vid,
        "r2_key": null, "deleted_at": null, "tags_csv": memory.tags.joined()
    })
    .as_object()
    .unwrap()
    .clone()
}

fn timeout() -> CloudflareError {
    CloudflareError::Timeout {
        after: Duration::from_secs(1),
    }
}

/// The six results of a store batch with this pre-state and post row.
fn store_results(pre: Option<Value>, post: Row) -> Vec<QueryResult> {
    let pre = pre
        .map(|v| vec![v.as_object().unwrap().clone()])
        .unwrap_or_default();
    vec![
        result(pre),
        result(vec![]),
        result(vec![]),
        result(vec![]),
        result(vec![]),
        result(vec![post]),
    ]
}

fn memory_with_vector(text: &str) -> Memory {
    Memory::new(text)
        .unwrap()
        .with_embedding(vec![1.0, 0.0, 0.0])
}

#[tokio::test]
async fn filtered_search_falls_back_to_the_exact_path_when_tagged_memories_rank_below_the_top_100()
{
    // Vectorize's top 100 are all untagged; the 25 tagged memories rank below them.
    let mut index = MockIndexApi::new();
    index.expect_query().times(1).returning(|q| {
        assert_eq!(q.top_k, QUERY_TOP_K);
        Ok(VQueryResult {
            count: 100,
            matches: (0..100)
                .map(|k| QueryMatch {
                    id: format!("u{k}"),
                    score: 0.99 - f64::from(k) * 0.001,
                    values: None,
                    metadata: None,
                    namespace: None,
                })
                .collect(),
        })
    });
    let chunks = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&chunks);
    index.expect_get_by_ids().returning(move |ids| {
        seen.lock().unwrap().push(ids.len());
        Ok(ids
            .into_iter()
            .map(|id| {
                let k: f32 = id[1..].parse().unwrap();
                // t0 is the closest to the query [1, 0, 0], then t1, ...
                let angle = 0.05 * k;
                Vector::new(id, vec![angle.cos(), angle.sin(), 0.0])
            })
            .collect())
    });
    let mut d1 = MockD1Api::new();
    d1.expect_query().returning(|s: Statement| {
        let sql = s.sql().to_owned();
        if sql.contains("SELECT m.vector_id AS vector_id") {
            // The exact path lists every matching memory.
            return Ok(result(
                (0..25)
                    .map(|k| {
                        json!({"vector_id": format!("t{k}")})
                            .as_object()
                            .unwrap()
                            .clone()
                    })
                    .collect(),
            ));
        }
        let ids: Vec<String> = serde_json::from_str(&s.params().last().unwrap().to_wire()).unwrap();
        Ok(result(
            ids.iter()
                .filter(|id| id.starts_with('t'))
                .map(|id| {
                    let m = Memory::new(format!("tagged {id}"))
                        .unwrap()
                        .with_tags(Tags::parse("x").unwrap());
                    row_of(&m, id)
                })
                .collect(),
        ))
    });
    let store = mock_store(d1, index);
    let query = SemanticQuery::new("q", 3)
        .with_filter(MemoryFilter::all().with_tags(TagFilter::any(Tags::parse("x").unwrap())));
    let hits = store.search(&query).await.unwrap();
    let contents: Vec<&str> = hits.iter().map(|h| h.memory.content()).collect();
    assert_eq!(contents, ["tagged t0", "tagged t1", "tagged t2"]);
    assert!(hits[0].relevance_score > hits[1].relevance_score);
    let chunks = chunks.lock().unwrap();
    assert!(chunks.iter().all(|&n| n <= GET_BY_IDS_CHUNK), "{chunks:?}");
    assert_eq!(chunks.iter().sum::<usize>(), 25);
}

#[tokio::test]
async fn a_failed_vector_write_removes_the_new_row_and_says_nothing_was_stored() {
    let m = memory_with_vector("compensate me");
    let post = row_of(&m, m.content_hash().as_str());
    let calls = Arc::new(Mutex::new(Vec::<Vec<Statement>>::new()));
    let log = Arc::clone(&calls);
    let mut d1 = MockD1Api::new();
    d1.expect_batch().times(2).returning(move |s| {
        let mut log = log.lock().unwrap();
        log.push(s);
        if log.len() == 1 {
            Ok(store_results(None, post.clone()))
        } else {
            Ok(vec![result(vec![]), result(vec![])])
        }
    });
    let mut index = MockIndexApi::new();
    index
        .expect_upsert()
        .times(1)
        .returning(|_| Err(VectorizeError::Cloudflare(timeout())));
    let store = mock_store(d1, index);
    let err = store.store(m.clone()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("nothing was stored"), "{err}");
    let calls = calls.lock().unwrap();
    assert!(
        calls[1]
            .iter()
            .any(|s| s.sql().starts_with("DELETE FROM memories WHERE"))
    );
    assert!(
        calls[1]
            .iter()
            .all(|s| s.params()[0].to_wire() == m.content_hash().as_str())
    );
}

#[tokio::test]
async fn a_failed_vector_write_re_tombstones_a_revived_row() {
    let m = memory_with_vector("revive then fail");
    let post = row_of(&m, m.content_hash().as_str());
    let calls = Arc::new(Mutex::new(Vec::<Vec<Statement>>::new()));
    let log = Arc::clone(&calls);
    let mut d1 = MockD1Api::new();
    d1.expect_batch().times(2).returning(move |s| {
        let mut log = log.lock().unwrap();
        log.push(s);
        if log.len() == 1 {
            Ok(store_results(
                Some(json!({"id": 7, "deleted_at": 1_700_000_000.5})),
                post.clone(),
            ))
        } else {
            Ok(vec![result(vec![])])
        }
    });
    let mut index = MockIndexApi::new();
    index
        .expect_upsert()
        .returning(|_| Err(VectorizeError::Cloudflare(timeout())));
    let store = mock_store(d1, index);
    store.store(m).await.unwrap_err();
    let calls = calls.lock().unwrap();
    assert_eq!(calls[1].len(), 1);
    assert!(
        calls[1][0]
            .sql()
            .starts_with("UPDATE memories SET deleted_at")
    );
    assert_eq!(calls[1][0].params()[0].to_wire(), "1700000000.5");
}

#[tokio::test]
async fn when_the_compensation_fails_too_the_error_points_to_check_and_repair() {
    let m = memory_with_vector("double failure");
    let post = row_of(&m, m.content_hash().as_str());
    let mut d1 = MockD1Api::new();
    let mut n = 0;
    d1.expect_batch().times(2).returning(move |_| {
        n += 1;
        if n == 1 {
            Ok(store_results(None, post.clone()))
        } else {
            Err(D1Error::Cloudflare(timeout()))
        }
    });
    let mut index = MockIndexApi::new();
    index
        .expect_upsert()
        .returning(|_| Err(VectorizeError::Cloudflare(timeout())));
    let err = mock_store(d1, index).store(m).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("repair") && text.contains("check"), "{text}");
}

#[tokio::test]
async fn a_failed_d1_write_deletes_the_vector_of_a_memory_that_is_not_live() {
    let m = memory_with_vector("d1 down");
    let mut d1 = MockD1Api::new();
    d1.expect_batch()
        .times(1)
        .returning(|_| Err(D1Error::Cloudflare(timeout())));
    d1.expect_query().times(1).returning(|_| Ok(result(vec![])));
    let mut index = MockIndexApi::new();
    index.expect_upsert().times(1).returning(|v| {
        Ok(MutationBatch {
            mutation_ids: vec!["m1".into()],
            vectors: v.len(),
        })
    });
    let hash = m.content_hash().as_str().to_owned();
    index.expect_delete_by_ids().times(1).returning(move |ids| {
        assert_eq!(ids, vec![hash.clone()]);
        Ok(cloudflare_vectorize::Mutation {
            mutation_id: "m2".into(),
        })
    });
    let err = mock_store(d1, index).store(m).await.unwrap_err();
    assert!(err.to_string().contains("nothing was stored"), "{err}");
}

/// D1 answering one store batch with `existing` already live (row id 7).
fn d1_finding_live(existing: &Memory) -> MockD1Api {
    let post = row_of(existing, existing.content_hash().as_str());
    let mut d1 = MockD1Api::new();
    d1.expect_batch().times(1).returning(move |_| {
        Ok(store_results(
            Some(json!({"id": 7, "deleted_at": null})),
            post.clone(),
        ))
    });
    d1
}

#[tokio::test]
async fn a_duplicate_puts_the_existing_memorys_metadata_back_on_the_vector() {
    let existing = Memory::new("same text")
        .unwrap()
        .with_tags(Tags::parse("original").unwrap());
    let d1 = d1_finding_live(&existing);
    let upserts = Arc::new(Mutex::new(Vec::<Vec<Vector>>::new()));
    let log = Arc::clone(&upserts);
    let mut index = MockIndexApi::new();
    index.expect_upsert().times(2).returning(move |v| {
        let n = v.len();
        log.lock().unwrap().push(v);
        Ok(MutationBatch {
            mutation_ids: vec!["m".into()],
            vectors: n,
        })
    });
    let rejected = memory_with_vector("same text").with_tags(Tags::parse("other").unwrap());
    let outcome = mock_store(d1, index).store(rejected).await.unwrap();
    assert_eq!(outcome, StoreOutcome::Duplicate);
    let upserts = upserts.lock().unwrap();
    let restored = upserts[1][0].metadata.as_ref().unwrap();
    assert_eq!(restored["tags"], json!("original"));
}

#[tokio::test]
async fn a_duplicate_is_still_a_duplicate_when_the_vector_upsert_fails() {
    let existing = memory_with_vector("same text");
    // One batch, and no compensating one: the live row was never touched.
    let d1 = d1_finding_live(&existing);
    let mut index = MockIndexApi::new();
    index
        .expect_upsert()
        .times(1)
        .returning(|_| Err(VectorizeError::Cloudflare(timeout())));
    let outcome = mock_store(d1, index).store(existing).await.unwrap();
    assert_eq!(outcome, StoreOutcome::Duplicate);
}

// ----- against the emulator -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_costs_one_d1_and_one_vectorize_request_and_search_the_same() {
    let (store, _emulator) = emulator_storage().await;
    let acc = store.accounting().unwrap().clone();
    acc.reset();
    let m = Memory::new("request counting").unwrap();
    assert_eq!(store.store(m).await.unwrap(), StoreOutcome::Stored);
    assert_eq!(acc.service_totals("d1").calls, 1);
    assert_eq!(acc.service_totals("vectorize").calls, 1);
    acc.reset();
    let hits = store.retrieve("request counting", 1).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(acc.service_totals("d1").calls, 1);
    assert_eq!(acc.service_totals("vectorize").calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_lives_in_r2_and_reads_back_whole() {
    let (store, emulator) = emulator_storage_with(Options {
        large_content_threshold: 100,
        ..Options::default()
    })
    .await;
    let big = "large content line ü\n".repeat(40);
    let m = Memory::new(big.clone()).unwrap();
    let hash = m.content_hash().clone();
    store.store(m).await.unwrap();
    let read = store.get_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(read.content(), big);
    let listed = store
        .list(&memory_storage::ListQuery::all(MemoryFilter::all()))
        .await
        .unwrap();
    assert_eq!(listed[0].content(), big);
    // The row keeps a preview and the key.
    let row = store
        .inner
        .query(
            "test",
            Statement::new("SELECT content, r2_key, content_size FROM memories").idempotent(true),
        )
        .await
        .unwrap();
    let r = &row.rows[0];
    assert_eq!(
        text(r, "content").unwrap().chars().count(),
        crate::rows::PREVIEW_CHARS.min(big.chars().count())
    );
    assert_eq!(
        text(r, "r2_key").unwrap(),
        format!("memories/{}/{}", store.store_id().unwrap(), hash.as_str())
    );
    assert_eq!(count(r, "content_size"), big.len() as u64);
    let stats = store.get_stats().await.unwrap();
    assert_eq!(stats.content_bytes, big.len() as u64);
    assert_eq!(stats.extra["r2_objects"], json!(1));
    // Deleting removes the object.
    store.delete(&hash).await.unwrap();
    assert!(store.check().await.unwrap().is_consistent());
    let r2 = parts_on(&emulator, local_embedder(), true).r2.unwrap();
    let left = cloudflare_r2::list_all_pages(r2.as_ref(), cloudflare_r2::ListObjects::new())
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_content_without_a_bucket_is_refused_naming_the_variable() {
    let (_store, emulator) = emulator_storage().await;
    let store = CloudflareStorage::from_parts(
        parts_on(&emulator, local_embedder(), false),
        Options {
            large_content_threshold: 10,
            ..Options::default()
        },
    )
    .unwrap();
    let err = store
        .store(Memory::new("more than ten bytes of text").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CLOUDFLARE_R2_BUCKET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_on_one_database_index_and_bucket_never_see_each_other() {
    let (_base, emulator) = emulator_storage().await;
    let open = |ns: &str| {
        CloudflareStorage::from_parts(
            parts_on(&emulator, local_embedder(), true),
            Options {
                namespace: Some(Namespace::new(ns).unwrap()),
                large_content_threshold: 50,
            },
        )
        .unwrap()
    };
    let (a, b) = (open("team_a"), open("team_b"));
    a.initialize().await.unwrap();
    b.initialize().await.unwrap();
    let same = "the same note in both tenants, long enough to go to R2";
    assert_eq!(
        a.store(Memory::new(same).unwrap()).await.unwrap(),
        StoreOutcome::Stored
    );
    assert_eq!(
        b.store(Memory::new(same).unwrap()).await.unwrap(),
        StoreOutcome::Stored
    );
    a.store(Memory::new("only in a").unwrap()).await.unwrap();
    assert_eq!(a.count(&MemoryFilter::all()).await.unwrap(), 2);
    assert_eq!(b.count(&MemoryFilter::all()).await.unwrap(), 1);
    let hits = b.retrieve("only in a", 5).await.unwrap();
    assert!(hits.iter().all(|h| h.memory.content() != "only in a"));
    a.delete(&ContentHash::of(same)).await.unwrap();
    assert_eq!(
        b.get_by_hash(&ContentHash::of(same))
            .await
            .unwrap()
            .unwrap()
            .content(),
        same
    );
    assert!(
        a.check().await.unwrap().is_consistent(),
        "{:?}",
        a.check().await
    );
    assert!(
        b.check().await.unwrap().is_consistent(),
        "{:?}",
        b.check().await
    );
}

/// Two memories, one of whose vectors is gone, plus a stray vector ("stray") and an
/// orphan R2 object of this store: the hash whose vector is missing and the orphan's key.
async fn store_with_one_issue_of_each_kind() -> (
    CloudflareStorage,
    cloudflare_emulator::EmulatorHandle,
    ContentHash,
    String,
) {
    let (store, emulator) = emulator_storage().await;
    let kept = Memory::new("a memory whose vector goes missing").unwrap();
    let kept_hash = kept.content_hash().clone();
    store.store(kept).await.unwrap();
    store
        .store(Memory::new("a healthy memory").unwrap())
        .await
        .unwrap();
    let i = &store.inner;
    i.delete_vectors("test", vec![kept_hash.as_str().to_owned()])
        .await
        .unwrap();
    // Leftovers of this store: marked with its id (foreign ones are left alone, see
    // tests/integrity.rs).
    let ours = json!({ STORE_ID_METADATA: store.store_id().unwrap() });
    i.upsert(
        "test",
        vec![Vector::new("stray", vec![1.0; 384]).with_metadata(ours.as_object().unwrap().clone())],
    )
    .await
    .unwrap();
    let orphan = format!("{}orphan", i.r2_store_prefix());
    let r2 = i.parts.r2.clone().unwrap();
    r2.put_object(PutObject::new(orphan.clone(), b"x".to_vec()))
        .await
        .unwrap();
    (store, emulator, kept_hash, orphan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_and_repair_fixes_missing_and_stray_vectors_and_orphan_objects() {
    let (store, _emulator, kept_hash, orphan) = store_with_one_issue_of_each_kind().await;
    let found = store.check().await.unwrap();
    assert_eq!(found.rows_without_vectors, vec![kept_hash.clone()]);
    assert_eq!(found.vectors_without_rows, vec!["stray".to_owned()]);
    assert_eq!(found.r2_objects_without_rows, vec![orphan.clone()]);
    let done = store.repair().await.unwrap();
    assert_eq!(
        (
            done.vectors_written,
            done.vectors_deleted,
            done.r2_objects_deleted
        ),
        (1, 1, 1)
    );
    assert!(store.check().await.unwrap().is_consistent());
    let hits = store
        .retrieve("a memory whose vector goes missing", 1)
        .await
        .unwrap();
    assert_eq!(hits[0].memory.content_hash(), &kept_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_refuses_a_database_built_with_another_model() {
    let (store, emulator) = emulator_storage().await;
    store
        .store(Memory::new("made with MiniLM").unwrap())
        .await
        .unwrap();
    let mut other = MockEmbedder::new();
    other
        .expect_model_id()
        .return_const("another-model".to_owned());
    other.expect_dimensions().return_const(384usize);
    let store = CloudflareStorage::from_parts(
        parts_on(&emulator, Arc::new(other), true),
        Options::default(),
    )
    .unwrap();
    let err = store.initialize().await.unwrap_err();
    assert!(matches!(err, StorageError::ModelMismatch { .. }), "{err}");
    assert!(err.to_string().contains("another-model"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_batch_reports_duplicates_per_memory_and_writes_every_vector() {
    let (store, _emulator) = emulator_storage().await;
    let t = Timestamp::now();
    let batch = vec![
        Memory::new("batch one").unwrap().with_created_at(t),
        Memory::new("batch two").unwrap(),
        Memory::new("Batch one ").unwrap(),
    ];
    let out = store.store_batch(batch).await.unwrap();
    assert!(matches!(out[0], Ok(StoreOutcome::Stored)));
    assert!(matches!(out[1], Ok(StoreOutcome::Stored)));
    assert!(
        matches!(out[2], Ok(StoreOutcome::Duplicate)),
        "{:?}",
        out[2]
    );
    assert!(store.check().await.unwrap().is_consistent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trait_check_and_repair_report_each_issue_in_the_generic_form() {
    use memory_storage::IssueKind;
    let (store, _emulator, kept_hash, orphan) = store_with_one_issue_of_each_kind().await;

    let dyn_store: &dyn MemoryStorage = &store;
    let found = dyn_store.check().await.unwrap();
    assert_eq!(found.backend, "cloudflare");
    assert_eq!(found.memories_checked, 2);
    let kinds: Vec<(IssueKind, &str)> = found
        .issues
        .iter()
        .map(|i| (i.kind, i.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (IssueKind::MissingVector, kept_hash.as_str()),
            (IssueKind::StrayVector, "stray"),
            (IssueKind::StrayObject, orphan.as_str()),
        ]
    );
    assert!(found.issues.iter().all(|i| i.detail.contains("`repair`")));

    let done = dyn_store.repair().await.unwrap();
    assert_eq!(done.found, found);
    assert_eq!(done.fixed, 3);
    assert_eq!(done.actions.len(), 3, "{:?}", done.actions);
    assert!(done.remaining.is_empty(), "{:?}", done.remaining);
    assert!(dyn_store.check().await.unwrap().is_consistent());
    assert!(
        dyn_store.get_embeddings(&[kept_hash]).await.unwrap()[0].is_some(),
        "the repaired vector is handed out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_embeddings_follows_namespaced_vector_ids_and_ignores_other_tenants() {
    let (store, emulator) = crate::testing::emulator_storage_ns("team_a").await;
    let other = CloudflareStorage::from_parts(
        parts_on(&emulator, local_embedder(), true),
        Options {
            namespace: Some(Namespace::new("team_b").unwrap()),
            ..Options::default()
        },
    )
    .unwrap();
    other.initialize().await.unwrap();
    let mut v = vec![0.0f32; 384];
    v[7] = 1.0;
    let m = Memory::new("a note of team a")
        .unwrap()
        .with_embedding(v.clone());
    let hash = m.content_hash().clone();
    store.store(m).await.unwrap();
    let only_b = Memory::new("a note of team b").unwrap();
    let b_hash = only_b.content_hash().clone();
    other.store(only_b).await.unwrap();
    assert_ne!(
        store.inner.vector_id(&hash),
        hash.as_str(),
        "ids are namespaced"
    );
    let got = store
        .get_embeddings(&[hash.clone(), b_hash.clone()])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(v), None]);
    assert!(other.get_embeddings(&[hash]).await.unwrap()[0].is_none());
    assert!(other.get_embeddings(&[b_hash]).await.unwrap()[0].is_some());
}
