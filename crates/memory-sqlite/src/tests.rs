//! Behaviour of [`SqliteStorage`], with a deterministic test-only embedder.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use memory_core::{ContentHash, Memory, Metadata, Tags, TimeRange, Timestamp};
use memory_embed::{EmbedError, Embedder};
use memory_storage::{
    MemoryFilter, MemoryStorage, MemoryUpdate, SemanticQuery, StorageError, StoreOutcome, TagFilter,
};
use tempfile::TempDir;

use crate::{SqliteConfig, SqliteStorage};

/// TEST ONLY. A bag-of-words embedder: each lower-cased word adds ±1 to a bucket chosen by
/// its FNV hash, then the vector is normalised. Texts sharing words are close; it is
/// deterministic and instant. It counts its calls.
#[derive(Debug)]
pub(crate) struct WordsEmbedder {
    model: &'static str,
    dims: usize,
    calls: AtomicUsize,
}

impl WordsEmbedder {
    pub(crate) fn new(dims: usize) -> Arc<Self> {
        Self::named("test-words", dims)
    }

    pub(crate) fn named(model: &'static str, dims: usize) -> Arc<Self> {
        Arc::new(Self {
            model,
            dims,
            calls: AtomicUsize::new(0),
        })
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        for word in text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in word.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[(h % self.dims as u64) as usize] += sign;
        }
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }
}

#[async_trait]
impl Embedder for WordsEmbedder {
    fn model_id(&self) -> &str {
        self.model
    }
    fn dimensions(&self) -> usize {
        self.dims
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

const DIMS: usize = 64;

struct Fixture {
    dir: TempDir,
    embedder: Arc<WordsEmbedder>,
    store: SqliteStorage,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let embedder = WordsEmbedder::new(DIMS);
        let store = SqliteStorage::open(dir.path().join("sub/dir/m.db"), embedder.clone())
            .await
            .unwrap();
        Self {
            dir,
            embedder,
            store,
        }
    }

    /// Moves a row to another hash by hand, as another tool (or an older version) could.
    fn raw_rekey(&self, from: &ContentHash, to: &ContentHash) {
        let conn = rusqlite::Connection::open(self.store.path()).unwrap();
        let n = conn
            .execute(
                "UPDATE memories SET content_hash = ?2 WHERE content_hash = ?1",
                [from.as_str(), to.as_str()],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    /// The change counter readers use to see that something was written.
    fn change_seq(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.store.path()).unwrap();
        conn.query_row("SELECT value FROM meta WHERE key = 'seq'", [], |r| r.get(0))
            .unwrap()
    }

    /// Another store on the same file, as a second process would open it.
    async fn second(&self) -> SqliteStorage {
        SqliteStorage::open(self.store.path().to_owned(), self.embedder.clone())
            .await
            .unwrap()
    }
}

fn memory(text: &str) -> Memory {
    Memory::new(text).unwrap()
}

fn tagged(text: &str, tags: &str) -> Memory {
    memory(text).with_tags(Tags::parse(tags).unwrap())
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_epoch_micros(secs * 1_000_000 + 123_457).unwrap()
}

fn contents(memories: &[Memory]) -> Vec<&str> {
    memories.iter().map(Memory::content).collect()
}

fn tags(t: &str) -> Tags {
    Tags::parse(t).unwrap()
}

#[tokio::test]
async fn stored_memory_reads_back_equal_in_every_field() {
    let f = Fixture::new().await;
    let mut md = Metadata::new();
    md.insert("source", "chat");
    md.insert_f64("score", 0.25).unwrap();
    let original = tagged("Grüße aus Köln 🌍 — 東京 too", "Zeta, alpha, ünï")
        .with_memory_type("note")
        .unwrap()
        .with_metadata(md)
        .with_created_at(at(1_700_000_000));
    assert_eq!(
        f.store.store(original.clone()).await.unwrap(),
        StoreOutcome::Stored
    );
    let back = f
        .store
        .get_by_hash(original.content_hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, original);
    assert_eq!(back.embedding, None);
}

#[tokio::test]
async fn live_duplicate_is_reported_without_embedding_and_changes_nothing() {
    let f = Fixture::new().await;
    let first = tagged("same text", "a");
    f.store.store(first.clone()).await.unwrap();
    let calls = f.embedder.calls();
    let seq = f.change_seq();
    let again = tagged("  SAME text ", "b");
    assert_eq!(again.content_hash(), first.content_hash());
    let outcome = f.store.store(again.clone()).await.unwrap();
    assert_eq!(outcome, StoreOutcome::Duplicate);
    assert_eq!(f.embedder.calls(), calls);
    // With a vector of its own it reaches the write, which leaves the row alone too; and a
    // batch of nothing but duplicates is no change either.
    let with_vector = again.with_embedding(vec![0.5; DIMS]);
    assert_eq!(
        f.store.store(with_vector.clone()).await.unwrap(),
        StoreOutcome::Duplicate
    );
    let out = f
        .store
        .store_batch(vec![with_vector, tagged("same TEXT", "c")])
        .await
        .unwrap();
    assert!(
        out.iter().all(|o| matches!(o, Ok(StoreOutcome::Duplicate))),
        "{out:?}"
    );
    assert_eq!(f.change_seq(), seq, "a duplicate is not a change");
    let back = f
        .store
        .get_by_hash(first.content_hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.tags, tags("a"));
}

#[tokio::test]
async fn deleted_memory_is_hidden_and_storing_it_again_revives_it_with_new_fields() {
    let f = Fixture::new().await;
    let m = tagged("revive me", "old");
    f.store.store(m.clone()).await.unwrap();
    f.store.delete(m.content_hash()).await.unwrap();
    assert!(
        f.store
            .get_by_hash(m.content_hash())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        f.store.delete(m.content_hash()).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(f.store.count(&MemoryFilter::all()).await.unwrap(), 0);
    assert!(f.store.retrieve("revive me", 5).await.unwrap().is_empty());

    let again = tagged("revive me", "new").with_created_at(at(1_800_000_000));
    assert_eq!(
        f.store.store(again.clone()).await.unwrap(),
        StoreOutcome::Revived
    );
    assert_eq!(
        f.store.get_by_hash(m.content_hash()).await.unwrap(),
        Some(again)
    );
    assert_eq!(f.store.retrieve("revive me", 5).await.unwrap().len(), 1);
    let all_tags = f.store.get_all_tags().await.unwrap();
    assert_eq!(all_tags.len(), 1);
    assert_eq!(all_tags[0].tag, "new");
}

#[tokio::test]
async fn batch_embeds_once_and_reports_each_item() {
    let f = Fixture::new().await;
    f.store.store(memory("already here")).await.unwrap();
    let calls = f.embedder.calls();
    let mut bad = memory("bad vector");
    bad.embedding = Some(vec![1.0; 3]);
    let out = f
        .store
        .store_batch(vec![
            memory("one"),
            memory("two"),
            memory("ONE "),
            memory("already here"),
            bad,
            memory("three").with_embedding(vec![0.5; DIMS]),
        ])
        .await
        .unwrap();
    assert_eq!(
        f.embedder.calls(),
        calls + 1,
        "one embedder call for the batch"
    );
    assert!(matches!(out[0], Ok(StoreOutcome::Stored)));
    assert!(matches!(out[1], Ok(StoreOutcome::Stored)));
    assert!(matches!(out[2], Ok(StoreOutcome::Duplicate)));
    assert!(matches!(out[3], Ok(StoreOutcome::Duplicate)));
    assert!(matches!(
        out[4],
        Err(StorageError::InvalidInput {
            field: "embedding",
            ..
        })
    ));
    assert!(matches!(out[5], Ok(StoreOutcome::Stored)));
    assert_eq!(out.len(), 6);
    assert_eq!(f.store.count(&MemoryFilter::all()).await.unwrap(), 4);
    // The supplied vector was made unit length.
    let v = f
        .store
        .get_embedding(&ContentHash::of("three"))
        .await
        .unwrap()
        .unwrap();
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
}

#[tokio::test]
async fn supplied_embedding_of_wrong_size_or_not_finite_is_invalid_input() {
    let f = Fixture::new().await;
    let err = f
        .store
        .store(memory("x").with_embedding(vec![0.1; DIMS + 1]))
        .await
        .unwrap_err();
    match err {
        StorageError::InvalidInput { field, reason } => {
            assert_eq!(field, "embedding");
            assert!(reason.contains(&DIMS.to_string()), "{reason}");
        }
        other => panic!("expected InvalidInput, got {other}"),
    }
    let mut v = vec![0.1; DIMS];
    v[3] = f32::NAN;
    let err = f
        .store
        .store(memory("x").with_embedding(v))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::InvalidInput {
            field: "embedding",
            ..
        }
    ));
    assert_eq!(f.store.count(&MemoryFilter::all()).await.unwrap(), 0);
}

#[tokio::test]
async fn supplied_embedding_is_used_instead_of_the_model() {
    let f = Fixture::new().await;
    let calls = f.embedder.calls();
    let v = f.embedder.vector("apples and pears");
    f.store
        .store(memory("unrelated words").with_embedding(v))
        .await
        .unwrap();
    assert_eq!(f.embedder.calls(), calls);
    let hits = f.store.retrieve("apples and pears", 1).await.unwrap();
    assert_eq!(hits[0].memory.content(), "unrelated words");
    assert!(hits[0].relevance_score > 0.99);
}

#[tokio::test]
async fn search_ranks_by_cosine_and_reports_how() {
    let f = Fixture::new().await;
    for t in [
        "rust borrow checker",
        "python garbage collector",
        "rust async runtime tokio",
    ] {
        f.store.store(memory(t)).await.unwrap();
    }
    let hits = f.store.retrieve("rust tokio runtime", 3).await.unwrap();
    assert_eq!(hits[0].memory.content(), "rust async runtime tokio");
    assert!(
        hits.windows(2)
            .all(|w| w[0].relevance_score >= w[1].relevance_score)
    );
    let expected = {
        let q = f.embedder.vector("rust tokio runtime");
        let m = f.embedder.vector("rust async runtime tokio");
        q.iter().zip(&m).map(|(a, b)| a * b).sum::<f32>()
    };
    assert!((hits[0].relevance_score - expected).abs() < 1e-5);
    let info = hits[0].debug_info.as_ref().unwrap();
    assert_eq!(info.method, "semantic");
    assert_eq!(info.model.as_deref(), Some("test-words"));
    assert_eq!(hits[0].memory.embedding, None);
}

#[tokio::test]
async fn filtered_search_returns_the_true_top_n_among_matches() {
    let f = Fixture::new().await;
    // Twenty close but untagged memories, and two far ones carrying the tag.
    for i in 0..20 {
        f.store
            .store(memory(&format!("deploy on tuesday {i}")))
            .await
            .unwrap();
    }
    f.store
        .store(tagged("cats sleep a lot", "pets"))
        .await
        .unwrap();
    f.store.store(tagged("deploy cats", "pets")).await.unwrap();
    let q = SemanticQuery::new("deploy on tuesday", 2)
        .with_filter(MemoryFilter::all().with_tags(TagFilter::any(tags("pets"))));
    let hits = f.store.search(&q).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.memory.content()).collect::<Vec<_>>(),
        ["deploy cats", "cats sleep a lot"]
    );
}

#[tokio::test]
async fn search_filters_by_type_time_and_all_tags() {
    let f = Fixture::new().await;
    f.store
        .store(
            tagged("alpha one", "a,b")
                .with_memory_type("note")
                .unwrap()
                .with_created_at(at(100)),
        )
        .await
        .unwrap();
    f.store
        .store(
            tagged("alpha two", "a")
                .with_memory_type("note")
                .unwrap()
                .with_created_at(at(200)),
        )
        .await
        .unwrap();
    f.store
        .store(
            tagged("alpha three", "a,b")
                .with_memory_type("decision")
                .unwrap()
                .with_created_at(at(300)),
        )
        .await
        .unwrap();
    let search = |filter: MemoryFilter| {
        let store = f.store.clone();
        async move {
            let hits = store
                .search(&SemanticQuery::new("alpha", 10).with_filter(filter))
                .await
                .unwrap();
            let mut c: Vec<String> = hits.into_iter().map(|h| h.memory.into_content()).collect();
            c.sort();
            c
        }
    };
    assert_eq!(
        search(MemoryFilter::all().with_tags(TagFilter::all(tags("a,b")))).await,
        ["alpha one", "alpha three"]
    );
    assert_eq!(
        search(MemoryFilter::all().with_memory_type("note")).await,
        ["alpha one", "alpha two"]
    );
    assert_eq!(
        search(MemoryFilter::all().with_time(TimeRange {
            start: at(200),
            end: at(300)
        }))
        .await,
        ["alpha three", "alpha two"]
    );
    assert!(
        search(MemoryFilter::all().with_memory_type("nope"))
            .await
            .is_empty()
    );
    assert!(
        search(MemoryFilter::all().with_tags(TagFilter::any(Tags::empty())))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn list_and_count_apply_every_filter() {
    let f = Fixture::new().await;
    f.store
        .store(tagged("one", "x,y").with_created_at(at(10)))
        .await
        .unwrap();
    f.store
        .store(
            tagged("two", "y")
                .with_memory_type("t")
                .unwrap()
                .with_created_at(at(20)),
        )
        .await
        .unwrap();
    f.store
        .store(tagged("three", "z").with_created_at(at(30)))
        .await
        .unwrap();
    let count = |filter: MemoryFilter| {
        let s = f.store.clone();
        async move { s.count(&filter).await.unwrap() }
    };
    assert_eq!(
        count(MemoryFilter::all().with_tags(TagFilter::any(tags("x,z")))).await,
        2
    );
    assert_eq!(
        count(MemoryFilter::all().with_tags(TagFilter::all(tags("x,y")))).await,
        1
    );
    assert_eq!(count(MemoryFilter::all().with_memory_type("t")).await, 1);
    assert_eq!(
        count(MemoryFilter::all().with_time(TimeRange {
            start: at(10),
            end: at(20)
        }))
        .await,
        2
    );
    let by_tag = f.store.search_by_tag(&tags("y")).await.unwrap();
    assert_eq!(contents(&by_tag), ["two", "one"]);
    let in_time = f
        .store
        .get_memories_by_time_range(at(20), at(30))
        .await
        .unwrap();
    assert_eq!(contents(&in_time), ["three", "two"]);
}

#[tokio::test]
async fn cleanup_keeps_the_oldest_with_the_union_of_tags() {
    let f = Fixture::new().await;
    // A row stored under an older hashing rule (written by hand: the store itself refuses a
    // hash that is not the content's), then the same text under today's rule.
    let legacy = Memory::from_parts(
        "Hello World".into(),
        ContentHash::of("legacy rule output"),
        tags("a"),
        None,
        Metadata::new(),
        None,
        at(1),
        at(1),
    );
    f.store
        .store(
            Memory::new("Hello World")
                .unwrap()
                .with_tags(tags("a"))
                .with_created_at(at(1)),
        )
        .await
        .unwrap();
    f.raw_rekey(&ContentHash::of("hello world"), legacy.content_hash());
    f.store
        .store(tagged("hello world", "b").with_created_at(at(2)))
        .await
        .unwrap();
    f.store.store(memory("unrelated")).await.unwrap();
    let report = f.store.cleanup_duplicates().await.unwrap();
    assert_eq!(report.examined, 3);
    assert_eq!(report.duplicate_groups, 1);
    // The oldest row survives under today's hash; its legacy hash is what went away.
    assert_eq!(report.removed, [legacy.content_hash().clone()]);
    assert!(
        f.store
            .get_by_hash(legacy.content_hash())
            .await
            .unwrap()
            .is_none()
    );
    let kept = f
        .store
        .get_by_hash(&ContentHash::of("hello world"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.content(), "Hello World");
    assert_eq!(kept.tags, tags("a,b"));
    assert_eq!(kept.created_at, at(1));
    assert_eq!(f.store.count(&MemoryFilter::all()).await.unwrap(), 2);
    let again = f.store.cleanup_duplicates().await.unwrap();
    assert_eq!(again.duplicate_groups, 0);
    // Storing the same text again is a duplicate of the keeper, not a revival of the
    // removed row.
    let restore = f.store.store(memory("hello world")).await;
    assert!(
        matches!(restore, Ok(StoreOutcome::Duplicate)),
        "{restore:?}"
    );
    assert_eq!(f.store.count(&MemoryFilter::all()).await.unwrap(), 2);
    let hits = f
        .store
        .search(&SemanticQuery::new("hello world", 10))
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        2,
        "the hard-deleted row left the vector index too"
    );
}

#[tokio::test]
async fn update_replaces_tags_and_type_merges_metadata_and_sets_timestamps() {
    let f = Fixture::new().await;
    let m = tagged("update me", "old")
        .with_memory_type("note")
        .unwrap()
        .with_metadata(Metadata::parse(r#"{"a":1,"b":2}"#).unwrap())
        .with_created_at(at(1000));
    f.store.store(m.clone()).await.unwrap();
    let before = Timestamp::now();
    let updated = f
        .store
        .update_memory_metadata(
            m.content_hash(),
            MemoryUpdate {
                tags: Some(tags("new,other")),
                memory_type: Some(None),
                metadata: Some(Metadata::parse(r#"{"b":3,"c":4}"#).unwrap()),
                created_at: Some(at(5)),
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(updated.tags, tags("new,other"));
    assert_eq!(updated.memory_type, None);
    assert_eq!(updated.metadata.to_json_string(), r#"{"a":1,"b":3,"c":4}"#);
    assert_eq!(updated.created_at, at(1000), "preserved");
    assert!(updated.updated_at >= before);
    assert_eq!(
        f.store.get_by_hash(m.content_hash()).await.unwrap(),
        Some(updated)
    );
    assert_eq!(f.store.search_by_tag(&tags("old")).await.unwrap().len(), 0);
    assert_eq!(
        f.store.search_by_tag(&tags("other")).await.unwrap().len(),
        1
    );

    let moved = f
        .store
        .update_memory_metadata(
            m.content_hash(),
            MemoryUpdate {
                created_at: Some(at(5)),
                ..MemoryUpdate::default()
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(moved.created_at, at(5));
    let now_created = f
        .store
        .update_memory_metadata(m.content_hash(), MemoryUpdate::default(), false)
        .await
        .unwrap();
    assert!(now_created.created_at >= before);
}

#[tokio::test]
async fn stats_count_live_memories_tombstones_and_the_file() {
    let f = Fixture::new().await;
    f.store.store(tagged("héllo", "a,b")).await.unwrap();
    f.store
        .store(tagged("old", "c").with_created_at(at(1)))
        .await
        .unwrap();
    f.store.store(memory("deleted")).await.unwrap();
    f.store.delete(&ContentHash::of("deleted")).await.unwrap();
    let s = f.store.get_stats().await.unwrap();
    assert_eq!(s.backend, "sqlite");
    assert_eq!(s.total_memories, 2);
    assert_eq!(s.tombstones, 1);
    assert_eq!(s.memories_this_week, 1);
    assert_eq!(s.unique_tags, 3);
    assert_eq!(s.content_bytes, "héllo".len() as u64 + 3);
    assert_eq!(s.embedding_model, "test-words");
    assert_eq!(s.embedding_dimensions, DIMS);
    assert!(s.storage_bytes.unwrap() > 0);
    assert_eq!(s.extra["indexed_vectors"], 2);
}

#[tokio::test]
async fn embedder_failure_is_an_embedding_error() {
    #[derive(Debug)]
    struct Broken;
    #[async_trait]
    impl Embedder for Broken {
        fn model_id(&self) -> &str {
            "broken"
        }
        fn dimensions(&self) -> usize {
            4
        }
        async fn embed(&self, _: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Err(EmbedError::Other("model not loaded".into()))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(dir.path().join("m.db"), Arc::new(Broken))
        .await
        .unwrap();
    let err = store.store(memory("x")).await.unwrap_err();
    assert!(matches!(err, StorageError::Embedding { .. }), "{err}");
    assert!(err.to_string().contains("model not loaded"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteStorage::open(path, WordsEmbedder::new(DIMS))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an SQLite database"), "{err}");
}

/// Not a test: prints the latency of retrieval without embedding at 10,000 memories of
/// 384 dimensions. Run with
/// `cargo test -p memory-sqlite --release -- --ignored --nocapture retrieval_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing report, run on demand in release mode"]
async fn retrieval_latency_at_10k_memories() {
    const N: usize = 10_000;
    const D: usize = 384;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStorage::open(dir.path().join("m.db"), WordsEmbedder::new(D))
        .await
        .unwrap();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random_vector = move || -> Vec<f32> {
        (0..D)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    };
    let batch: Vec<Memory> = (0..N)
        .map(|i| {
            memory(&format!("memory number {i}"))
                .with_tags(tags(&format!("t{}", i % 10)))
                .with_embedding(random_vector())
        })
        .collect();
    let started = std::time::Instant::now();
    store.store_batch(batch).await.unwrap();
    println!("stored {N} in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    let reopened = SqliteStorage::open(store.path().to_owned(), WordsEmbedder::new(D))
        .await
        .unwrap();
    println!("reopened (index load) in {:?}", started.elapsed());
    assert_eq!(reopened.indexed_vectors(), N);
    for (name, filter) in [
        ("unfiltered", MemoryFilter::all()),
        (
            "tag filter",
            MemoryFilter::all().with_tags(TagFilter::any(tags("t3"))),
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..200 {
            let q = random_vector();
            let t = std::time::Instant::now();
            let hits = store
                .search_by_vector(q, 10, filter.clone(), None)
                .await
                .unwrap();
            times.push(t.elapsed());
            assert_eq!(hits.len(), 10);
        }
        times.sort();
        println!(
            "{name}: p50 {:?}  p90 {:?}  p99 {:?}",
            times[100], times[180], times[198]
        );
    }
}

/// Not a test: prints the latency of the bare scan (no SQLite) at 10,000 × 384.
#[test]
#[ignore = "timing report, run on demand in release mode"]
fn scan_latency_at_10k_vectors() {
    use crate::vector::VectorIndex;
    const N: usize = 10_000;
    const D: usize = 384;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut random_vector = move || -> Vec<f32> {
        (0..D)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    };
    let mut index: VectorIndex = VectorIndex::new(std::num::NonZeroUsize::new(D).unwrap());
    for id in 0..N as i64 {
        index.upsert(id, &random_vector(), ()).unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..500 {
        let q = random_vector();
        let t = std::time::Instant::now();
        let hits = index.search(&q, 10, None, |_| true).unwrap();
        times.push(t.elapsed());
        assert_eq!(hits.len(), 10);
    }
    times.sort();
    println!(
        "bare scan: p10 {:?} p50 {:?}  p90 {:?}",
        times[50], times[250], times[450]
    );
}

mod instances;
mod outbox;
mod sync;
